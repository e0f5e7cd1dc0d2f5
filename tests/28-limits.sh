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
# the server's accept() itself runs out: strangers hold its fds; a new
# connection gets the oldest stranger's, at once, and nothing spins
(ulimit -n 16; exec "$SERVER" -t 30 -n 100 127.0.0.1:$G_S 127.0.0.1:$MUX "$KEY") \
	>>"$T/G.s.log" 2>&1 &
gs=$!; pids="$pids $gs"
listening $G_S >/dev/null
bg "$T/hog.out" t hog $G_S 20 8; hog=$last
sleep 1
c0=$(cpu_ticks $gs); sleep 1; c1=$(cpu_ticks $gs)
accept_pause() { cat "$T/hog.out"; echo "cpu ticks in 1 s: $((c1 - c0))"
	[ $((c1 - c0)) -lt 10 ]; }
check "limits: accept() out of fds: no spinning" accept_pause
g_serves() { bg "$T/G.c.log" "$CLIENT" 127.0.0.1:$G_C 127.0.0.1:$G_S "$KEY"
	gc=$last; listening $G_C && t up $G_C 100000; rc=$?; stop $gc
	[ $rc = 0 ] && logged "dropped for a new connection" "$T/G.s.log"; }
check "limits: accept() out of fds: a client gets a stranger's fd, at once" g_serves
stop $hog; stop $gs

# what follows does not depend on the cipher: the first pass only
[ -n "${CIPHER:-}" ] && return 0
# -M 16: 400 connections into a target that reads nothing for 6 s, each
# pushing 1 MiB: the server's buffers stop growing at the budget (its RSS
# stays under 24 MiB, where it took 54 MB before), and once the target
# reads, every byte of all 400 arrives
ports MB_S MB_C
bg "$T/MB.s.log" "$SERVER" -M 16 127.0.0.1:$MB_S 127.0.0.1:$MUX "$KEY"; mbs=$last
bg "$T/MB.c.log" "$CLIENT" 127.0.0.1:$MB_C 127.0.0.1:$MB_S "$KEY"; mbc=$last
listening $MB_S >/dev/null && listening $MB_C >/dev/null
bg "$T/mb.out" t helds $MB_C 400 1048576 6; mbh=$last
sleep 4.5
mb_rss=$(rss_kb $mbs)
budget() { echo "server RSS while stalled: $mb_rss kB"; [ "$mb_rss" -lt 24576 ]; }
if grep -q -a -e __asan_init -e __tsan_init "$SERVER_BIN"; then
	skip "limits: -M 16: 400 stalled connections keep the server under 24 MiB (sanitizer build)"
else
	check "limits: -M 16: 400 stalled connections keep the server under 24 MiB" budget
fi
check "limits: -M 16: and then all 400 deliver everything" wait $mbh
stop $mbc; stop $mbs
