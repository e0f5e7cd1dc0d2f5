# targets: server lists (back-off, round robin, every server down, a name
# resolved again)
ports D1 D2 TA1 TA2 TA_C TB_C TD_C RE_C # nothing listens on D1, D2
bg "$T/ta1.s.log" "$SERVER" -v 127.0.0.1:$TA1 127.0.0.1:$MUX "$KEY"; ta1=$last
bg "$T/ta2.s.log" "$SERVER" -v 127.0.0.1:$TA2 127.0.0.1:$MUX "$KEY"; ta2=$last
bg "$T/ta.c.log" "$CLIENT" -v 127.0.0.1:$TA_C \
	127.0.0.1:$D1,127.0.0.1:$TA1 "$KEY"; tac=$last
bg "$T/tb.c.log" "$CLIENT" -v 127.0.0.1:$TB_C \
	127.0.0.1:$TA1,127.0.0.1:$TA2 "$KEY"; tbc=$last
bg "$T/td.c.log" "$CLIENT" -v 127.0.0.1:$TD_C \
	127.0.0.1:$D1,127.0.0.1:$D2 "$KEY"; tdc=$last
listening $TA1 >/dev/null && listening $TA2 >/dev/null &&
	listening $TA_C >/dev/null && listening $TD_C >/dev/null
tries() { grep -c "connecting to 127.0.0.1:$1" "$2"; }
ten() { t ups "$1" 10 1000; } # well within the first back-off
check "targets: one server of two down: 10 connections all work" ten $TA_C
once() { n=$(tries $D1 "$T/ta.c.log"); echo "dead one tried $n times"; [ "$n" = 1 ]; }
check "targets: the dead one was tried once, then rested" once
logged "failed; not used for 1 s" "$T/ta.c.log" >/dev/null
sleep 1.2
again() { t up $TA_C 1000 && n=$(tries $D1 "$T/ta.c.log") &&
	echo "dead one tried $n times" && [ "$n" = 2 ] &&
	logged "127.0.0.1:$D1 failed; not used for 2 s" "$T/ta.c.log"; }
check "targets: after its back-off it is tried again, then rests twice as long" again
check "targets: two servers: 10 connections" ten $TB_C
rr() { a=$(grep -c 'new connection' "$T/ta2.s.log")
	echo "second server took $a of 10"; [ "$a" = 5 ]; }
check "targets: round robin: each server takes every other connection" rr
alldown() { t closed $TD_C x 3 reset && t closed $TD_C x 3 reset &&
	n=$(($(tries $D1 "$T/td.c.log") + $(tries $D2 "$T/td.c.log"))) &&
	echo "$n connects" && [ "$n" = 2 ] &&
	logged "every address failed and rests" "$T/td.c.log"; }
check "targets: every server down: reset at once, one line, no retry storm" alldown
stop $tac; stop $tbc; stop $tdc
# dynamic DNS: a name whose addresses all failed is resolved again
# (its own /etc/hosts, in a mount namespace)
redns() { printf '127.0.0.1 localhost\n127.0.0.2 gs-moved.test\n' >"$T/hosts"
	unshare -m sh -c '
	mount --make-rprivate / && mount --bind "$1/hosts" /etc/hosts || exit 2
	"$2" -v 127.0.0.1:$4 gs-moved.test:$5 "$6" 2>"$1/dns.c.log" & c=$!
	sleep 0.5
	"$3" "$7/t.py" closed $4 x 3 reset
	printf "127.0.0.1 localhost\n127.0.0.1 gs-moved.test\n" >"$1/hosts"
	"$3" "$7/t.py" up $4 5000; rc=$?
	kill $c; wait $c; exit $rc' sh "$T" "$CLIENT" "$PY" $RE_C $TA1 "$KEY" \
	"$TESTS"
	rc=$?; grep connecting "$T/dns.c.log"; [ $rc = 0 ] &&
	logged "connecting to 127.0.0.2" "$T/dns.c.log" >/dev/null; }
mcheck "targets: a name is resolved again after its addresses failed" redns
stop $ta1; stop $ta2
