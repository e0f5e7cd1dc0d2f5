# logs: quiet logs, a stalled stderr, syslog
ports LG_S LF_S LF_C LF_M SL_S SL_T
bg "$T/lg.s.log" "$SERVER" -t 2 127.0.0.1:$LG_S 127.0.0.1:$ECHO "$KEY"; lgs=$last
listening $LG_S >/dev/null
quiet() { t strangers $LG_S 300; sleep 0.5; n=$(wc -l <"$T/lg.s.log")
	echo "$n lines"; [ "$n" -le 4 ]; }
check "logs: 300 strangers without -v: a few lines" quiet
counted() { sleep 1; t strangers $LG_S 1; wait_for 20 logged \
	"more failures before authentication were not logged" "$T/lg.s.log"; }
check "logs: then the count of the lines left out" counted
stop $lgs
# a stalled stderr: lines are dropped, the tunnel goes on
mkfifo "$T/fifo"
exec 7<>"$T/fifo" # open, never read: the pipe fills
bg "$T/fifo" "$SERVER" -v -m $LF_M 127.0.0.1:$LF_S 127.0.0.1:$ECHO "$KEY"; lgs=$last
bg "$T/lg.c.log" "$CLIENT" 127.0.0.1:$LF_C 127.0.0.1:$LF_S "$KEY"; lgc=$last
listening $LF_C >/dev/null && listening $LF_M >/dev/null
stalled() { timeout -k 1 60 "$PY" "$TESTS/t.py" many $LF_C 600 1000 &&
	timeout -k 1 20 "$PY" "$TESTS/t.py" echo $LF_C 100000 &&
	n=$(curl -s -m 5 http://127.0.0.1:$LF_M/metrics |
		awk '$1 == "gstunnel_log_lines_dropped_total" { print $2 }') &&
	echo "$n lines dropped" && [ "$n" -gt 0 ]; }
check_with curl "logs: a stalled stderr never stops the loop (lines dropped)" stalled
stop $lgc; stop $lgs
exec 7>&-
# -l syslog: in a mount namespace with our own /dev/log (t.py syslog)
syslog_ns() {
	mkdir -p "$T/realdev" && unshare -m sh -c '
	set -e
	mount --make-rprivate /
	mount --bind /dev "$1/realdev"
	mount -t tmpfs none /dev
	for d in null random urandom; do touch /dev/$d; mount --bind "$1/realdev/$d" /dev/$d; done
	"$2" "$7/t.py" syslog "$1/syslog" &
	sleep 0.5
	"$3" -l syslog -v 127.0.0.1:$4 127.0.0.1:$5 "$6" 2>"$1/sl.err" & p=$!
	sleep 0.5; "$2" "$7/t.py" closed $4 x 2 reset >/dev/null 2>&1 || :
	sleep 0.3; kill $p; wait $p || :
	wait' sh "$T" "$PY" "$SERVER" $SL_S $SL_T "$KEY" "$TESTS"
	cat "$T/syslog"
	grep -q "^<30>gstunnel_server\[[0-9]*\]: listening on 127.0.0.1:$SL_S$" "$T/syslog" &&
	grep -q "^<30>gstunnel_server\[[0-9]*\]: conn 1: new connection" "$T/syslog" &&
	[ ! -s "$T/sl.err" ]; }
mcheck "logs: -l syslog: LOG_DAEMON lines with the program's name and pid" syslog_ns
