# limits: backpressure, the connection cap, running out of fds
ports N_C F_C G_S G_C
# backpressure: the target reads nothing for 6 s; the app pushes hard
bg "$T/hold.out" t hold $CB 6 1024; h=$last
wait_for 100 grep -q sent "$T/hold.out" 2>/dev/null
r1=$(rss_kb $B_C) r2=$(rss_kb $B_S)
k1=$(cpu_ticks $B_C) k2=$(cpu_ticks $B_S); sleep 1
k1=$(($(cpu_ticks $B_C) - k1)) k2=$(($(cpu_ticks $B_S) - k2))
idle() { echo "cpu ticks in 1 s while stalled: client $k1, server $k2"
	[ $k1 -lt 10 ] && [ $k2 -lt 10 ]; }
check "limits: backpressure: no spinning while stalled" idle
small() { cat "$T/hold.out"; echo "rss: client $r1 kB, server $r2 kB"
	grep -q sent "$T/hold.out" && [ "$r1" -lt 12000 ] && [ "$r2" -lt 12000 ]; }
if grep -q -a -e __asan_init -e __tsan_init "$CLIENT_BIN"; then
	skip "limits: backpressure: the sender stalls, memory stays small (sanitizer build)"
else
	check "limits: backpressure: the sender stalls, memory stays small" small
fi
check "limits: backpressure: then every byte arrives" wait "$h"

# -n 2: a third connection waits for a free slot, without spinning
bg "$T/N.c.log" "$CLIENT" -n 2 127.0.0.1:$N_C 127.0.0.1:$SB "$KEY"; nc=$last
listening $N_C >/dev/null
bg "$T/n1.out" t run $N_C "hold 3|"; n1=$last
bg "$T/n2.out" t run $N_C "hold 3|"; n2=$last
sleep 0.5
c0=$(cpu_ticks $nc)
t run $N_C "sink|" >"$T/n3.out" 2>&1
c1=$(cpu_ticks $nc)
wait $n1; wait $n2
capped() { cat "$T/n3.out"; echo "cpu ticks while waiting: $((c1 - c0))"
	grep -q '^eof after [2-9]' "$T/n3.out" && [ $((c1 - c0)) -lt 20 ]; }
check "limits: -n 2: the third waits its turn, idle" capped
stop $nc

# out of fds: accepting pauses, then resumes by itself
(ulimit -n 24; exec "$CLIENT" -v -n 100 127.0.0.1:$F_C 127.0.0.1:$SB "$KEY") \
	>>"$T/F.c.log" 2>&1 &
fc=$!; pids="$pids $fc"
listening $F_C >/dev/null
c0=$(cpu_ticks $fc)
check "limits: out of fds: 30 connections all served" t par $F_C 30 "hold 2|"
c1=$(cpu_ticks $fc)
emfile() { grep -q 'Too many open files' "$T/F.c.log" && alive $fc &&
	echo "cpu ticks: $((c1 - c0))" && [ $((c1 - c0)) -lt 100 ]; }
check "limits: out of fds: paused, not dead, not spinning" emfile
stop $fc
# the server's accept() itself runs out: strangers hold its fds
(ulimit -n 16; exec "$SERVER" -t 3 -n 100 127.0.0.1:$G_S 127.0.0.1:$MUX "$KEY") \
	>>"$T/G.s.log" 2>&1 &
gs=$!; pids="$pids $gs"
listening $G_S >/dev/null
bg "$T/hog.out" t hog $G_S 20 2.5; hog=$last
sleep 1
c0=$(cpu_ticks $gs); sleep 1; c1=$(cpu_ticks $gs)
wait $hog
accept_pause() { cat "$T/hog.out"; echo "cpu ticks in 1 s: $((c1 - c0))"
	grep -q 'accept: Too many open files' "$T/G.s.log" && [ $((c1 - c0)) -lt 10 ]; }
check "limits: accept() out of fds: pauses without spinning" accept_pause
g_serves() { bg "$T/G.c.log" "$CLIENT" 127.0.0.1:$G_C 127.0.0.1:$G_S "$KEY"
	gc=$last; listening $G_C && t up $G_C 100000; rc=$?; stop $gc; return $rc; }
check "limits: accept() out of fds: serves again by itself" wait_for 50 g_serves
stop $gs
