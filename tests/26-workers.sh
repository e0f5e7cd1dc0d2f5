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
