# reload: SIGHUP (a new key, a bad key, a config file; with -j)
ports HUP_S HUP_C HUP_C2 HUPF_L HUPF_C HUPF_L2 HUPJ_S HUPJ_C
printf '%s' "$KEY" >"$T/hup.key"
bg "$T/hup.s.log" "$SERVER" -v -r 1 -k "$T/hup.key" 127.0.0.1:$HUP_S 127.0.0.1:$ECHO; hs=$last
bg "$T/hup.c.log" "$CLIENT" -v -r 1 127.0.0.1:$HUP_C 127.0.0.1:$HUP_S "$KEY"; hc=$last
K2=ZPgZDOjTmA1ztqEi8mPzrkqeMC1oGl8p
bg "$T/hup2.c.log" "$CLIENT" -v 127.0.0.1:$HUP_C2 127.0.0.1:$HUP_S "$K2"; hc2=$last
listening $HUP_S >/dev/null && listening $HUP_C >/dev/null &&
	listening $HUP_C2 >/dev/null
rm -f "$T/flag"
bg "$T/pause.log" "$PY" "$TESTS/t.py" pause $HUP_C 100000 "$T/flag"; pz=$last
sleep 1
printf '%s\n' "$K2" >"$T/hup.key"
kill -HUP $hs
wait_for 30 grep -q "SIGHUP: reloaded" "$T/hup.s.log"
check "reload: after SIGHUP the new key connects" t echo $HUP_C2 10000
refused() { ! t echo $HUP_C 1000 >/dev/null 2>&1 && sleep 0.2 &&
	logged "bad client hello" "$T/hup.s.log"; }
check "reload: and the old key is refused" refused
sleep 1.2 # so that the old connection rotates after the reload
touch "$T/flag"
paused() { wait $pz; rc=$?; cat "$T/pause.log"; [ $rc = 0 ]; }
check "reload: a connection opened before carries data after (and rotates)" paused
printf 'short' >"$T/hup.key"
kill -HUP $hs
wait_for 30 grep -q "reload refused" "$T/hup.s.log"
kept() { logged "reload refused, nothing changed: bad KEY (file): 5 bytes" "$T/hup.s.log" &&
	t echo $HUP_C2 1000; }
check "reload: a bad new key is refused, and the last good key stays" kept
stop $hc; stop $hc2; stop $hs
# with -j, every worker reloads
printf '%s' "$KEY" >"$T/hup.key"
bg "$T/hupj.s.log" "$SERVER" -j 2 -k "$T/hup.key" 127.0.0.1:$HUPJ_S 127.0.0.1:$ECHO; hs=$last
bg "$T/hupj.c.log" "$CLIENT" 127.0.0.1:$HUPJ_C 127.0.0.1:$HUPJ_S "$K2"; hc=$last
listening $HUPJ_S >/dev/null && listening $HUPJ_C >/dev/null && sleep 0.5
printf '%s' "$K2" >"$T/hup.key"
kill -HUP $hs
both() { [ "$(grep -c 'SIGHUP: reloaded' "$T/hupj.s.log")" = 2 ]; }
wait_for 30 both
check "reload: -j 2: every worker takes the new key" t many $HUPJ_C 20 1000
stop $hc; stop $hs
# a config file: the new target is used, a fixed option only noted
printf 'listen 127.0.0.1:%s\ntarget 127.0.0.1:%s\nkey %s\n' $HUPF_L $ECHO "$KEY" >"$T/s.conf"
bg "$T/hupf.s.log" "$SERVER" -v -f "$T/s.conf"; hs2=$last
listening $HUPF_L >/dev/null
bg "$T/hupf.c.log" "$CLIENT" 127.0.0.1:$HUPF_C 127.0.0.1:$HUPF_L "$KEY"; hc=$last
listening $HUPF_C >/dev/null
printf 'listen 127.0.0.1:%s\ntarget 127.0.0.1:%s\nkey %s\n' $HUPF_L2 $MUX "$KEY" >"$T/s.conf"
kill -HUP $hs2
wait_for 30 grep -q "SIGHUP: reloaded" "$T/hupf.s.log"
newtarget() { t up $HUPF_C 5000 &&
	logged "connecting to 127.0.0.1:$MUX" "$T/hupf.s.log" &&
	logged "listen changed: it takes effect at the next start" "$T/hupf.s.log"; }
check "reload: the config file is read again (a new target)" newtarget
printf 'listen 127.0.0.1:%s\ntarget 127.0.0.1:%s\nbogus 1\n' $HUPF_L $ECHO >"$T/s.conf"
kill -HUP $hs2
wait_for 30 grep -q "reload refused" "$T/hupf.s.log"
check "reload: a bad config file is refused; the old one stays" t up $HUPF_C 5000
stop $hc; stop $hs2
# -k -: the KEY read from standard input at start is kept on SIGHUP
ports HUPS_S HUPS_C
printf '%s' "$KEY" | "$SERVER" -v -k - 127.0.0.1:$HUPS_S 127.0.0.1:$ECHO \
	>"$T/hups.s.log" 2>&1 & hss=$!; pids="$pids $hss"
bg "$T/hups.c.log" "$CLIENT" 127.0.0.1:$HUPS_C 127.0.0.1:$HUPS_S "$KEY"; hsc=$last
listening $HUPS_S >/dev/null && listening $HUPS_C >/dev/null
kill -HUP $hss
stdin_kept() { wait_for 30 grep -q "SIGHUP: reloaded" "$T/hups.s.log" &&
	! grep "refused" "$T/hups.s.log" && t echo $HUPS_C 10000; }
check "reload: a KEY from standard input (-k -) is kept on SIGHUP" stdin_kept
stop $hsc; stop $hss
