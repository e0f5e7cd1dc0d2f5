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
