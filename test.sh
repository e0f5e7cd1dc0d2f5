#!/bin/sh
# test.sh - gstunnel's tests: real binaries, real sockets, loopback only.
#
#   ./test.sh [-l] [-x] [NAME...]
#
#   -l    also run the long soak (rotation under load for 5 minutes)
#   -z    fuzz a sanitizer build of the server with the Python reference
#         client (FUZZ_SECONDS, default 60); CI runs "./test.sh -z fuzz"
#   -x    the cross-platform subset (.ci/cross runs it with one end under
#         qemu, .ci/windows with one end under wine): transfers around
#         record boundaries and of 1 and 16 MiB, half-close, wrong key,
#         tampering, truncation, rotation, 200 concurrent connections
#   NAME  run only the test groups whose name contains NAME
#
# Every test runs with the default cipher (aes; the server has no -c, so it
# takes what the client asks). Then test.sh runs itself again with
# CIPHER=chacha20: both ends get -c chacha20 through wrapper scripts, and the
# groups that carry no data or do not depend on the cipher are left out
# (cli, keys, signal, cipher). The last line counts both runs.
#
# GSTUNNEL_CLIENT / GSTUNNEL_SERVER name the binaries (default: ./gstunnel_*),
# so the same tests rerun on sanitizer builds or under valgrind (a wrapper
# script that execs "valgrind -q ... gstunnel_*"); their reports fail the run;
# PORT_BASE (24000) moves every port; KEEP=1 keeps the logs. The Python
# helpers, run by Debian's /usr/bin/python3, are in tests/: t.py (targets,
# load, strangers), ref.py (a second implementation of the client),
# fuzz.py and mitm.py. Every wait is bounded; every process started here is
# stopped by PID. The last line is "N passed, N failed, N skipped".

set -u
cd "$(dirname "$0")" || exit 2
TESTS=$PWD/tests
CLIENT=${GSTUNNEL_CLIENT:-$PWD/gstunnel_client}
SERVER=${GSTUNNEL_SERVER:-$PWD/gstunnel_server}
# the programs themselves, for the checks that look inside them
CLIENT_BIN=${CLIENT_BIN:-$CLIENT} SERVER_BIN=${SERVER_BIN:-$SERVER}
PY=${PY:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1 # no tests/__pycache__
P=${PORT_BASE:-24000}
LONG=0 CROSS=0 FUZZ=0 FLAGS=""
while :; do
	case ${1:-} in
	-l) LONG=1 ;;
	-x) CROSS=1 ;;
	-z) FUZZ=1 ;;
	*) break ;;
	esac
	FLAGS="$FLAGS $1"; shift
done
ONLY="$*"
[ $CROSS = 1 ] && [ -z "$ONLY" ] && ONLY="transfer secure rotation many"
MANY=1000; [ $CROSS = 1 ] && MANY=200
EXCEPT=${EXCEPT:-}
# the groups of operations (#8): they do not depend on the cipher
OPS="dns targets config stop reload stats logs process strangers dead"
TAG=${CIPHER:+$CIPHER: }

T=$(mktemp -d) || exit 2
pids=""
passed=0 failed=0 skipped=0
KEY=0123456789abcdef0123456789abcdef

_cn="(start)" finished=0
cleanup() {
	if [ $finished = 0 ]; then # a shell error ended the run inside a check
		echo "FAILED  $_cn: test.sh stopped here"
		sed 's/^/        | /' "$T/out" 2>/dev/null | tail -n 8
		echo "$passed passed, $((failed + 1)) failed, $skipped skipped"
	fi
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	if [ -n "${KEEP:-}" ]; then echo "logs kept in $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { passed=$((passed + 1)); echo "ok      $TAG$*"; }
no() { failed=$((failed + 1)); echo "FAILED  $TAG$*"; }
skip() { skipped=$((skipped + 1)); echo "skipped $TAG$*"; }
# check NAME CMD...: pass when CMD succeeds; show its output when it fails
check() {
	_cn=$1; shift
	if "$@" >"$T/out" 2>&1; then ok "$_cn"; else
		no "$_cn"; sed 's/^/        | /' "$T/out" | tail -n 8; fi
}
t() { "$PY" "$TESTS/t.py" "$@"; }
want() { for w in $EXCEPT; do [ "$1" = "$w" ] && return 1; done
	case " $ONLY " in "  ") return 0 ;; esac
	for w in $ONLY; do case $1 in *"$w"*) return 0 ;; esac; done; return 1; }

# CIPHER set: both ends get -c CIPHER, through wrapper scripts
if [ -n "${CIPHER:-}" ]; then
	for w in CLIENT SERVER; do
		eval "real=\$$w"
		printf '#!/bin/sh\nexec "%s" -c %s "$@"\n' "$real" "$CIPHER" >"$T/$w"
		chmod +x "$T/$w"
		eval "$w=\$T/\$w"
	done
fi

# mcheck NAME CMD...: check, for the tests that need a private mount
# namespace (their own /etc/hosts, resolv.conf, /dev/log); a chroot, where
# / is no mount point, has none: there they are skipped
MNTNS=0
unshare -m sh -c 'mount --make-rprivate /' 2>/dev/null && MNTNS=1
mcheck() {
	if [ $MNTNS = 1 ]; then check "$@"; else
		skip "$1 (no private mount namespace here: a chroot?)"; fi
}

# bg LOG CMD...: start CMD in the background, its PID in $last
bg() { log=$1; shift; "$@" >>"$log" 2>&1 & last=$!; pids="$pids $last"; }
stop() { # stop PID: SIGTERM, then wait at most 5 s
	kill "$1" 2>/dev/null
	_s=0; while [ $_s -lt 50 ] && alive "$1"; do sleep 0.1; _s=$((_s + 1)); done
	kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
alive() { # a zombie is not alive
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$st" ] && [ "$st" != Z ]
}
listening() { # listening PORT: within 5 s
	h=$(printf ':%04X$' "$1"); _l=0
	while [ $_l -lt 50 ]; do
		cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
			awk -v h="$h" '$2 ~ h && $4 == "0A" { f = 1 } END { exit !f }' &&
			return 0
		sleep 0.1; _l=$((_l + 1))
	done
	echo "nothing listens on port $1"; return 1
}
fds() { ls "/proc/$1/fd" | wc -l; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# wait_for N CMD...: retry CMD for up to N tenths of a second
wait_for() { _wn=$1; shift; _w=0
	while [ $_w -lt "$_wn" ]; do "$@" && return 0; sleep 0.1; _w=$((_w + 1)); done
	"$@"; }

# pair NAME CPORT SPORT TARGET [-- opts]: a server and a client in front of
# TARGET; their PIDs in $spid and $cpid, logs in $T/NAME.[cs].log
pair() {
	name=$1 cp=$2 sp=$3 tg=$4; shift 4
	bg "$T/$name.s.log" "$SERVER" ${SOPT:-} 127.0.0.1:"$sp" "$tg" "${SKEY:-$KEY}"
	spid=$last
	bg "$T/$name.c.log" "$CLIENT" ${COPT:-} 127.0.0.1:"$cp" 127.0.0.1:"$sp" "$KEY"
	cpid=$last
	listening "$sp" >/dev/null && listening "$cp" >/dev/null
}

ECHO=$((P + 1)) MUX=$((P + 2))

# ---- applications: HTTP proxy, SOCKS5 proxy, mail ----------------------
APPS_PY=${APPS_PY:-/usr/bin/python3}

_ap_log() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- helpers
_ap_ports() {
    _ap_base=${PORT_BASE:-23000}
    _ap_origin_port=$((_ap_base + 1))
    _ap_squid_port=$((_ap_base + 2))
    _ap_socks_port=$((_ap_base + 3))
    _ap_smtp_port=$((_ap_base + 4))
}

# _ap_alive PID: true if PID exists and is not a zombie
_ap_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    _ap_st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    case $_ap_st in
        Z|X|'') return 1 ;;
    esac
    return 0
}

# _ap_port_open PORT: true if something accepts TCP on 127.0.0.1:PORT
_ap_port_open() {
    "$APPS_PY" -c '
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except Exception:
    sys.exit(1)
s.close()
' "$1" 2>/dev/null
}

# _ap_wait_port PORT PID MAXITER: poll (0.1 s steps) until PORT accepts;
# fails early if PID (if non-empty) died.
_ap_wait_port() {
    _ap_i=0
    while [ "$_ap_i" -lt "$3" ]; do
        if _ap_port_open "$1"; then return 0; fi
        if [ -n "$2" ] && ! _ap_alive "$2"; then return 2; fi
        sleep 0.1
        _ap_i=$((_ap_i + 1))
    done
    return 1
}

# _ap_kill PID...: TERM, wait up to 5 s, then KILL; reap.
_ap_kill() {
    for _ap_p in "$@"; do
        [ -n "$_ap_p" ] || continue
        # children first (e.g. helper processes), by parent PID
        pkill -TERM -P "$_ap_p" 2>/dev/null || :
        kill -TERM "$_ap_p" 2>/dev/null || :
        _ap_i=0
        while [ "$_ap_i" -lt 50 ] && _ap_alive "$_ap_p"; do
            sleep 0.1
            _ap_i=$((_ap_i + 1))
        done
        if _ap_alive "$_ap_p"; then
            pkill -KILL -P "$_ap_p" 2>/dev/null || :
            kill -KILL "$_ap_p" 2>/dev/null || :
            sleep 0.1
        fi
        wait "$_ap_p" 2>/dev/null || :
    done
}

_ap_sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

_ap_token() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }

_ap_tail() {  # _ap_tail FILE: last lines of a log, indented, to stderr
    if [ -s "$1" ]; then tail -n 5 "$1" | sed 's/^/    | /' >&2; fi
}

_ap_need() {  # _ap_need CMD...: fail if a command is missing
    for _ap_c in "$@"; do
        if ! command -v "$_ap_c" >/dev/null 2>&1; then
            _ap_log "$_ap_fn: FAIL: missing command $_ap_c (see PACKAGES)"
            return 1
        fi
    done
}

_ap_port_free() {  # _ap_port_free PORT: fail if something already listens
    if _ap_port_open "$1"; then
        _ap_log "$_ap_fn: FAIL: port $1 already in use (stale process? change PORT_BASE)"
        return 1
    fi
}

_ap_tunnel() {  # _ap_tunnel TARGET: tunnel_up + bounded wait for the entry port
    if [ -z "${TUNNEL_PORT:-}" ]; then
        _ap_log "$_ap_fn: FAIL: TUNNEL_PORT is not set"
        return 1
    fi
    if ! tunnel_up "$1"; then
        _ap_tunnel_on=1   # let tunnel_down clean up whatever was started
        _ap_log "$_ap_fn: FAIL: tunnel_up $1 failed"
        return 1
    fi
    _ap_tunnel_on=1
    if ! _ap_wait_port "$TUNNEL_PORT" "" 50; then
        _ap_log "$_ap_fn: FAIL: tunnel entry 127.0.0.1:$TUNNEL_PORT not accepting after 5 s"
        return 1
    fi
}

