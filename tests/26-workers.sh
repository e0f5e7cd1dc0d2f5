# workers: -j (both workers serve, one per CPU, a killed one replaced, SIGTERM)
ports J_S J_C
kids() { ps -o pid= --ppid "$1" | tr -d ' '; }
bg "$T/J.s.log" "$SERVER" -v -j 2 127.0.0.1:$J_S 127.0.0.1:$MUX "$KEY"; js=$last
bg "$T/J.c.log" "$CLIENT" -j 0 127.0.0.1:$J_C 127.0.0.1:$J_S "$KEY"; jc=$last
listening $J_S >/dev/null; listening $J_C >/dev/null
check "workers: -j 2 server, -j 0 client: 60 connections served" t par $J_C 60 "sink|"
spread() { n=$(sed -n 's/^gstunnel_server\[\([0-9]*\)\]: conn [0-9]*: new connection$/\1/p' \
	"$T/J.s.log" | sort -u | wc -l); echo "$n workers served"; [ "$n" = 2 ]; }
check "workers: both server workers served some" spread
percpu() { logged "^gstunnel_client: $(getconf _NPROCESSORS_ONLN) workers started" "$T/J.c.log"; }
check "workers: -j 0 starts one per CPU" percpu
w=$(kids $js | head -n 1)
kill -9 "$w"
replaced() { grep -q "worker [12] (pid $w) killed by signal 9; restarting" "$T/J.s.log" &&
	[ "$(kids $js | wc -l)" = 2 ] && ! kids $js | grep -qx "$w"; }
check "workers: a killed worker is logged and replaced" wait_for 40 replaced
check "workers: and all serve again" t par $J_C 60 "sink|"
ws=$(kids $js)
term_all() { kill -TERM $js; i=0
	while [ $i -lt 50 ] && alive $js; do sleep 0.1; i=$((i + 1)); done
	wait $js; rc=$?; echo "exit status $rc"
	for p in $ws; do alive $p && { echo "worker $p still runs"; return 1; }; done
	[ $rc = 0 ]; }
check "workers: SIGTERM stops the workers and the parent exits 0" term_all
stop $jc
# what follows does not depend on the cipher: the first pass only
[ -n "${CIPHER:-}" ] && return 0
# -j 2 -u nobody on a privileged port: every worker serves, since all
# their listeners are made before -u (Linux groups only one user's
# SO_REUSEPORT sockets), also one restarted after a kill
JU_S=""
for _p in 901 903 905 907 909 911; do
	grep -q "$(printf ':%04X ' $_p)" /proc/net/tcp || { JU_S=$_p; break; }
done
ports JU_C
bg "$T/JU.s.log" "$SERVER" -v -j 2 -u nobody 127.0.0.1:$JU_S 127.0.0.1:$MUX "$KEY"; jus=$last
bg "$T/JU.c.log" "$CLIENT" 127.0.0.1:$JU_C 127.0.0.1:$JU_S "$KEY"; juc=$last
listening $JU_S >/dev/null; listening $JU_C >/dev/null
spread_u() { t par $JU_C 60 "sink|" || return 1
	n=$(sed -n 's/^gstunnel_server\[\([0-9]*\)\]: conn [0-9]*: new connection$/\1/p' \
		"$T/JU.s.log" | sort -u | wc -l); echo "$n workers served"
	! grep -q 'restarting' "$T/JU.s.log" && [ "$n" = 2 ]; }
check "workers: -j 2 -u nobody on port $JU_S: both workers serve, none restarts" spread_u
kill -9 "$(kids $jus | head -n 1)"
again_u() { t par $JU_C 60 "sink|" && n=$(kids $jus | wc -l) && [ "$n" = 2 ]; }
check "workers: and after a kill, the restarted worker serves too" wait_for 40 again_u
stop $juc; stop $jus
# SIGHUP gives the supervisor a new -s (it logs the statistics of all)
ports JS_S
printf 'stats 0\n' >"$T/js.conf"
bg "$T/JS.s.log" "$SERVER" -j 2 -f "$T/js.conf" 127.0.0.1:$JS_S 127.0.0.1:$MUX "$KEY"; jss=$last
listening $JS_S >/dev/null
printf 'stats 1\n' >"$T/js.conf"
kill -HUP $jss
stats_hup() { sleep 2.5; n=$(grep -c '^gstunnel_server: stats:' "$T/JS.s.log")
	echo "$n lines"; [ "$n" -ge 2 ]; }
check "workers: -j 2: a new stats interval from SIGHUP is used" stats_hup
stop $jss
# workers that die at once (here: no memory for -n 1000000 connections
# under ulimit -v) are restarted after 1 s, then 2 s; when all have died
# at once 3 times in a row, the supervisor gives up: exit status 1
ports JD_S
die_fast() { ( ulimit -v 400000; exec timeout -k 1 20 "$SERVER" -j 2 -n 1000000 \
	127.0.0.1:$JD_S 127.0.0.1:$MUX "$KEY" ) >"$T/JD.s.log" 2>&1; rc=$?
	cat "$T/JD.s.log" | tail -n 4; r=$(grep -c 'restarting' "$T/JD.s.log")
	echo "exit status $rc, $r restarts"
	[ $rc = 1 ] && grep -q 'giving up' "$T/JD.s.log" && [ "$r" -le 6 ] &&
	grep -q 'restarting after a wait' "$T/JD.s.log"; }
check "workers: workers dying at once: restarted after a wait, then given up (exit 1)" die_fast
