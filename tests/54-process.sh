# process: -u, not dumpable, -d, -p, GSTUNNEL_KEY wiped
ports ND_S U_S U_C NU_S DM_S EK_S
bg "$T/u.s.log" "$SERVER" -u nobody 127.0.0.1:$U_S 127.0.0.1:$ECHO "$KEY"; us=$last
bg "$T/u.c.log" "$CLIENT" 127.0.0.1:$U_C 127.0.0.1:$U_S "$KEY"; uc=$last
listening $U_S >/dev/null && listening $U_C >/dev/null
nobody=$(id -u nobody)
uid_changed() { grep -E '^(Uid|Gid|Groups):' /proc/$us/status
	awk -v u="$nobody" '/^Uid:/ { exit !($2 == u && $3 == u && $4 == u && $5 == u) }' /proc/$us/status &&
	t echo $U_C 100000; }
check "process: -u nobody: every uid is nobody's, and the tunnel works" uid_changed
undumpable() { o=$(stat -c %u /proc/$us/status); echo "/proc/PID owned by uid $o"; [ "$o" = 0 ] &&
	grep -E '^Max core file size +0 +0 ' /proc/$us/limits; }
check "process: not dumpable (/proc/PID stays root's), no core dumps" undumpable
stop $uc; stop $us
# not dumpable without -u too: as nobody (setpriv), /proc/PID would
# be nobody's if it were
bg "$T/nd.s.log" setpriv --reuid=nobody --regid=nogroup --clear-groups \
	"$SERVER" 127.0.0.1:$ND_S 127.0.0.1:$ECHO "$KEY"; nd=$last
listening $ND_S >/dev/null
nd_root() { o=$(stat -c %u /proc/$nd/status); u=$(awk '/^Uid:/ { print $2 }' /proc/$nd/status)
	echo "runs as $u, /proc/PID owned by $o"; [ "$u" = "$nobody" ] && [ "$o" = 0 ]; }
check "process: not dumpable without -u either (run as nobody by setpriv)" nd_root
stop $nd
nouser() { "$SERVER" -u no_such_user_x 127.0.0.1:$NU_S 127.0.0.1:$ECHO "$KEY" 2>"$T/e"; rc=$?
	cat "$T/e"; [ $rc = 1 ] && grep -q "no user 'no_such_user_x'" "$T/e"; }
check "process: -u with an unknown user refuses to run" nouser
rm -f "$T/pid"
nolog() { "$SERVER" -d :1 127.0.0.1:2 "$KEY" 2>"$T/e"; rc=$?; cat "$T/e"
	[ $rc = 1 ] && grep -q "use -l stderr" "$T/e"; }
if [ -e /dev/log ]; then
	skip "process: -d without a syslog is refused (a syslog is here: /dev/log)"
else
	check "process: -d without a syslog is refused" nolog
fi
dp=""
daemon() { "$SERVER" -d -l stderr -p "$T/pid" 127.0.0.1:$DM_S 127.0.0.1:$ECHO \
		"$KEY" 2>"$T/d.log"; rc=$?
	[ $rc = 0 ] || { echo "exit status $rc"; cat "$T/d.log"; return 1; }
	[ -s "$T/pid" ] || { echo "no pid file"; return 1; }
	dp=$(cat "$T/pid"); pids="$pids $dp"
	alive "$dp" || { echo "pid $dp is not running"; return 1; }
	listening $DM_S || return 1
	sid=$(ps -o sid= -p "$dp" | tr -d ' ')
	[ "$sid" = "$dp" ] || { echo "session $sid, not its own ($dp)"; return 1; }; }