# Origin HTTP server serving $1 (a dir) on 127.0.0.1:$2 and, when the host
# has it, [::1]:$2 too (so "localhost" works whatever it resolves to).
# Sets _ap_origin_pid.  Log in $3.
_ap_origin_start() {
    "$APPS_PY" "$TESTS/t.py" origin "$1" "$2" </dev/null >"$3" 2>&1 &
    _ap_origin_pid=$!
    _ap_wait_port "$2" "$_ap_origin_pid" 50
    case $? in
        0) return 0 ;;
        2) _ap_log "$_ap_fn: FAIL: origin HTTP server exited"; _ap_tail "$3"; return 1 ;;
        *) _ap_log "$_ap_fn: FAIL: origin HTTP server not listening on $2 after 5 s"; _ap_tail "$3"; return 1 ;;
    esac
}

_ap_mkfile() {  # _ap_mkfile DIR: 1 MiB random file DIR/file
    if ! head -c 1048576 /dev/urandom >"$1/file" 2>/dev/null; then
        _ap_log "$_ap_fn: FAIL: cannot create test file"
        return 1
    fi
}

_ap_begin() {  # common state reset
    _ap_fn=$1
    _ap_dir=
    _ap_pids=
    _ap_origin_pid=
    _ap_tunnel_on=
    _ap_squid_svc=
    _ap_t0=$(date +%s)
}

_ap_end() {  # _ap_end RC: stop everything, remove temp dir, report
    _ap_rc=$1
    if [ -n "$_ap_tunnel_on" ]; then
        tunnel_down || :
        _ap_tunnel_on=
    fi
    # shellcheck disable=SC2086
    _ap_kill $_ap_pids $_ap_origin_pid
    _ap_pids=
    _ap_origin_pid=
    if [ -n "$_ap_dir" ] && [ -d "$_ap_dir" ]; then
        if [ "${APPS_KEEP:-0}" = 1 ]; then
            _ap_log "$_ap_fn: kept $_ap_dir"
        else
            rm -rf "$_ap_dir"
        fi
    fi
    _ap_dir=
    if [ -n "$_ap_squid_svc" ]; then   # squid removes these itself, unless killed
        rm -f /dev/shm/"$_ap_squid_svc"-*.shm 2>/dev/null || :
        _ap_squid_svc=
    fi
    if [ "$_ap_rc" -eq 0 ]; then
        echo "$_ap_fn: ok ($(( $(date +%s) - _ap_t0 )) s)"
    else
        _ap_log "$_ap_fn: failed after $(( $(date +%s) - _ap_t0 )) s"
    fi
    return "$_ap_rc"
}

# ---------------------------------------------------------------- app_http
# _ap_daemon WHAT PORT LOG TENTHS CMD...: start CMD, wait up to TENTHS
# tenths of a second for PORT; on failure say why and show LOG
_ap_daemon() {
    _ap_what=$1 _ap_dport=$2 _ap_dlog=$3 _ap_dt=$4; shift 4
    "$@" </dev/null >"$_ap_dlog" 2>&1 &
    _ap_pids="$_ap_pids $!"
    _ap_wait_port "$_ap_dport" "$!" "$_ap_dt"
    case $? in
        0) return 0 ;;
        2) _ap_log "$_ap_fn: FAIL: $_ap_what exited" ;;
        *) _ap_log "$_ap_fn: FAIL: $_ap_what not listening on $_ap_dport" ;;
    esac
    _ap_tail "$_ap_dlog"
    return 1
}

# _ap_with_origin PROXY_PORT (after _ap_ports): ports free, a temp dir, the origin serving a
# random 1 MiB file (used by the HTTP and SOCKS checks)
_ap_with_origin() {
    _ap_port_free "$_ap_origin_port" || return 1
    _ap_port_free "$1" || return 1
    _ap_dir=$(mktemp -d) || { _ap_log "$_ap_fn: FAIL: mktemp"; return 1; }
    mkdir "$_ap_dir/www" || return 1
    _ap_mkfile "$_ap_dir/www" || return 1
    _ap_origin_start "$_ap_dir/www" "$_ap_origin_port" "$_ap_dir/origin.log"
}

_ap_http_body() {
    _ap_need curl squid sha256sum "$APPS_PY" || return 1
    _ap_ports
    _ap_with_origin "$_ap_squid_port" || return 1
    mkdir "$_ap_dir/squid" || return 1

    # Squid refuses to keep running as root: it drops to cache_effective_user,
    # which must be able to reach and write its log/pid directory.
    _ap_sq=$_ap_dir/squid
    _ap_squser=
    if [ "$(id -u)" -eq 0 ]; then
        for _ap_u in proxy nobody; do
            if id "$_ap_u" >/dev/null 2>&1; then _ap_squser=$_ap_u; break; fi
        done
        if [ -z "$_ap_squser" ]; then
            _ap_log "app_http: FAIL: no unprivileged user (proxy/nobody) for squid"
            return 1
        fi
        chmod 711 "$_ap_dir"
        chown "$_ap_squser" "$_ap_sq"
    fi
    {
        echo "http_port 127.0.0.1:$_ap_squid_port"
        echo "visible_hostname gstunnel-test"
        [ -n "$_ap_squser" ] && echo "cache_effective_user $_ap_squser"
        echo "pid_filename $_ap_sq/squid.pid"
        echo "cache_log $_ap_sq/cache.log"
        echo "access_log stdio:$_ap_sq/access.log"
        echo "cache_store_log none"
        echo "logfile_rotate 0"
        echo "coredump_dir $_ap_sq"
        echo "netdb_filename none"
        echo "cache deny all"
        echo "cache_mem 8 MB"
        echo "max_filedescriptors 1024"
        echo "pinger_enable off"
        echo "dns_nameservers 127.0.0.1"
        echo "shutdown_lifetime 0 seconds"
        echo "acl lo_src src 127.0.0.1/32 ::1"
        echo "acl lo_dst dst 127.0.0.1/32 ::1"
        echo "http_access allow lo_src lo_dst"
        echo "http_access deny all"
    } >"$_ap_sq/squid.conf"

    # -n: own service name, so squid's shared-memory segments
    # (/dev/shm/<service>-cf__*.shm, created O_EXCL) and its identity never
    # clash with a system squid (service "squid") or a concurrent run.
    _ap_squid_svc=gstunnel${_ap_squid_port}
    rm -f /dev/shm/"$_ap_squid_svc"-*.shm 2>/dev/null || :  # stale, from a kill -9
    # squid 5.7 usually listens after ~0.5-1.5 s; allow 10 s
    _ap_daemon squid "$_ap_squid_port" "$_ap_sq/stdout.log" 100 \
        squid -N -n "$_ap_squid_svc" -f "$_ap_sq/squid.conf" ||
        { _ap_tail "$_ap_sq/cache.log"; return 1; }

    _ap_tunnel "$_ap_squid_port" || return 1

    _ap_url="http://127.0.0.1:$_ap_origin_port/file"
    if ! curl -sS --max-time 20 --connect-timeout 5 --noproxy '' -f \
            -x "http://127.0.0.1:$TUNNEL_PORT" -D "$_ap_dir/headers" \
            -o "$_ap_dir/out" "$_ap_url" 2>"$_ap_dir/curl.err"; then
        _ap_log "app_http: FAIL: curl via tunnel->squid: $(head -c 300 "$_ap_dir/curl.err")"
        return 1
    fi
    if [ "$(_ap_sha "$_ap_dir/out")" != "$(_ap_sha "$_ap_dir/www/file")" ]; then
        _ap_log "app_http: FAIL: sha256 mismatch ($(wc -c <"$_ap_dir/out") bytes received)"
        return 1
    fi
    # Proof that squid handled it: its Via header, and its access log line.
    if ! grep -qi '^Via:.*squid' "$_ap_dir/headers"; then
        _ap_log "app_http: FAIL: response has no squid Via header"
        return 1
    fi
    # the log line is written at the end of the transaction
    wait_for 30 grep -q "/200 .* GET $_ap_url " "$_ap_sq/access.log" 2>/dev/null &&
        return 0
    _ap_log "app_http: FAIL: no 'GET $_ap_url' 200 line in squid access.log"
    _ap_tail "$_ap_sq/access.log"
    return 1
}

# ---------------------------------------------------------------- app_socks
_ap_socks_body() {
    _ap_need curl microsocks sha256sum "$APPS_PY" || return 1
    _ap_ports
    _ap_with_origin "$_ap_socks_port" || return 1

    _ap_daemon microsocks "$_ap_socks_port" "$_ap_dir/microsocks.log" 50 \
        microsocks -i 127.0.0.1 -p "$_ap_socks_port" || return 1

    _ap_tunnel "$_ap_socks_port" || return 1

    if ! curl -sS --max-time 20 --connect-timeout 5 --noproxy '' -f \
            --socks5-hostname "127.0.0.1:$TUNNEL_PORT" \
            -o "$_ap_dir/out" "http://localhost:$_ap_origin_port/file" 2>"$_ap_dir/curl.err"; then
        _ap_log "app_socks: FAIL: curl via tunnel->microsocks: $(head -c 300 "$_ap_dir/curl.err")"
        _ap_tail "$_ap_dir/microsocks.log"
        return 1
    fi
    if [ "$(_ap_sha "$_ap_dir/out")" != "$(_ap_sha "$_ap_dir/www/file")" ]; then
        _ap_log "app_socks: FAIL: sha256 mismatch ($(wc -c <"$_ap_dir/out") bytes received)"
        return 1
    fi
    # Proof that microsocks resolved and connected it: its per-client log line
    # "client[N] 127.0.0.1: connected to localhost:PORT".
    wait_for 30 grep -q "connected to localhost:$_ap_origin_port" "$_ap_dir/microsocks.log" \
        2>/dev/null && return 0
    _ap_log "app_socks: FAIL: microsocks did not log 'connected to localhost:$_ap_origin_port'"
    _ap_tail "$_ap_dir/microsocks.log"
    return 1
}

