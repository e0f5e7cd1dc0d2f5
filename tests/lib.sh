# tests/lib.sh - the helpers of test.sh's groups (POSIX sh; sourced by
# test.sh, which sets T (the temporary directory), TESTS, PY, CLIENT,
# SERVER, KEY, PORT_BASE, TAG, pids and the counters first). Each group
# file, tests/NN-NAME.sh, uses these:
#
# Ports (every group asks for its own; none is numbered by hand)
#   ports VAR...          the next free ports from PORT_BASE, one per VAR
#                         (a port some socket holds is passed over)
#
# Results
#   ok NAME / no NAME / skip NAME   count and print one result
#   check NAME CMD...     pass when CMD succeeds; on failure show its output
#   have WHAT...          true when every WHAT is here; else $why says which
#                         is not. WHAT: a command, py:MODULE (for $PY),
#                         mntns (a private mount namespace), netns
#   check_with "WHAT..." NAME CMD...   check, or a skip naming what is missing
#   mcheck NAME CMD...    check_with mntns: for the tests that need their own
#                         /etc/hosts, resolv.conf or /dev/log
#
# Processes (every one started here is stopped by PID)
#   bg LOG CMD...         start CMD in the background, its PID in $last
#                         (and in $pids: test.sh stops them all at the end)
#   stop PID              SIGTERM, wait at most 5 s, then SIGKILL; reaped
#   alive PID             true while PID runs (a zombie is not alive)
#   listening PORT [N]    wait (N tenths of a second, 5 s) until PORT listens
#   wait_for N CMD...     retry CMD for up to N tenths of a second
#   fds PID / cpu_ticks PID / rss_kb PID   open fds, CPU ticks, RSS in kB
#
# Programs
#   t CMD ARGS...         tests/t.py CMD ARGS... (see t.py)
#   build OUT FLAGS...    compile gstunnel.c with $CC (cc) and FLAGS into
#                         OUT; errors in $T/cc.log. The caller checks
#                         "have_cc" first (a compiler is optional)
#   have_cc               have the compiler of $CC
#   pair NAME CPORT SPORT TARGET   a server on SPORT in front of TARGET and
#                         a client on CPORT; PIDs $spid $cpid, options
#                         $SOPT $COPT, logs $T/NAME.[cs].log
#   start_targets         the shared targets, for every group: echo on $ECHO,
#                         the mode server (t.py's mux) on $MUX, pair A
#                         (client port $CA, PIDs $A_C $A_S) to the echo and
#                         pair B ($CB, server port $SB, $B_C $B_S) to the mux
#   accepts               how many connections the targets have accepted
#   nothing_in N          the targets accepted nothing since accepts was N
#   bad_args WHAT ARGS... the client refuses ARGS: exit 2, one line, WHAT
#   logged TEXT FILE      FILE has TEXT (a grep pattern); else show FILE

# ---- ports ---------------------------------------------------------------
# One run uses PORT_BASE .. PORT_BASE + PORT_SPAN - 1 (the chacha20 pass is
# another process and starts again at PORT_BASE, after this one has stopped
# everything). Ports in a private network namespace (dns, dead) are fixed:
# nothing else is there. A port that some socket holds (in any state) is
# passed over: with a PORT_BASE inside the kernel's range for outgoing
# connections (/proc/sys/net/ipv4/ip_local_port_range, often 32768-60999),
# the tests' own connections take ports there, and one in TIME_WAIT keeps
# its port for a minute. (The default, 24000, is below that range.)
PORT_SPAN=200
_port_next=$PORT_BASE
ports() {
	for _pv in "$@"; do
		while :; do
			if [ "$_port_next" -ge $((PORT_BASE + PORT_SPAN)) ]; then
				echo "test.sh: more than $PORT_SPAN ports (raise PORT_SPAN)"
				exit 2
			fi
			_ph=$(printf ':%04X$' "$_port_next")
			cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h="$_ph" \
				'$2 ~ h { f = 1 } END { exit !f }' || break
			_port_next=$((_port_next + 1))
		done
		eval "$_pv=\$_port_next"
		_port_next=$((_port_next + 1))
	done
}

