# stop: graceful SIGTERM (-w, -j), a second SIGTERM
ports TERM_S TERM_C TERM2_S TERM2_C TERM3_S TERM3_C TERMJ_S TERMJ_C
# SIGTERM: the listener goes at once, open transfers finish, exit 0
SOPT=-v COPT=-v pair W $TERM_C $TERM_S 127.0.0.1:$MUX; w_s=$spid w_c=$cpid
bg "$T/w.t.log" "$PY" "$TESTS/t.py" held $TERM_C $((64 << 20)) 2; held=$last
sleep 1
kill -TERM $w_s $w_c
gone() { sleep 0.3; ! listening $TERM_S >/dev/null 2>&1 ||
	{ echo "still listening"; false; }; }
check "stop: SIGTERM closes the listener at once" gone
gone_j() { sleep 0.3; ! listening $TERMJ_S >/dev/null 2>&1 ||
	{ echo "still listening"; false; }; }
done64() { wait $held; rc=$?; cat "$T/w.t.log"; [ $rc = 0 ]; }
check "stop: a 64 MiB transfer begun before SIGTERM completes intact" done64
exit_ok() { i=0; while [ $i -lt 30 ] && alive "$1"; do sleep 0.1; i=$((i + 1)); done
	if alive "$1"; then echo "still running after 3 s"; kill -9 "$1"
		wait "$1"; return 1; fi
	wait "$1"; rc=$?; echo "exit status $rc"; [ $rc = 0 ]; }
check "stop: then the server exits 0" exit_ok $w_s
check "stop: and the client exits 0" exit_ok $w_c
# a second SIGTERM, or -w 0, resets at once
pair W2 $TERM2_C $TERM2_S 127.0.0.1:$MUX; w_s=$spid
bg "$T/w2.t.log" "$PY" "$TESTS/t.py" held $TERM2_C $((16 << 20)) 5; held=$last
sleep 1
kill -TERM $w_s; sleep 0.3
still() { alive $w_s || { echo "the server did not wait"; false; }; }
check "stop: with a transfer open, the server waits (-w)" still
kill -TERM $w_s
check "stop: a second SIGTERM resets at once and exits 0" exit_ok $w_s
was_cut() { wait $held; rc=$?; [ $rc != 0 ] || { echo "transfer not cut"; false; }; }
check "stop: the transfer was reset, not ended cleanly" was_cut
# with -j, the supervisor passes SIGTERM on: the same graceful stop
SOPT="-j 2" pair WJ $TERMJ_C $TERMJ_S 127.0.0.1:$MUX; w_s=$spid w_c=$cpid
bg "$T/wj.t.log" "$PY" "$TESTS/t.py" held $TERMJ_C $((64 << 20)) 2; held=$last
sleep 1
kill -TERM $w_s
check "stop: -j 2: SIGTERM closes the listeners at once" gone_j
check "stop: -j 2: the transfer completes intact" done64
check "stop: -j 2: then the supervisor exits 0" exit_ok $w_s
stop $w_c
SOPT="-w 0" pair W3 $TERM3_C $TERM3_S 127.0.0.1:$MUX; w_s=$spid
bg "$T/w3.t.log" "$PY" "$TESTS/t.py" held $TERM3_C $((16 << 20)) 5; held=$last
sleep 1
kill -TERM $w_s
check "stop: -w 0: SIGTERM resets at once and exits 0" exit_ok $w_s
wait $held