# ---------------------------------------------------------------- app_smtp
_ap_smtp_body() {
    _ap_need swaks "$APPS_PY" || return 1
    if ! "$APPS_PY" -c 'import aiosmtpd' 2>/dev/null; then
        _ap_log "app_smtp: FAIL: $APPS_PY cannot import aiosmtpd (apt-get install python3-aiosmtpd)"
        return 1
    fi
    _ap_ports
    _ap_port_free "$_ap_smtp_port" || return 1
    _ap_dir=$(mktemp -d) || { _ap_log "app_smtp: FAIL: mktemp"; return 1; }

    # Mailbox handler writes each message into a Maildir ($_ap_dir/mail/new/).
    # -n: do not setuid to nobody (needed when run as root, harmless otherwise).
    _ap_daemon aiosmtpd "$_ap_smtp_port" "$_ap_dir/smtpd.log" 50 \
        "$APPS_PY" -m aiosmtpd -n -l "127.0.0.1:$_ap_smtp_port" \
        -c aiosmtpd.handlers.Mailbox "$_ap_dir/mail" || return 1

    _ap_tunnel "$_ap_smtp_port" || return 1

    _ap_tok=$(_ap_token)
    if ! timeout 25 swaks --server 127.0.0.1 --port "$TUNNEL_PORT" --timeout 10 \
            --helo localhost --to a@example.test --from b@example.test \
            --header "Subject: gstunnel-$_ap_tok" \
            --body "gstunnel test body $_ap_tok" \
            >"$_ap_dir/swaks.log" 2>&1; then
        _ap_log "app_smtp: FAIL: swaks via tunnel failed"
        _ap_tail "$_ap_dir/swaks.log"
        return 1
    fi
    _ap_i=0
    while [ "$_ap_i" -lt 30 ]; do
        for _ap_m in "$_ap_dir"/mail/new/*; do
            [ -f "$_ap_m" ] || continue
            if grep -q "^Subject: gstunnel-$_ap_tok" "$_ap_m" &&
               grep -q "^gstunnel test body $_ap_tok" "$_ap_m"; then
                return 0
            fi
        done
        sleep 0.1
        _ap_i=$((_ap_i + 1))
    done
    _ap_log "app_smtp: FAIL: no stored message with token $_ap_tok in subject and body"
    _ap_tail "$_ap_dir/smtpd.log"
    return 1
}

# app NAME: run the check _ap_NAME_body (http, socks, smtp), then clean up
app() {
    _ap_begin "app_$1"
    "_ap_$1_body" && _ap_rc=0 || _ap_rc=$?
    _ap_end "$_ap_rc"
}

# ---- the targets: echo on $ECHO, the mode server on $MUX -----------------
bg "$T/serve.log" "$PY" "$TESTS/t.py" serve "$T/target.log" "$ECHO" "$MUX"
listening "$ECHO" >/dev/null && listening "$MUX" >/dev/null ||
	{ echo "test targets did not start"; cat "$T/serve.log" "$T/target.log"; exit 1; }
accepts() { grep -c '^accept' "$T/target.log"; }
bad_args() { # bad_args WHAT ARGS...: exit 2, one line naming it
	what=$1; shift
	timeout -k 1 10 "$CLIENT" "$@" >"$T/o" 2>"$T/e"; rc=$? # accepted: 124
	[ $rc = 2 ] && [ "$(wc -l <"$T/e")" = 1 ] && grep -q -- "$what" "$T/e" ||
		{ echo "rc=$rc: $(cat "$T/e")"; return 1; }
}
nothing_in() { [ "$(accepts)" = "$1" ] || { echo "target saw a connection"; false; }; }
logged() { grep "$1" "$2" || { echo "no '$1' in $2:"; cat "$2"; false; }; }

# A: to the echo target; B: to the mode server
pair A $((P + 12)) $((P + 11)) 127.0.0.1:$ECHO; A_C=$cpid A_S=$spid
pair B $((P + 14)) $((P + 13)) 127.0.0.1:$MUX; B_C=$cpid B_S=$spid
CA=$((P + 12)) CB=$((P + 14)) SB=$((P + 13))

# The rotation tests stream for 30 s: they run beside the others.
if want rotation; then
	COPT="-v -r 1" SOPT="-v -r 1" pair R $((P + 16)) $((P + 15)) 127.0.0.1:$ECHO
	bg "$T/rot.out" t stream $((P + 16)) 30 256; rot=$last
	# the server asks (REQUEST); the client never rotates on its own
	COPT="-v -r 0" SOPT="-v -r 1" pair Q $((P + 18)) $((P + 17)) 127.0.0.1:$ECHO
	bg "$T/rotq.out" t stream $((P + 18)) 8 256; rotq=$last
	# their target connections, before anything counts connections
	streams_in() { [ "$(accepts)" -ge 2 ]; }
	wait_for 50 streams_in
fi

# ---- command line ---------------------------------------------------------
if want cli; then
	awk '/^## Usage/ { u = 1; next } u && /^## / { exit }
	     u && /^    usage:/ { p = 1 }
	     p { sub(/^    /, ""); print }
	     p && /print this help and exit/ { exit }' README >"$T/usage"
	usage_same() { [ -s "$T/usage" ] && "$1" -h | diff - "$T/usage"; }
	check "cli: gstunnel_client -h is the README's usage" usage_same "$CLIENT"
	check "cli: gstunnel_server -h is the README's usage" usage_same "$SERVER"
	# the man page has one item per option of -h, with the same long name
	man_same() { awk '/^\.It Fl / { f = $3 } /^\.Pq Cm / && f {
		print "-" f ", --" $3; f = "" }' dist/gstunnel.1 | sort >"$T/man.opts"
		"$1" -h | sed -n 's/^  \(-., --[a-z-]*\).*/\1/p' | sort | diff - "$T/man.opts" &&
		[ "$(wc -l <"$T/man.opts")" -gt 10 ]; }
	check "cli: the man page lists the options of -h (client)" man_same "$CLIENT"
	check "cli: the man page lists the options of -h (server)" man_same "$SERVER"
	check "cli: the man page passes mandoc -T lint" mandoc -T lint -W warning dist/gstunnel.1
	installs() { rm -rf "$T/inst"; make -s install DESTDIR="$T/inst" PREFIX=/usr >/dev/null &&
		for f in bin/gstunnel_client bin/gstunnel_server share/man/man1/gstunnel.1 \
			share/man/man1/gstunnel_client.1 share/man/man1/gstunnel_server.1; do
			[ -s "$T/inst/usr/$f" ] || { echo "no $f"; return 1; }; done; }
	check "cli: make install puts the programs and the man page in place" installs
	version() { "$CLIENT" -V | grep -x "gstunnel_client $(sed -n 's/^VERSION = //p' Makefile)"; }
	check "cli: -V prints the Makefile's version" version
	L=127.0.0.1:$((P + 90)) S=127.0.0.1:$((P + 91))
	check "cli: short key"         bad_args "16, 24 or 32" "$L" "$S" 0123456789abcde
	check "cli: long key"          bad_args "33 bytes" "$L" "$S" "${KEY}x"
	check "cli: 20-byte key"       bad_args "20 bytes" "$L" "$S" 01234567890123456789
	check "cli: bad port"          bad_args "port '99999'" "$L" 127.0.0.1:99999 "$KEY"
	check "cli: port not a number" bad_args "port 'http'" 127.0.0.1:http "$S" "$KEY"
	check "cli: no port"           bad_args "host:port" "$L" 127.0.0.1 "$KEY"
	check "cli: unresolvable host" bad_args "cannot resolve SERVER 'no.such.host.invalid'" \
		"$L" no.such.host.invalid:80 "$KEY"
	check "cli: missing argument"  bad_args "missing SERVER" "$L"
	check "cli: missing key"       bad_args "missing KEY" "$L" "$S"
	check "cli: extra argument"    bad_args "unexpected argument" "$L" "$S" "$KEY" more
	check "cli: bad -n"            bad_args "-n MAXCONN '0'" -n 0 "$L" "$S" "$KEY"
	check "cli: bad -t"            bad_args "-t SECONDS 'soon'" -t soon "$L" "$S" "$KEY"
	check "cli: unknown option"    bad_args "unknown option '-x'" -x "$L" "$S" "$KEY"
	check "cli: option without its value" bad_args "-k needs a value" -k
	cannot_listen() { "$SERVER" 127.0.0.1:$SB 127.0.0.1:1 $KEY 2>"$T/e"
		[ $? = 1 ] && grep -q 'cannot listen' "$T/e"; }
	check "cli: a port in use exits 1" cannot_listen
fi

