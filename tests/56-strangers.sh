# strangers: strangers at the unauthenticated cap
ports SG_S SG_C
# -n 4: at most 2 unauthenticated; 10 silent strangers cannot lock out
bg "$T/sg.s.log" "$SERVER" -n 4 -t 30 127.0.0.1:$SG_S 127.0.0.1:$ECHO "$KEY"; sgs=$last
bg "$T/sg.c.log" "$CLIENT" 127.0.0.1:$SG_C 127.0.0.1:$SG_S "$KEY"; sgc=$last
listening $SG_S >/dev/null && listening $SG_C >/dev/null
bg "$T/hog.log" "$PY" "$TESTS/t.py" hog $SG_S 10 8; hog=$last
sleep 1
served() { timeout 4 "$PY" "$TESTS/t.py" echo $SG_C 1000; }
check "strangers: 10 silent strangers at -n 4: a client still gets in" served
stop $hog; stop $sgc; stop $sgs