# ---- results -------------------------------------------------------------
ok() { passed=$((passed + 1)); echo "ok      $TAG$*"; }
no() { failed=$((failed + 1)); echo "FAILED  $TAG$*"; }
skip() { skipped=$((skipped + 1)); echo "skipped $TAG$*"; }
# $_cn: the check that runs (test.sh's cleanup names it if the shell dies)
check() {
	_cn=$1; shift
	if "$@" >"$T/out" 2>&1; then ok "$_cn"; else
		no "$_cn"; sed 's/^/        | /' "$T/out" | tail -n 8; fi
}
MNTNS=0 NETNS=0
unshare -m sh -c 'mount --make-rprivate /' 2>/dev/null && MNTNS=1
unshare -n true 2>/dev/null && NETNS=1
have() {
	for _h in "$@"; do
		case $_h in
		mntns) have unshare || return 1
			[ $MNTNS = 1 ] ||
			{ why="no private mount namespace here: a chroot?"; return 1; } ;;
		netns) have unshare || return 1
			[ $NETNS = 1 ] || { why="no network namespace here"; return 1; } ;;
		py:*) "$PY" -c "import ${_h#py:}" 2>/dev/null ||
			{ why="no python3 module ${_h#py:} here"; return 1; } ;;
		*) command -v "$_h" >/dev/null 2>&1 || { why="no $_h here"; return 1; } ;;
		esac
	done
}
check_with() {
	_needs=$1; shift
	# shellcheck disable=SC2086 # a list of words
	if have $_needs; then check "$@"; else skip "$1 ($why)"; fi
}
mcheck() { check_with mntns "$@"; }

# ---- processes -------------------------------------------------------------
bg() { log=$1; shift; "$@" >>"$log" 2>&1 & last=$!; pids="$pids $last"; }
stop() {
	kill "$1" 2>/dev/null
	_s=0; while [ $_s -lt 50 ] && alive "$1"; do sleep 0.1; _s=$((_s + 1)); done
	kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
alive() {
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$st" ] && [ "$st" != Z ]
}
listening() {
	h=$(printf ':%04X$' "$1"); _l=0
	while [ $_l -lt "${2:-50}" ]; do
		cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
			awk -v h="$h" '$2 ~ h && $4 == "0A" { f = 1 } END { exit !f }' &&
			return 0
		sleep 0.1; _l=$((_l + 1))
	done
	echo "nothing listens on port $1"; return 1
}
wait_for() { _wn=$1; shift; _w=0
	while [ $_w -lt "$_wn" ]; do "$@" && return 0; sleep 0.1; _w=$((_w + 1)); done
	"$@"; }
fds() { ls "/proc/$1/fd" | wc -l; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# ---- programs --------------------------------------------------------------
t() { "$PY" "$TESTS/t.py" "$@"; }
have_cc() { _cc=${CC:-cc}; have "${_cc%% *}"; }
build() {
	_out=$1; shift
	# shellcheck disable=SC2086 # CC may be "ccache gcc"
	${CC:-cc} -std=c99 "$@" -o "$_out" gstunnel.c -lbearssl 2>>"$T/cc.log"
}
pair() {
	name=$1 cp=$2 sp=$3 tg=$4; shift 4
	# shellcheck disable=SC2086 # options
	bg "$T/$name.s.log" "$SERVER" ${SOPT:-} 127.0.0.1:"$sp" "$tg" "${SKEY:-$KEY}"
	spid=$last
	# shellcheck disable=SC2086
	bg "$T/$name.c.log" "$CLIENT" ${COPT:-} 127.0.0.1:"$cp" 127.0.0.1:"$sp" "$KEY"
	cpid=$last
	listening "$sp" >/dev/null && listening "$cp" >/dev/null
}

# ---- the shared targets --------------------------------------------------
start_targets() {
	ports ECHO MUX CA SA CB SB
	bg "$T/serve.log" "$PY" "$TESTS/t.py" serve "$T/target.log" "$ECHO" "$MUX"
	listening "$ECHO" >/dev/null && listening "$MUX" >/dev/null || {
		echo "test targets did not start"
		cat "$T/serve.log" "$T/target.log"; exit 1; }
	pair A "$CA" "$SA" 127.0.0.1:"$ECHO"; A_C=$cpid A_S=$spid
	pair B "$CB" "$SB" 127.0.0.1:"$MUX"; B_C=$cpid B_S=$spid
}
accepts() { grep -c '^accept' "$T/target.log"; }
nothing_in() { [ "$(accepts)" = "$1" ] || { echo "target saw a connection"; false; }; }
bad_args() {
	what=$1; shift
	timeout -k 1 10 "$CLIENT" "$@" >"$T/o" 2>"$T/e"; rc=$? # accepted: 124
	[ $rc = 2 ] && [ "$(wc -l <"$T/e")" = 1 ] && grep -q -- "$what" "$T/e" ||
		{ echo "rc=$rc: $(cat "$T/e")"; return 1; }
}
logged() { grep "$1" "$2" || { echo "no '$1' in $2:"; cat "$2"; false; }; }