# ---- crypto self-test and keys ------------------------------------------
if want keys; then
	selftest() { "$CLIENT" -S >"$T/st"; rc=$?; cat "$T/st"
		[ $rc = 0 ] && ! grep -q FAILED "$T/st" &&
		[ "$(grep -c '^aes-gcm .* ok$' "$T/st")" -ge 4 ] &&
		[ "$(grep -c '^chacha20-poly1305 .* ok$' "$T/st")" -ge 2 ] &&
		grep -q '^records: chacha20: .* ok' "$T/st" &&
		grep -q '^X25519 RFC 7748 6.1 *ok' "$T/st" &&
		grep -q '^PBKDF2-HMAC-SHA256 RFC 7914 *ok' "$T/st" &&
		grep -q '^HKDF-SHA256 RFC 5869 1 *ok' "$T/st"; }
	check "keys: self-test: every implementation pair of both ciphers passes" selftest
	speed() { "$SERVER" -B >"$T/sp"; rc=$?; cat "$T/sp"
		# the last line names the cipher whose pair in use measured most
		best=$(awk '/MB\/s$/ { k = split($0, a, " +"); n = a[k - 1] + 0
			if (!(a[1] in top) || n > top[a[1]]) { top[a[1]] = n; who[a[1]] = a[2] } }
			END { c = "chacha20-poly1305"; if (top["aes-gcm"] >= top[c]) c = "aes-gcm"
			print c " " who[c] }' "$T/sp")
		[ $rc = 0 ] && [ "$(grep -c '^aes-gcm .* MB/s$' "$T/sp")" -ge 4 ] &&
		[ "$(grep -c '^chacha20-poly1305 .* MB/s$' "$T/sp")" -ge 2 ] &&
		grep -q '^x25519 .* [1-9][0-9]* operations/s$' "$T/sp" &&
		tail -n 1 "$T/sp" | grep -E "^faster here: -c (aes \(aes-gcm|chacha20 \(chacha20-poly1305) " &&
		tail -n 1 "$T/sp" | grep "^faster here: -c [a-z0-9]* (${best%% *} " ; }
	check "keys: -B measures every pair and names the faster -c" speed
	gen() { a=$("$CLIENT" -g) b=$("$SERVER" -g); echo "$a $b"
		echo "$a" | grep -qx '[A-Za-z0-9]\{32\}' && [ "$a" != "$b" ]; }
	check "keys: -g prints 32 characters, new each time" gen
	no_rdrand() { GSTUNNEL_NO_RDRAND=1 "$CLIENT" -S | grep 'RDRAND off' &&
		GSTUNNEL_NO_RDRAND=1 "$CLIENT" -g | grep -x '[A-Za-z0-9]\{32\}'; }
	check "keys: without RDRAND (self-test, -g)" no_rdrand
	# kernels before 3.17: a build without getrandom() waits once for
	# /dev/random to be readable before it reads /dev/urandom
	if [ $CROSS = 1 ]; then :
	elif ! ${CC:-cc} -std=c99 -O2 -DNO_GETRANDOM -DCLIENT -o "$T/ng_client" \
		gstunnel.c -lbearssl 2>"$T/cc.log"; then
		skip "keys: without getrandom (cannot build here: $(head -c 80 "$T/cc.log"))"
	elif ! command -v strace >/dev/null; then
		skip "keys: without getrandom, /dev/random first (no strace here)"
	else
		no_getrandom() { "$T/ng_client" -S | grep 'OS random /dev/urandom (after /dev/random)' &&
			strace -e trace=open,openat,poll,ppoll,read -o "$T/ng.trace" \
				"$T/ng_client" -g && cat "$T/ng.trace" &&
			awk '/"\/dev\/random"/ && /open/ { r = 1 }
			     r && /poll\(\[\{fd=[0-9]+, events=POLLIN\}\].* = 1 / { p = 1 }
			     /"\/dev\/urandom"/ && /open/ { exit !(r && p) }
			     /getrandom/ { exit 1 }' "$T/ng.trace"; }
		check "keys: without getrandom: waits for /dev/random, then reads /dev/urandom" no_getrandom
	fi
	if grep -qw rdrand /proc/cpuinfo; then
		check "keys: RDRAND is used when the CPU has it" sh -c \
			"'$CLIENT' -S | grep 'RDRAND on'"
	else
		skip "keys: RDRAND is used when the CPU has it (no RDRAND here)"
	fi
	printf '%s\n' "$KEY" >"$T/key"
	printf '%s' "short" >"$T/badkey"
	key_client() { # key_client PORT ARGS...: a client to server B, one transfer
		port=$1; shift
		"$@" 127.0.0.1:"$port" 127.0.0.1:$SB <"$T/key" >>"$T/k.log" 2>&1 &
		k=$!; pids="$pids $k"
		listening "$port" && t up "$port" 100000; rc=$?
		stop $k; return $rc
	}
	check "keys: -k FILE" key_client $((P + 80)) "$CLIENT" -k "$T/key"
	check "keys: -k - (standard input)" key_client $((P + 81)) "$CLIENT" -k -
	check "keys: GSTUNNEL_KEY" key_client $((P + 82)) env GSTUNNEL_KEY="$KEY" "$CLIENT"
	check "keys: GSTUNNEL_NO_RDRAND=1 tunnel" key_client $((P + 83)) \
		env GSTUNNEL_NO_RDRAND=1 GSTUNNEL_KEY="$KEY" "$CLIENT"
	check "keys: a bad key file is refused" bad_args "5 bytes" -k "$T/badkey" :1 127.0.0.1:2
	check "keys: KEY given twice is refused" bad_args "twice" -k "$T/key" :1 127.0.0.1:2 "$KEY"
	argv_wiped() { tr '\0' ' ' <"/proc/$A_C/cmdline"; echo
		tr '\0' ' ' <"/proc/$A_C/cmdline" | grep -q "127.0.0.1:$CA" &&
		! tr '\0' ' ' <"/proc/$A_C/cmdline" | grep -q "$KEY"; }
	check "keys: the argv KEY is gone from /proc/PID/cmdline" argv_wiped
fi

# ---- transfers ------------------------------------------------------------
SIZES="0 1 2 16383 16384 16385 32767 32768 32769 1048576"
# 64 MiB is too slow under qemu and wine: -x has 16 MiB
if [ $CROSS = 0 ]; then SIZES="$SIZES 67108864"; else SIZES="$SIZES 16777216"; fi
if want transfer; then
	for n in $SIZES; do
		check "transfer: $n bytes echoed (both ways at once)" t echo $CA $n
	done
	for n in $SIZES; do
		check "transfer: $n bytes app -> target" t up $CB $n
		check "transfer: $n bytes target -> app" t down $CB $n
	done
	check "transfer: half-close: 3 MB, EOF, all of it back, EOF" t back $CB 3000000
fi

if want ipv6; then
	if grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null; then
		bg "$T/v6.s.log" "$SERVER" "[::1]:$((P + 41))" 127.0.0.1:$ECHO "$KEY"; v6s=$last
		bg "$T/v6.c.log" "$CLIENT" "[::1]:$((P + 42))" "[::1]:$((P + 41))" "$KEY"; v6c=$last
		v6() { listening $((P + 42)) && T_HOST=::1 t echo $((P + 42)) 1000000; }
		check "ipv6: [::1] on both sides" v6
		stop $v6c; stop $v6s
	else
		skip "ipv6: no ::1 on this machine"
	fi
fi

# ---- failures stay local ------------------------------------------------
if want failure; then
	# C: a target that is down; D: a server that is down
	pair C $((P + 22)) $((P + 21)) 127.0.0.1:$((P + 23)); C_C=$cpid C_S=$spid
	bg "$T/C.c.log" "$CLIENT" 127.0.0.1:$((P + 24)) 127.0.0.1:$((P + 25)) "$KEY"; D_C=$last
	listening $((P + 24)) >/dev/null
	check "failure: target down: app closed at once" t closed $((P + 22)) "sink|" 5 reset
	check "failure: server down: app closed at once" t closed $((P + 24)) "sink|" 5 reset
	check "failure: target reset mid-stream: app reset" t closed $CB "reset 100000|" 5 reset
	bg "$T/serve2.log" "$PY" "$TESTS/t.py" serve "$T/target2.log" $((P + 23)) $((P + 26))
	bg "$T/D.s.log" "$SERVER" 127.0.0.1:$((P + 25)) 127.0.0.1:$MUX "$KEY"
	listening $((P + 23)) >/dev/null; listening $((P + 25)) >/dev/null
	check "failure: target back: the same tunnel works" t echo $((P + 22)) 100000
	check "failure: server back: the same client works" t up $((P + 24)) 100000
	check "failure: after a reset the tunnel serves others" t up $CB 100000
	check "failure: the app closes while data flows to it" t gone $CB
	check "failure: the target closes while data flows to it" t gone_target $CB
	survived() { alive $C_C && alive $C_S && alive $D_C && alive $B_C && alive $B_S; }
	check "failure: every process survived (no SIGPIPE death)" survived
fi

# ---- many at once ---------------------------------------------------------
if want many; then
	fa=$(fds $A_C) fb=$(fds $A_S)
	check "many: $MANY concurrent connections, each verified" t many $CA $MANY 20000
	fds_back() { [ "$(fds $A_C)" = "$fa" ] && [ "$(fds $A_S)" = "$fb" ]; }
	check "many: fd counts back where they started ($fa, $fb)" wait_for 50 fds_back
fi

# ---- the secure channel ---------------------------------------------------
# mitm NAME PORT OPTS...: client -> mitm on PORT -> a new server -> $2 target;
# the client listens on PORT+1, the server on PORT+2. PIDs: mc ms mm.
mitm() {
	name=$1 mp=$2 tg=$3; shift 3
	bg "$T/$name.s.log" "$SERVER" ${SOPT:-} 127.0.0.1:$((mp + 2)) "$tg" "$KEY"; ms=$last
	bg "$T/$name.m.log" "$PY" "$TESTS/mitm.py" "$mp" $((mp + 2)) "$@"; mm=$last
	bg "$T/$name.c.log" "$CLIENT" ${COPT:-} 127.0.0.1:$((mp + 1)) 127.0.0.1:"$mp" "$KEY"; mc=$last
	listening "$mp" >/dev/null && listening $((mp + 1)) >/dev/null &&
		listening $((mp + 2)) >/dev/null
}
unmitm() { stop $mc; stop $mm; stop $ms; }

if want secure; then
	# wrong key: nothing reaches the target, both ends say why
	a0=$(accepts)
	bg "$T/W.s.log" "$SERVER" 127.0.0.1:$((P + 31)) 127.0.0.1:$MUX \
		abcdefghijklmnopabcdefghijklmnop; ws=$last
	bg "$T/W.c.log" "$CLIENT" 127.0.0.1:$((P + 32)) 127.0.0.1:$((P + 31)) "$KEY"; wc=$last
	listening $((P + 31)) >/dev/null; listening $((P + 32)) >/dev/null
	check "secure: wrong key: the app is closed at once" t closed $((P + 32)) "sink|" 5 reset
	check "secure: wrong key: the target gets no connection" nothing_in "$a0"
	check "secure: wrong key: the server logs it" logged "authentication failed" "$T/W.s.log"
	check "secure: wrong key: the client logs it" logged "authentication failed" "$T/W.c.log"
	stop $wc; stop $ws

	# replay: record a client's stream, play it to the server again
	mitm RP $((P + 50)) 127.0.0.1:$MUX rec="$T/rec"
	check "secure: replay: a recorded session works" t up $((P + 51)) 300000
	stop $mc; stop $mm
	a0=$(accepts)
	replay() { t replay $((P + 52)) "$T/rec.1.c2s" && nothing_in "$a0" &&
		logged "bad client finished" "$T/RP.s.log"; }
	check "secure: replay: nothing reaches the target" replay
	stop $ms

	# tamper: one flipped bit kills the stream; no altered byte gets out
	tamper() { # tamper NAME DIR:OFFSET WHO-LOGS WHAT
		mitm "$1" $((P + 55)) 127.0.0.1:$ECHO flip="$2"
		t tamper $((P + 56)) 8000000; rc=$?
		unmitm
		[ $rc = 0 ] && logged "$4" "$T/$1.$3.log"
	}
	check "secure: tamper: client hello"  tamper TA c2s:20 s "bad client hello"
	check "secure: tamper: server hello"  tamper TB s2c:40 c "bad server proof"
	check "secure: tamper: server hello's cipher byte" tamper TI s2c:0 c "bad server hello"
	check "secure: tamper: client finished" tamper TC c2s:80 s "bad client finished"
	check "secure: tamper: record length" tamper TD c2s:98 s "record"
	check "secure: tamper: deep, app -> target" tamper TE c2s:5000000 s "does not verify"
	check "secure: tamper: deep, target -> app" tamper TF s2c:5000000 c "does not verify"

	# truncation at a record boundary: a reset, never a clean EOF
	truncated() { # truncated NAME DIR:RECORDS WHO-LOGS
		mitm "$1" $((P + 55)) 127.0.0.1:$ECHO cut="$2"
		t tamper $((P + 56)) 4000000; rc=$?
		unmitm
		[ $rc = 0 ] && logged "truncated" "$T/$1.$3.log"
	}
	resets() { grep -c 'echo in=[0-9]* end=reset' "$T/target.log"; }
	check "secure: truncation: target -> app cut after 20 records" truncated TG s2c:20 c
	r0=$(resets)
	check "secure: truncation: app -> target cut after 20 records" truncated TH c2s:20 s
	target_reset() { [ "$(resets)" -gt "$r0" ]; }
	check "secure: truncation: the target saw a reset too" wait_for 20 target_reset

	# strangers at the server port get not one byte, and time out (-v:
	# every failure before authentication is logged, see "logs")
	bg "$T/X.s.log" "$SERVER" -v -t 2 127.0.0.1:$((P + 35)) 127.0.0.1:$MUX "$KEY"; xs=$last
	listening $((P + 35)) >/dev/null
	a0=$(accepts)
	for kind in random big http hello half silent; do
		check "secure: stranger ($kind): no byte back, closed" t probe $((P + 35)) $kind 5
	done
	check "secure: strangers: the target saw none of them" nothing_in "$a0"
	check "secure: a wrong version byte is logged as such" \
		logged "protocol version 71, we speak 2" "$T/X.s.log"
	check "secure: a client written from the README's protocol works" \
		"$PY" "$TESTS/ref.py" $SB "$KEY"
	check "secure: a hello built from the README's spec is answered" \
		t hello $((P + 35)) "$KEY" 9 65
	weak() { t hello $((P + 35)) "$KEY" 0 0 && logged "weak public key" "$T/X.s.log"; }
	check "secure: a hello with a low-order X25519 key is refused" weak
	xs_serves() { bg "$T/X.c.log" "$CLIENT" 127.0.0.1:$((P + 36)) 127.0.0.1:$((P + 35)) "$KEY"
		xc=$last; listening $((P + 36)) && t up $((P + 36)) 100000; rc=$?; stop $xc; return $rc; }
	check "secure: strangers: the server still serves" xs_serves
	stop $xs

	# confidentiality: a known plaintext never shows on the wire
	M=GSTUNNEL-PLAINTEXT-MARKER-
	mitm CF $((P + 55)) 127.0.0.1:$ECHO rec="$T/cf"
	t marker $((P + 56)) "$M" 2000 && t marker $((P + 56)) "$M" 2000 &&
		t zeros $((P + 56)) 1000000
	unmitm
	bg "$T/plain.m.log" "$PY" "$TESTS/mitm.py" $((P + 57)) $ECHO rec="$T/pl"; pm=$last
	listening $((P + 57)) >/dev/null && t marker $((P + 57)) "$M" 2000; stop $pm
	marker_hidden() {
		grep -a -q "$M" "$T/pl.1.c2s" || { echo "the check cannot see the marker"; return 1; }
		for f in "$T"/cf.*; do
			if grep -a -q "$M" "$f"; then echo "marker in $f"; return 1; fi
		done
		ls -l "$T"/cf.*
		[ "$(cat "$T"/cf.1.* | wc -c)" -gt 100000 ]
	}
	check "secure: the plaintext never appears on the wire" marker_hidden
	differ() { ! cmp -s "$T/cf.1.c2s" "$T/cf.2.c2s" && ! cmp -s "$T/cf.1.s2c" "$T/cf.2.s2c"; }
	check "secure: two sessions with the same data differ" differ
	check "secure: no nonce or key is used twice" t nonces "$T/cf.3.c2s" "$T/cf.3.s2c"
fi

# ---- cipher choice ------------------------------------------------------------
if want cipher; then
	# a server given -c refuses the other cipher, and both ends say so
	a0=$(accepts)
	bg "$T/CF.s.log" "$SERVER" -c aes 127.0.0.1:$((P + 27)) 127.0.0.1:$MUX "$KEY"; fs=$last
	bg "$T/CF.c.log" "$CLIENT" -c chacha20 127.0.0.1:$((P + 28)) 127.0.0.1:$((P + 27)) "$KEY"; fc=$last
	listening $((P + 27)) >/dev/null; listening $((P + 28)) >/dev/null
	check "cipher: server -c aes, client -c chacha20: the app is reset" \
		t closed $((P + 28)) "sink|" 5 reset
	check "cipher: refused: the target gets no connection" nothing_in "$a0"
	two() { logged "refused the client's cipher chacha20: this server takes only aes" "$T/CF.s.log" &&
		logged "the server refused cipher chacha20: it takes only aes" "$T/CF.c.log"; }
	check "cipher: refused: both ends log the two ciphers" two
	stop $fc
	bg "$T/CF2.c.log" "$CLIENT" -c aes 127.0.0.1:$((P + 28)) 127.0.0.1:$((P + 27)) "$KEY"; fc=$last
	listening $((P + 28)) >/dev/null
	check "cipher: server -c aes, client -c aes: served" t up $((P + 28)) 100000
	stop $fc; stop $fs
	# without -c the server takes what each client asks for
	bg "$T/CF3.c.log" "$CLIENT" -v -c chacha20 127.0.0.1:$((P + 28)) 127.0.0.1:$SB "$KEY"; fc=$last
	listening $((P + 28)) >/dev/null
	check "cipher: a server without -c serves a chacha20 client" t up $((P + 28)) 100000
	stop $fc
	check "cipher: the README's protocol, chacha20" \
		"$PY" "$TESTS/ref.py" $SB "$KEY" chacha20
	check "cipher: bad -c is refused" bad_args "bad -c CIPHER 'des'" -c des 127.0.0.1:1 127.0.0.1:2 "$KEY"
fi

# ---- workers (-j) -------------------------------------------------------------
if want workers; then
	kids() { ps -o pid= --ppid "$1" | tr -d ' '; }
	bg "$T/J.s.log" "$SERVER" -v -j 2 127.0.0.1:$((P + 43)) 127.0.0.1:$MUX "$KEY"; js=$last
	bg "$T/J.c.log" "$CLIENT" -j 0 127.0.0.1:$((P + 44)) 127.0.0.1:$((P + 43)) "$KEY"; jc=$last
	listening $((P + 43)) >/dev/null; listening $((P + 44)) >/dev/null
	check "workers: -j 2 server, -j 0 client: 60 connections served" t par $((P + 44)) 60 "sink|"
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
	check "workers: and all serve again" t par $((P + 44)) 60 "sink|"
	ws=$(kids $js)
	term_all() { kill -TERM $js; i=0
		while [ $i -lt 50 ] && alive $js; do sleep 0.1; i=$((i + 1)); done
		wait $js; rc=$?; echo "exit status $rc"
		for p in $ws; do alive $p && { echo "worker $p still runs"; return 1; }; done
		[ $rc = 0 ]; }
	check "workers: SIGTERM stops the workers and the parent exits 0" term_all
	stop $jc
fi

# ---- limits ---------------------------------------------------------------
if want limits; then
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
		skip "limits: backpressure: memory stays small (sanitizer build)"
	else
		check "limits: backpressure: the sender stalls, memory stays small" small
	fi
	check "limits: backpressure: then every byte arrives" wait "$h"

	# -n 2: a third connection waits for a free slot, without spinning
	bg "$T/N.c.log" "$CLIENT" -n 2 127.0.0.1:$((P + 37)) 127.0.0.1:$SB "$KEY"; nc=$last
	listening $((P + 37)) >/dev/null
	bg "$T/n1.out" t run $((P + 37)) "hold 3|"; n1=$last
	bg "$T/n2.out" t run $((P + 37)) "hold 3|"; n2=$last
	sleep 0.5
	c0=$(cpu_ticks $nc)
	t run $((P + 37)) "sink|" >"$T/n3.out" 2>&1
	c1=$(cpu_ticks $nc)
	wait $n1; wait $n2
	capped() { cat "$T/n3.out"; echo "cpu ticks while waiting: $((c1 - c0))"
		grep -q '^eof after [2-9]' "$T/n3.out" && [ $((c1 - c0)) -lt 20 ]; }
	check "limits: -n 2: the third waits its turn, idle" capped
	stop $nc

	# out of fds: accepting pauses, then resumes by itself
	(ulimit -n 24; exec "$CLIENT" -v -n 100 127.0.0.1:$((P + 38)) 127.0.0.1:$SB "$KEY") \
		>>"$T/F.c.log" 2>&1 &
	fc=$!; pids="$pids $fc"
	listening $((P + 38)) >/dev/null
	c0=$(cpu_ticks $fc)
	check "limits: out of fds: 30 connections all served" t par $((P + 38)) 30 "hold 2|"
	c1=$(cpu_ticks $fc)
	emfile() { grep -q 'Too many open files' "$T/F.c.log" && alive $fc &&
		echo "cpu ticks: $((c1 - c0))" && [ $((c1 - c0)) -lt 100 ]; }
	check "limits: out of fds: paused, not dead, not spinning" emfile
	stop $fc
	# the server's accept() itself runs out: strangers hold its fds
	(ulimit -n 16; exec "$SERVER" -t 3 -n 100 127.0.0.1:$((P + 39)) 127.0.0.1:$MUX "$KEY") \
		>>"$T/G.s.log" 2>&1 &
	gs=$!; pids="$pids $gs"
	listening $((P + 39)) >/dev/null
	bg "$T/hog.out" t hog $((P + 39)) 20 2.5; hog=$last
	sleep 1
	c0=$(cpu_ticks $gs); sleep 1; c1=$(cpu_ticks $gs)
	wait $hog
	accept_pause() { cat "$T/hog.out"; echo "cpu ticks in 1 s: $((c1 - c0))"
		grep -q 'accept: Too many open files' "$T/G.s.log" && [ $((c1 - c0)) -lt 10 ]; }
	check "limits: accept() out of fds: pauses without spinning" accept_pause
	g_serves() { bg "$T/G.c.log" "$CLIENT" 127.0.0.1:$((P + 40)) 127.0.0.1:$((P + 39)) "$KEY"
		gc=$last; listening $((P + 40)) && t up $((P + 40)) 100000; rc=$?; stop $gc; return $rc; }
	check "limits: accept() out of fds: serves again by itself" wait_for 50 g_serves
	stop $gs
fi

# ---- applications ---------------------------------------------------------
if want apps; then
	TUNNEL_PORT=$((P + 60))
	tunnel_up() {
		bg "$T/app.s.log" "$SERVER" 127.0.0.1:$((P + 61)) 127.0.0.1:"$1" "$KEY"; as=$last
		bg "$T/app.c.log" "$CLIENT" 127.0.0.1:$TUNNEL_PORT 127.0.0.1:$((P + 61)) "$KEY"; ac=$last
		listening $((P + 61)) >/dev/null && listening $TUNNEL_PORT >/dev/null
	}
	tunnel_down() { stop $ac; stop $as; }
	PORT_BASE=$((P + 100))
	check "apps: HTTP proxy (squid) through the tunnel" app http
	check "apps: SOCKS5 proxy (microsocks) through the tunnel" app socks
	check "apps: mail (swaks to an SMTP server) through the tunnel" app smtp
fi

# ---- rotation results -------------------------------------------------------
if want rotation; then
	rotations() { # rotations LOG WHICH MIN
		n=$(grep -c "$2 key rotated" "$1"); echo "$1: $n $2 rotations"
		[ "$n" -ge "$3" ]; }
	rot_ok() { wait $rot && cat "$T/rot.out" &&
		rotations "$T/R.c.log" send 20 && rotations "$T/R.c.log" receive 20 &&
		rotations "$T/R.s.log" send 20 && rotations "$T/R.s.log" receive 20; }
	check "rotation: -r 1, 30 s both ways: intact, rotated both ways" rot_ok
	impl() { tr -d '\r' <"$T/R.c.log" | # CRLF from a Windows end
		grep -E "cipher (aes: aes-gcm (x86ni|pwr8|ct64|ct)\+(pclmul|pwr8|ctmul64|ctmul|ctmul32), AES-256|chacha20: chacha20-poly1305 (ct|sse2)\+(ctmulq|ctmul|ctmul32))$"; }
	check "rotation: -v names the cipher code in use" impl
	# rotation by volume: a build whose threshold is 256 KiB, not 1 GiB
	if [ $CROSS = 1 ]; then
		skip "rotation: by volume (a native build: not in the -x subset)"
	elif ${CC:-cc} -std=c99 -O2 -DROTATE_BYTES=262144 -DCLIENT -o "$T/vol_client" \
		gstunnel.c -lbearssl 2>"$T/cc.log" && ${CC:-cc} -std=c99 -O2 \
		-DROTATE_BYTES=262144 -DSERVER -o "$T/vol_server" gstunnel.c -lbearssl; then
		vol() { oc=$CLIENT os=$SERVER; CLIENT=$T/vol_client SERVER=$T/vol_server
			COPT="-v -r 0 ${CIPHER:+-c $CIPHER}" SOPT="-v -r 0 ${CIPHER:+-c $CIPHER}"
			pair V $((P + 48)) $((P + 47)) 127.0.0.1:$ECHO; rc=$?
			CLIENT=$oc SERVER=$os COPT= SOPT=
			[ $rc = 0 ] && t echo $((P + 48)) 16000000 && sleep 0.5 &&
			rotations "$T/V.c.log" send 4 && rotations "$T/V.s.log" receive 4; }
		check "rotation: by volume (a build rotating every 256 KiB)" vol
	else
		skip "rotation: by volume (cannot build here: $(head -c 80 "$T/cc.log"))"
	fi
	rotq_ok() { wait $rotq && rotations "$T/Q.c.log" send 4 &&
		rotations "$T/Q.s.log" receive 4; }
	check "rotation: the server's -r asks the client to rotate" rotq_ok
	# at full speed, so that control records wait behind full buffers
	COPT="-v -r 1" SOPT="-v -r 1" pair RF $((P + 19)) $((P + 20)) 127.0.0.1:$MUX
	fast() { t blast $((P + 19)) 4 "$1" && rotations "$T/RF.c.log" send "$2" &&
		rotations "$T/RF.s.log" send "$2"; }
	check "rotation: -r 1, full speed app -> target: intact, rotated" fast up 3
	check "rotation: -r 1, full speed target -> app: intact, rotated" fast down 6
fi

# ---- signals ----------------------------------------------------------------
if want signal; then
	exits0() { kill -"$1" "$2"; i=0
		while [ $i -lt 30 ] && alive "$2"; do sleep 0.1; i=$((i + 1)); done
		wait "$2"; rc=$?; echo "exit status $rc"; [ $rc = 0 ]; }
	check "signal: SIGTERM: the client exits 0" exits0 TERM $A_C
	check "signal: SIGINT: the server exits 0" exits0 INT $A_S
fi

# ---- operations (#8): server lists, config, signals, statistics, logs ------
# pair2 NAME CPORT SPORT TARGET SERVER-LIST [-- client opts] with -v ends;
# like pair, but the client is given SERVER-LIST
if want dns; then
	# names: in a network and mount namespace, with our own resolv.conf,
	# hosts file and nameserver (c_dns)
	dns_ns() { printf '127.0.0.1 localhost\n' >"$T/dns.hosts"
		printf 'nameserver 127.0.0.1\nsearch test\n' >"$T/resolv.conf"
		unshare -mn sh -c '
		ip link set lo up
		mount --make-rprivate / && mount --bind "$1/dns.hosts" /etc/hosts &&
			mount --bind "$1/resolv.conf" /etc/resolv.conf || exit 2
		"$2" "$6/t.py" dns "$1/dns.ready" & d=$!
		"$2" "$6/t.py" serve "$1/dns.target.log" 7001 7002 & e=$!
		i=0; while [ ! -e "$1/dns.ready" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		"$4" 127.0.0.1:7010 127.0.0.1:7001 "$5" 2>/dev/null & s=$!
		sleep 0.3
		for name in tunnel.test tun spoof.test; do
			"$3" -v 127.0.0.1:7011 $name:7010 "$5" 2>"$1/dns.$name.log" & c=$!
			sleep 1
			"$2" "$6/t.py" echo 7011 1000 && echo "$name: ok" || echo "$name: FAILED"
			kill $c; wait $c
		done
		for name in nx.test silent.test; do
			t0=$(date +%s)
			"$3" 127.0.0.1:7011 $name:7010 "$5" 2>"$1/dns.$name.log"
			echo "$name: exit $? after $(($(date +%s) - t0)) s"
		done
		kill $d $e $s; wait' sh "$T" "$PY" "$CLIENT" "$SERVER" "$KEY" "$TESTS" \
		>"$T/dns.out" 2>&1; }
	[ $MNTNS = 1 ] && dns_ns
	dns_ok() { grep -q "^$1: ok$" "$T/dns.out" || { cat "$T/dns.out"; false; }; }
	mcheck "dns: a name from the nameserver (A)" dns_ok tunnel.test
	mcheck "dns: a name without a dot, found in a search domain" dns_ok tun
	spoof() { dns_ok spoof.test && ! grep 127.0.0.9 "$T/dns.spoof.test.log"; }
	mcheck "dns: replies with a wrong ID or from a wrong port are ignored" spoof
	nx() { grep -q "^nx.test: exit 2 " "$T/dns.out" &&
		logged "cannot resolve SERVER 'nx.test': no address" "$T/dns.nx.test.log"; }
	mcheck "dns: a name that does not exist is refused at start" nx
	silent() { grep "^silent.test: exit 2 after [4-7] s" "$T/dns.out" &&
		logged "no answer from the nameservers" "$T/dns.silent.test.log"; }
	mcheck "dns: a nameserver that does not answer: refused after 5 s" silent
fi

if want targets; then
	D1=$((P + 101)) D2=$((P + 102)) # nothing listens there
	bg "$T/ta1.s.log" "$SERVER" -v 127.0.0.1:$((P + 103)) 127.0.0.1:$MUX "$KEY"; ta1=$last
	bg "$T/ta2.s.log" "$SERVER" -v 127.0.0.1:$((P + 104)) 127.0.0.1:$MUX "$KEY"; ta2=$last
	bg "$T/ta.c.log" "$CLIENT" -v 127.0.0.1:$((P + 105)) \
		127.0.0.1:$D1,127.0.0.1:$((P + 103)) "$KEY"; tac=$last
	bg "$T/tb.c.log" "$CLIENT" -v 127.0.0.1:$((P + 106)) \
		127.0.0.1:$((P + 103)),127.0.0.1:$((P + 104)) "$KEY"; tbc=$last
	bg "$T/td.c.log" "$CLIENT" -v 127.0.0.1:$((P + 107)) \
		127.0.0.1:$D1,127.0.0.1:$D2 "$KEY"; tdc=$last
	listening $((P + 103)) >/dev/null && listening $((P + 104)) >/dev/null &&
		listening $((P + 105)) >/dev/null && listening $((P + 107)) >/dev/null
	tries() { grep -c "connecting to 127.0.0.1:$1" "$2"; }
	ten() { t ups "$1" 10 1000; } # well within the first back-off
	check "targets: one server of two down: 10 connections all work" ten $((P + 105))
	once() { n=$(tries $D1 "$T/ta.c.log"); echo "dead one tried $n times"; [ "$n" = 1 ]; }
	check "targets: the dead one was tried once, then rested" once
	logged "failed; not used for 1 s" "$T/ta.c.log" >/dev/null
	sleep 1.2
	again() { t up $((P + 105)) 1000 && n=$(tries $D1 "$T/ta.c.log") &&
		echo "dead one tried $n times" && [ "$n" = 2 ] &&
		logged "127.0.0.1:$D1 failed; not used for 2 s" "$T/ta.c.log"; }
	check "targets: after its back-off it is tried again, then rests twice as long" again
	check "targets: two servers: 10 connections" ten $((P + 106))
	rr() { a=$(grep -c 'new connection' "$T/ta2.s.log")
		echo "second server took $a of 10"; [ "$a" = 5 ]; }
	check "targets: round robin: each server takes every other connection" rr
	alldown() { t closed $((P + 107)) x 3 reset && t closed $((P + 107)) x 3 reset &&
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
		kill $c; wait $c; exit $rc' sh "$T" "$CLIENT" "$PY" $((P + 108)) $((P + 103)) "$KEY" \
		"$TESTS"
		rc=$?; grep connecting "$T/dns.c.log"; [ $rc = 0 ] &&
		logged "connecting to 127.0.0.2" "$T/dns.c.log" >/dev/null; }
	mcheck "targets: a name is resolved again after its addresses failed" redns
	stop $ta1; stop $ta2
fi

if want config; then
	bg "$T/cf.s.log" "$SERVER" 127.0.0.1:$((P + 109)) 127.0.0.1:$ECHO "$KEY"; cfs=$last
	listening $((P + 109)) >/dev/null
	printf '# a client\n\nserver 127.0.0.1:%s # the server\nkey %s\nlisten 127.0.0.1:%s\nverbose\ntimeout  5 \n' \
		$((P + 109)) "$KEY" $((P + 110)) >"$T/c.conf"
	bg "$T/cf.c.log" "$CLIENT" -f "$T/c.conf" 127.0.0.1:$((P + 111)); cfc=$last
	cf_serves() { listening $((P + 111)) && t echo $((P + 111)) 100000 &&
		logged "listening on 127.0.0.1:$((P + 111))" "$T/cf.c.log"; }
	check "config: a tunnel from -f FILE; the command line's LISTEN wins" cf_serves
	stop $cfc; stop $cfs
	bad_conf() { printf "$2" >"$T/bad.conf"; bad_args "$1" -f "$T/bad.conf" :1 127.0.0.1:2 "$KEY"; }
	check "config: an unknown name is refused with FILE:LINE" \
		bad_conf "bad.conf:2: colour: unknown name" 'verbose\ncolour blue\n'
	check "config: a bad value is refused with FILE:LINE" \
		bad_conf "bad.conf:1: bad timeout 'soon'" 'timeout soon\n'
	check "config: a missing value is refused" bad_conf "bad.conf:1: rotate: needs a value" 'rotate\n'
	check "config: a flag with a value is refused" bad_conf "bad.conf:1: verbose: takes no value" 'verbose yes\n'
	check "config: a name given twice is refused" bad_conf "bad.conf:2: idle: given twice" 'idle 1\nidle 2\n'
	check "config: key and key-file together are refused" \
		bad_conf "KEY given twice" "key-file $T/c.conf\nkey $KEY\n"
	check "config: a missing file is refused" bad_args "cannot read '$T/none'" -f "$T/none"
	check "config: --long options work on the command line" \
		bad_args "bad -t SECONDS 'soon'" --timeout=soon :1 127.0.0.1:2 "$KEY"
fi

if want stop; then
	# SIGTERM: the listener goes at once, open transfers finish, exit 0
	SOPT=-v COPT=-v pair W $((P + 113)) $((P + 112)) 127.0.0.1:$MUX; w_s=$spid w_c=$cpid
	bg "$T/w.t.log" "$PY" "$TESTS/t.py" held $((P + 113)) $((64 << 20)) 2; held=$last
	sleep 1
	kill -TERM $w_s $w_c
	gone() { sleep 0.3; ! listening $((P + 112)) >/dev/null 2>&1 ||
		{ echo "still listening"; false; }; }
	check "stop: SIGTERM closes the listener at once" gone
	gone_j() { sleep 0.3; ! listening $((P + 118)) >/dev/null 2>&1 ||
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
	pair W2 $((P + 115)) $((P + 114)) 127.0.0.1:$MUX; w_s=$spid
	bg "$T/w2.t.log" "$PY" "$TESTS/t.py" held $((P + 115)) $((16 << 20)) 5; held=$last
	sleep 1
	kill -TERM $w_s; sleep 0.3
	still() { alive $w_s || { echo "the server did not wait"; false; }; }
	check "stop: with a transfer open, the server waits (-w)" still
	kill -TERM $w_s
	check "stop: a second SIGTERM resets at once and exits 0" exit_ok $w_s
	was_cut() { wait $held; rc=$?; [ $rc != 0 ] || { echo "transfer not cut"; false; }; }
	check "stop: the transfer was reset, not ended cleanly" was_cut
	# with -j, the supervisor passes SIGTERM on: the same graceful stop
	SOPT="-j 2" pair WJ $((P + 119)) $((P + 118)) 127.0.0.1:$MUX; w_s=$spid w_c=$cpid
	bg "$T/wj.t.log" "$PY" "$TESTS/t.py" held $((P + 119)) $((64 << 20)) 2; held=$last
	sleep 1
	kill -TERM $w_s
	check "stop: -j 2: SIGTERM closes the listeners at once" gone_j
	check "stop: -j 2: the transfer completes intact" done64
	check "stop: -j 2: then the supervisor exits 0" exit_ok $w_s
	stop $w_c
	SOPT="-w 0" pair W3 $((P + 117)) $((P + 116)) 127.0.0.1:$MUX; w_s=$spid
	bg "$T/w3.t.log" "$PY" "$TESTS/t.py" held $((P + 117)) $((16 << 20)) 5; held=$last
	sleep 1
	kill -TERM $w_s
	check "stop: -w 0: SIGTERM resets at once and exits 0" exit_ok $w_s
	wait $held
fi

if want reload; then
	printf '%s' "$KEY" >"$T/hup.key"
	bg "$T/hup.s.log" "$SERVER" -v -r 1 -k "$T/hup.key" 127.0.0.1:$((P + 120)) 127.0.0.1:$ECHO; hs=$last
	bg "$T/hup.c.log" "$CLIENT" -v -r 1 127.0.0.1:$((P + 121)) 127.0.0.1:$((P + 120)) "$KEY"; hc=$last
	K2=abcdefghijklmnopqrstuvwxyz012345
	bg "$T/hup2.c.log" "$CLIENT" -v 127.0.0.1:$((P + 122)) 127.0.0.1:$((P + 120)) "$K2"; hc2=$last
	listening $((P + 120)) >/dev/null && listening $((P + 121)) >/dev/null &&
		listening $((P + 122)) >/dev/null
	rm -f "$T/flag"
	bg "$T/pause.log" "$PY" "$TESTS/t.py" pause $((P + 121)) 100000 "$T/flag"; pz=$last
	sleep 1
	printf '%s\n' "$K2" >"$T/hup.key"
	kill -HUP $hs
	wait_for 30 grep -q "SIGHUP: reloaded" "$T/hup.s.log"
	check "reload: after SIGHUP the new key connects" t echo $((P + 122)) 10000
	refused() { ! t echo $((P + 121)) 1000 >/dev/null 2>&1 && sleep 0.2 &&
		logged "bad client hello" "$T/hup.s.log"; }
	check "reload: and the old key is refused" refused
	sleep 1.2 # so that the old connection rotates after the reload
	touch "$T/flag"
	paused() { wait $pz; rc=$?; cat "$T/pause.log"; [ $rc = 0 ]; }
	check "reload: a connection opened before carries data after (and rotates)" paused
	printf 'short' >"$T/hup.key"
	kill -HUP $hs
	wait_for 30 grep -q "reload refused" "$T/hup.s.log"
	kept() { logged "reload refused, nothing changed: bad KEY (file): 5 bytes" "$T/hup.s.log" &&
		t echo $((P + 122)) 1000; }
	check "reload: a bad new key is refused, and the last good key stays" kept
	stop $hc; stop $hc2; stop $hs
	# with -j, every worker reloads
	printf '%s' "$KEY" >"$T/hup.key"
	bg "$T/hupj.s.log" "$SERVER" -j 2 -k "$T/hup.key" 127.0.0.1:$((P + 126)) 127.0.0.1:$ECHO; hs=$last
	bg "$T/hupj.c.log" "$CLIENT" 127.0.0.1:$((P + 127)) 127.0.0.1:$((P + 126)) "$K2"; hc=$last
	listening $((P + 126)) >/dev/null && listening $((P + 127)) >/dev/null && sleep 0.5
	printf '%s' "$K2" >"$T/hup.key"
	kill -HUP $hs
	both() { [ "$(grep -c 'SIGHUP: reloaded' "$T/hupj.s.log")" = 2 ]; }
	wait_for 30 both
	check "reload: -j 2: every worker takes the new key" t many $((P + 127)) 20 1000
	stop $hc; stop $hs
	# a config file: the new target is used, a fixed option only noted
	printf 'listen 127.0.0.1:%s\ntarget 127.0.0.1:%s\nkey %s\n' $((P + 123)) $ECHO "$KEY" >"$T/s.conf"
	bg "$T/hupf.s.log" "$SERVER" -v -f "$T/s.conf"; hs2=$last
	listening $((P + 123)) >/dev/null
	bg "$T/hupf.c.log" "$CLIENT" 127.0.0.1:$((P + 124)) 127.0.0.1:$((P + 123)) "$KEY"; hc=$last
	listening $((P + 124)) >/dev/null
	printf 'listen 127.0.0.1:%s\ntarget 127.0.0.1:%s\nkey %s\n' $((P + 125)) $MUX "$KEY" >"$T/s.conf"
	kill -HUP $hs2
	wait_for 30 grep -q "SIGHUP: reloaded" "$T/hupf.s.log"
	newtarget() { t up $((P + 124)) 5000 &&
		logged "connecting to 127.0.0.1:$MUX" "$T/hupf.s.log" &&
		logged "listen changed: it takes effect at the next start" "$T/hupf.s.log"; }
	check "reload: the config file is read again (a new target)" newtarget
	printf 'listen 127.0.0.1:%s\ntarget 127.0.0.1:%s\nbogus 1\n' $((P + 123)) $ECHO >"$T/s.conf"
	kill -HUP $hs2
	wait_for 30 grep -q "reload refused" "$T/hupf.s.log"
	check "reload: a bad config file is refused; the old one stays" t up $((P + 124)) 5000
	stop $hc; stop $hs2
fi

if want stats; then
	bg "$T/st.s.log" "$SERVER" -s 1 -m $((P + 131)) 127.0.0.1:$((P + 130)) 127.0.0.1:$ECHO "$KEY"; sts=$last
	bg "$T/st.c.log" "$CLIENT" 127.0.0.1:$((P + 132)) 127.0.0.1:$((P + 130)) "$KEY"; stc=$last
	listening $((P + 131)) >/dev/null && listening $((P + 132)) >/dev/null
	scrape() { curl -s -m 5 http://127.0.0.1:$((P + 131))/metrics; }
	scrape >"$T/m0"
	t echo $((P + 132)) 100000 && t echo $((P + 132)) 100000 && t echo $((P + 132)) 100000
	sleep 0.2
	scrape >"$T/m1"
	metric() { awk -v m="$1" '$1 == m { print $2 }' "$2"; }
	moved() { cat "$T/m1"; a=$(metric gstunnel_connections_total "$T/m0")
		b=$(metric gstunnel_connections_total "$T/m1")
		c=$(metric 'gstunnel_bytes_total{direction="c2s"}' "$T/m1")
		d=$(metric 'gstunnel_bytes_total{direction="s2c"}' "$T/m1")
		[ "$a" = 0 ] && [ "$b" = 3 ] && [ "$c" = 300000 ] && [ "$d" = 300000 ]; }
	check "stats: -m: a scrape shows the connection and byte counters move" moved
	status() { curl -s -m 5 -o /dev/null -w '%{http_code}' "$@"; }
	refuse() { a=$(status http://127.0.0.1:$((P + 131))/) b=$(status -X POST \
		http://127.0.0.1:$((P + 131))/metrics); echo "$a $b"; [ "$a $b" = "404 405" ]; }
	check "stats: -m refuses anything but GET /metrics" refuse
	usr1() { kill -USR1 $sts; wait_for 20 grep -q 'stats: open=0 total=3 .*bytes_c2s=300000 bytes_s2c=300000' "$T/st.s.log" ||
		{ cat "$T/st.s.log"; false; }; }
	check "stats: SIGUSR1 logs one statistics line" usr1
	every() { sleep 2.2; n=$(grep -c 'stats:' "$T/st.s.log"); echo "$n lines"; [ "$n" -ge 3 ]; }
	check "stats: -s 1 logs one every second" every
	stop $stc; stop $sts
	# with workers, the counters are summed over them
	bg "$T/stj.s.log" "$SERVER" -j 2 -m $((P + 134)) 127.0.0.1:$((P + 133)) 127.0.0.1:$ECHO "$KEY"; stj=$last
	bg "$T/stj.c.log" "$CLIENT" 127.0.0.1:$((P + 135)) 127.0.0.1:$((P + 133)) "$KEY"; stc=$last
	listening $((P + 134)) >/dev/null && listening $((P + 135)) >/dev/null
	sleep 0.5
	summed() { t many $((P + 135)) 20 1000 || return 1
		curl -s -m 5 http://127.0.0.1:$((P + 134))/metrics >"$T/m2"
		n=$(metric gstunnel_connections_total "$T/m2"); echo "total $n"; [ "$n" = 20 ]; }
	check "stats: -j 2: the page sums both workers" summed
	stop $stc; stop $stj
fi

if want logs; then
	bg "$T/lg.s.log" "$SERVER" -t 2 127.0.0.1:$((P + 140)) 127.0.0.1:$ECHO "$KEY"; lgs=$last
	listening $((P + 140)) >/dev/null
	quiet() { t strangers $((P + 140)) 300; sleep 0.5; n=$(wc -l <"$T/lg.s.log")
		echo "$n lines"; [ "$n" -le 4 ]; }
	check "logs: 300 strangers without -v: a few lines" quiet
	counted() { sleep 1; t strangers $((P + 140)) 1; wait_for 20 logged \
		"more failures before authentication were not logged" "$T/lg.s.log"; }
	check "logs: then the count of the lines left out" counted
	stop $lgs
	# a stalled stderr: lines are dropped, the tunnel goes on
	mkfifo "$T/fifo"
	exec 7<>"$T/fifo" # open, never read: the pipe fills
	bg "$T/fifo" "$SERVER" -v -m $((P + 143)) 127.0.0.1:$((P + 141)) 127.0.0.1:$ECHO "$KEY"; lgs=$last
	bg "$T/lg.c.log" "$CLIENT" 127.0.0.1:$((P + 142)) 127.0.0.1:$((P + 141)) "$KEY"; lgc=$last
	listening $((P + 142)) >/dev/null && listening $((P + 143)) >/dev/null
	stalled() { timeout -k 1 60 "$PY" "$TESTS/t.py" many $((P + 142)) 600 1000 &&
		timeout -k 1 20 "$PY" "$TESTS/t.py" echo $((P + 142)) 100000 &&
		n=$(curl -s -m 5 http://127.0.0.1:$((P + 143))/metrics |
			awk '$1 == "gstunnel_log_lines_dropped_total" { print $2 }') &&
		echo "$n lines dropped" && [ "$n" -gt 0 ]; }
	check "logs: a stalled stderr never stops the loop (lines dropped)" stalled
	stop $lgc; stop $lgs
	exec 7>&-
	# -l syslog: in a mount namespace with our own /dev/log
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
		wait' sh "$T" "$PY" "$SERVER" $((P + 144)) $((P + 145)) "$KEY" "$TESTS"
		cat "$T/syslog"
		grep -q "^<30>gstunnel_server\[[0-9]*\]: listening on 127.0.0.1:$((P + 144))$" "$T/syslog" &&
		grep -q "^<30>gstunnel_server\[[0-9]*\]: conn 1: new connection" "$T/syslog" &&
		[ ! -s "$T/sl.err" ]; }
	mcheck "logs: -l syslog: LOG_DAEMON lines with the program's name and pid" syslog_ns
fi

if want process; then
	bg "$T/u.s.log" "$SERVER" -u nobody 127.0.0.1:$((P + 150)) 127.0.0.1:$ECHO "$KEY"; us=$last
	bg "$T/u.c.log" "$CLIENT" 127.0.0.1:$((P + 151)) 127.0.0.1:$((P + 150)) "$KEY"; uc=$last
	listening $((P + 150)) >/dev/null && listening $((P + 151)) >/dev/null
	nobody=$(id -u nobody)
	uid_changed() { grep -E '^(Uid|Gid|Groups):' /proc/$us/status
		awk -v u="$nobody" '/^Uid:/ { exit !($2 == u && $3 == u && $4 == u && $5 == u) }' /proc/$us/status &&
		t echo $((P + 151)) 100000; }
	check "process: -u nobody: every uid is nobody's, and the tunnel works" uid_changed
	undumpable() { o=$(stat -c %u /proc/$us/status); echo "/proc/PID owned by uid $o"; [ "$o" = 0 ] &&
		grep -E '^Max core file size +0 +0 ' /proc/$us/limits; }
	check "process: not dumpable (/proc/PID stays root's), no core dumps" undumpable
	stop $uc; stop $us
	# not dumpable without -u too: as nobody (setpriv), /proc/PID would
	# be nobody's if it were
	bg "$T/nd.s.log" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$SERVER" 127.0.0.1:$((P + 149)) 127.0.0.1:$ECHO "$KEY"; nd=$last
	listening $((P + 149)) >/dev/null
	nd_root() { o=$(stat -c %u /proc/$nd/status); u=$(awk '/^Uid:/ { print $2 }' /proc/$nd/status)
		echo "runs as $u, /proc/PID owned by $o"; [ "$u" = "$nobody" ] && [ "$o" = 0 ]; }
	check "process: not dumpable without -u either (run as nobody by setpriv)" nd_root
	stop $nd
	nouser() { "$SERVER" -u no_such_user_x 127.0.0.1:$((P + 152)) 127.0.0.1:$ECHO "$KEY" 2>"$T/e"; rc=$?
		cat "$T/e"; [ $rc = 1 ] && grep -q "no user 'no_such_user_x'" "$T/e"; }
	check "process: -u with an unknown user refuses to run" nouser
	rm -f "$T/pid"
	nolog() { "$SERVER" -d :1 127.0.0.1:2 "$KEY" 2>"$T/e"; rc=$?; cat "$T/e"
		[ $rc = 1 ] && grep -q "use -l stderr" "$T/e"; }
	[ -e /dev/log ] || check "process: -d without a syslog is refused" nolog
	dp=""
	daemon() { "$SERVER" -d -l stderr -p "$T/pid" 127.0.0.1:$((P + 153)) 127.0.0.1:$ECHO \
			"$KEY" 2>"$T/d.log"; rc=$?
		[ $rc = 0 ] || { echo "exit status $rc"; cat "$T/d.log"; return 1; }
		[ -s "$T/pid" ] || { echo "no pid file"; return 1; }
		dp=$(cat "$T/pid"); pids="$pids $dp"
		alive "$dp" || { echo "pid $dp is not running"; return 1; }
		listening $((P + 153)) || return 1
		sid=$(ps -o sid= -p "$dp" | tr -d ' ')
		[ "$sid" = "$dp" ] || { echo "session $sid, not its own ($dp)"; return 1; }; }
	check "process: -d detaches (a new session) and -p writes its pid" daemon
	pidgone() { [ -n "$dp" ] && kill "$dp" && wait_for 30 sh -c "[ ! -e '$T/pid' ]"; }
	check "process: the pid file goes when it stops" pidgone
	GSTUNNEL_KEY=$KEY bg "$T/env.s.log" "$SERVER" 127.0.0.1:$((P + 154)) 127.0.0.1:$ECHO; es=$last
	listening $((P + 154)) >/dev/null
	no_env_key() { ! grep -a -q "$KEY" /proc/$es/environ; }
	check "process: GSTUNNEL_KEY is gone from /proc/PID/environ" no_env_key
	stop $es
fi

if want strangers; then
	# -n 4: at most 2 unauthenticated; 10 silent strangers cannot lock out
	bg "$T/sg.s.log" "$SERVER" -n 4 -t 30 127.0.0.1:$((P + 155)) 127.0.0.1:$ECHO "$KEY"; sgs=$last
	bg "$T/sg.c.log" "$CLIENT" 127.0.0.1:$((P + 156)) 127.0.0.1:$((P + 155)) "$KEY"; sgc=$last
	listening $((P + 155)) >/dev/null && listening $((P + 156)) >/dev/null
	bg "$T/hog.log" "$PY" "$TESTS/t.py" hog $((P + 155)) 10 8; hog=$last
	sleep 1
	served() { timeout 4 "$PY" "$TESTS/t.py" echo $((P + 156)) 1000; }
	check "strangers: 10 silent strangers at -n 4: a client still gets in" served
	stop $hog; stop $sgc; stop $sgs
fi

if want dead; then
	# -i: an idle connection is reset on time
	SOPT="-i 2" pair I $((P + 158)) $((P + 157)) 127.0.0.1:$ECHO; is=$spid ic=$cpid
	check "dead: -i 2 resets an idle connection after about 2 s" t idle $((P + 158)) 1.5 4
	stop $ic; stop $is
	pair I2 $((P + 160)) $((P + 159)) 127.0.0.1:$ECHO; is=$spid ic=$cpid
	kept_open() { ! t idle $((P + 160)) 4 6; }
	check "dead: without -i it stays open" kept_open
	stop $ic; stop $is
	# keepalive: in a network namespace, the link's packets dropped by nft
	ka_ns() { unshare -n sh -c '
		ip link set lo up
		"$2" "$6/t.py" serve "$1/ka.target.log" 7001 7002 & a=$!
		sleep 0.5
		"$3" -K 2,1,2 -v 127.0.0.1:7010 127.0.0.1:7001 "$5" 2>"$1/ka.s.log" & b=$!
		"$4" -K 2,1,2 -v 127.0.0.1:7011 127.0.0.1:7010 "$5" 2>"$1/ka.c.log" & c=$!
		sleep 0.5
		"$2" "$6/t.py" idle 7011 1 8 >"$1/ka.idle" 2>&1 & i=$!
		sleep 1
		nft add table inet ka
		nft add chain inet ka c "{ type filter hook input priority 0; }"
		nft add rule inet ka c tcp dport 7010 drop
		nft add rule inet ka c tcp sport 7010 drop
		wait $i; echo "idle: $?" >>"$1/ka.idle"
		kill $a $b $c; wait $a $b $c' sh "$T" "$PY" "$SERVER" "$CLIENT" "$KEY" \
		"$TESTS"
		cat "$T/ka.idle"; grep -E 'reset|timed out|link' "$T/ka.c.log" "$T/ka.s.log"
		grep -q "idle: 0" "$T/ka.idle"; }
	check "dead: -K 2,1,2: a silent link is found dead within the keepalive bound" ka_ns
fi

if [ $LONG = 1 ] && want soak; then
	COPT="-v -r 1" SOPT="-v -r 1" pair L $((P + 46)) $((P + 45)) 127.0.0.1:$ECHO
	check "soak: 5 minutes of rotation under load" t stream $((P + 46)) 300 2048
	check "soak: 10 x 1000 connections" sh -c "for i in 1 2 3 4 5 6 7 8 9 10; do
		'$PY' '$TESTS/t.py' many $((P + 46)) 1000 5000 || exit 1; done"
fi

# ---- fuzzing ------------------------------------------------------------------
if [ $FUZZ = 1 ] && want fuzz; then
	# an ASan+UBSan server; the Ref client picks a cipher per connection
	FZ=$T/fz_server
	if ! ${CC:-cc} -std=c99 -g -O1 -fsanitize=address,undefined \
		-fno-sanitize-recover=undefined -fno-omit-frame-pointer -DSERVER \
		-o "$FZ" gstunnel.c -lbearssl 2>"$T/cc.log"; then
		no "fuzz: cannot build the sanitizer server: $(head -c 200 "$T/cc.log")"
	else
		bg "$T/fuzz.s.log" env ASAN_OPTIONS=abort_on_error=0 "$FZ" -r 1 -t 3 \
			127.0.0.1:$((P + 70)) 127.0.0.1:$((P + 71)) "$KEY"; fzs=$last
		listening $((P + 70)) >/dev/null
		check "fuzz: ${FUZZ_SECONDS:-60} s of random record sequences and hellos" \
			"$PY" "$TESTS/fuzz.py" $((P + 70)) $((P + 71)) "$KEY" "${FUZZ_SECONDS:-60}" "${FUZZ_SEED:-$$}"
		sed -n 's/^fuzz: /        | /p' "$T/out"
		check "fuzz: the server is still running" alive $fzs
		stop $fzs
		clean() { ! grep -e 'ERROR: [A-Za-z]*Sanitizer' -e 'runtime error:' \
			-e 'SUMMARY: [A-Za-z]*Sanitizer' "$T/fuzz.s.log"; }
		check "fuzz: no sanitizer report" clean
	fi
fi

# Sanitizer and valgrind builds report at exit: stop everything first.
for p in $pids; do kill "$p" 2>/dev/null; done
for p in $pids; do wait "$p" 2>/dev/null; done
pids=""
if grep -q -a -e __asan_init -e __ubsan_handle -e __tsan_init -e valgrind \
		"$CLIENT_BIN" "$SERVER_BIN"; then
	reports() { ! grep -l -e 'ERROR: [A-Za-z]*Sanitizer' -e 'runtime error:' \
		-e 'SUMMARY: [A-Za-z]*Sanitizer' -e '^==[0-9]*== ' "$T"/*.log; }
	check "sanitizers: no sanitizer or valgrind reports in any log" reports
fi

# The same again with the other cipher (see the header).
if [ -z "${CIPHER:-}" ]; then
	echo "== again with -c chacha20 on both ends"
	CIPHER=chacha20 EXCEPT="cli keys signal cipher fuzz $OPS" CLIENT_BIN="$CLIENT_BIN" \
		SERVER_BIN="$SERVER_BIN" GSTUNNEL_CLIENT="$CLIENT" \
		GSTUNNEL_SERVER="$SERVER" "$0" $FLAGS $ONLY | tee "$T/chacha.out"
	set -- $(grep -E '^[0-9]+ passed, [0-9]+ failed' "$T/chacha.out" | tail -n 1 | tr -d ,)
	if [ "${2:-}" = passed ] && [ "${4:-}" = failed ]; then
		passed=$((passed + $1)) failed=$((failed + $3))
		skipped=$((skipped + ${5:-0}))
	else
		no "chacha20: the run ended without its summary line"
	fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
finished=1
[ $failed = 0 ]