check "process: -d detaches (a new session) and -p writes its pid" daemon
pidgone() { [ -n "$dp" ] && kill "$dp" && wait_for 30 sh -c "[ ! -e '$T/pid' ]"; }
check "process: the pid file goes when it stops" pidgone
GSTUNNEL_KEY=$KEY bg "$T/env.s.log" "$SERVER" 127.0.0.1:$EK_S 127.0.0.1:$ECHO; es=$last
listening $EK_S >/dev/null
no_env_key() { ! grep -a -q "$KEY" /proc/$es/environ; }
check "process: GSTUNNEL_KEY is gone from /proc/PID/environ" no_env_key
stop $es
# the pid file: locked while the process runs, so that a second instance
# refuses to start; not a FIFO (no hang); gone at exit, also with -u
ports PF_S PF_S2 PF_U
bg "$T/pf.s.log" "$SERVER" -p "$T/pf.pid" 127.0.0.1:$PF_S 127.0.0.1:$ECHO "$KEY"; pfs=$last
listening $PF_S >/dev/null
second() { timeout -k 1 10 "$SERVER" -p "$T/pf.pid" 127.0.0.1:$PF_S2 127.0.0.1:$ECHO \
	"$KEY" 2>"$T/e"; rc=$?; cat "$T/e"; [ $rc = 1 ] &&
	grep -q "pid file '$T/pf.pid' is held by a running instance (pid $pfs)" "$T/e" &&
	[ "$(cat "$T/pf.pid")" = "$pfs" ]; }
check "process: a second instance with the same pid file refuses to start" second
stop $pfs
mkfifo "$T/pf.fifo"
fifo() { timeout -k 1 5 "$SERVER" -p "$T/pf.fifo" 127.0.0.1:$PF_S2 127.0.0.1:$ECHO \
	"$KEY" 2>"$T/e"; rc=$?; cat "$T/e"; [ $rc = 1 ] && grep -q "not a regular file" "$T/e"; }
check "process: a FIFO as the pid file is refused at once" fifo
mkdir -p "$T/run" && chmod 755 "$T/run" # root's: nobody cannot unlink there
bg "$T/pfu.s.log" "$SERVER" -u nobody -p "$T/run/pfu.pid" 127.0.0.1:$PF_U \
	127.0.0.1:$ECHO "$KEY"; pfu=$last
listening $PF_U >/dev/null
pid_u_gone() { [ -s "$T/run/pfu.pid" ] || { echo "no pid file"; return 1; }
	kill $pfu; wait_for 30 sh -c "[ ! -e '$T/run/pfu.pid' ]"; }
check "process: with -u, the pid file still goes at exit" pid_u_gone
# GSTUNNEL_KEY is wiped even when the KEY comes from a key file
ports EK2_S
printf '%s' "$KEY" >"$T/ek.key"
GSTUNNEL_KEY=$KEY bg "$T/env2.s.log" "$SERVER" -k "$T/ek.key" 127.0.0.1:$EK2_S 127.0.0.1:$ECHO; es2=$last
listening $EK2_S >/dev/null
no_env_key2() { ! grep -a -q "$KEY" /proc/$es2/environ; }
check "process: GSTUNNEL_KEY is wiped when a key file gives the KEY" no_env_key2
stop $es2
# -u by number: the user's supplementary groups from /etc/group too (in a
# mount namespace with our own /etc/group naming nobody in a group)
ports UN_S
u_num() { grep -v '^gstest:' /etc/group >"$T/group"; echo "gstest:x:4242:nobody" >>"$T/group"
	unshare -m sh -c 'mount --make-rprivate / && mount --bind "$1/group" /etc/group &&
	{ "$2" -u "$3" 127.0.0.1:$4 127.0.0.1:$5 "$6" 2>"$1/un.log" & p=$!
	  sleep 0.5; grep "^Groups:" /proc/$p/status; kill $p; wait $p; }' sh \
		"$T" "$SERVER" "$(id -u nobody)" $UN_S $ECHO "$KEY" >"$T/un.out"
	cat "$T/un.out" "$T/un.log"; grep -q '^Groups:.*\b4242\b' "$T/un.out"; }
mcheck "process: -u by number sets the user's supplementary groups too" u_num
