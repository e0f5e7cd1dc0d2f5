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
# strangers by rate, as the audit measured them: -n 40, real clients over
# a link of 20 ms each way (a relay), 1000 strangers a second each holding
# a slot for 20 ms before its junk hello: nearly every client gets in
ports SR_T SR_S SR_R SR_C
bg "$T/sr.s.log" "$SERVER" -n 40 127.0.0.1:$SR_S 127.0.0.1:$ECHO "$KEY"; srs=$last
bg "$T/sr.r.log" "$PY" "$TESTS/t.py" relay $SR_R $SR_S 20; srr=$last
bg "$T/sr.c.log" "$CLIENT" 127.0.0.1:$SR_C 127.0.0.1:$SR_R "$KEY"; src=$last
listening $SR_S >/dev/null && listening $SR_R >/dev/null && listening $SR_C >/dev/null
by_rate() { # by_rate DELAY SRC: 20 clients over 10 s amid the strangers
	"$PY" "$TESTS/t.py" junk $SR_S 1000 12 "$@" >"$T/sr.junk" 2>&1 & j=$!
	sleep 1; "$PY" "$TESTS/t.py" reals $SR_C 20 10 >"$T/sr.out" 2>&1; wait $j
	cat "$T/sr.out" "$T/sr.junk"; n=$(sed -n 's/^\([0-9]*\) of 20 through$/\1/p' "$T/sr.out")
	[ "${n:-0}" -ge 18 ]; }
check "strangers: 1000 a second with junk hellos, -n 40, clients 20 ms away: 18 of 20 get in" \
	by_rate 20
stop $src; stop $srr; stop $srs
# one source (127.0.0.2) floods silent strangers, faster than -n 10 could
# hold them while a client's hello comes: once it holds half of those not
# yet authenticated, its own new ones go, not the clients'
bg "$T/sr2.s.log" "$SERVER" -n 10 127.0.0.1:$SR_S 127.0.0.1:$ECHO "$KEY"; srs=$last
bg "$T/sr2.r.log" "$PY" "$TESTS/t.py" relay $SR_R $SR_S 20; srr=$last
bg "$T/sr2.c.log" "$CLIENT" 127.0.0.1:$SR_C 127.0.0.1:$SR_R "$KEY"; src=$last
listening $SR_S >/dev/null && listening $SR_R >/dev/null && listening $SR_C >/dev/null
check "strangers: a silent flood from one address at -n 10: 18 of 20 clients from another get in" \
	by_rate silent 127.0.0.2
stop $src; stop $srr; stop $srs
