#!/bin/sh
# test.sh - gstunnel's tests: real binaries, real sockets, loopback only.
#
#   ./test.sh [-l] [-x] [-z] [-P N] [NAME...]
#
#   -l    also run the long soak (rotation under load for 5 minutes)
#   -z    fuzz sanitizer builds: the server with the Python reference
#         client, the client with a Python server holding the key
#         (FUZZ_SECONDS each, default 60; FUZZ_SEED); CI runs
#         "./test.sh -z fuzz"
#   -P N  the client keeps N links ready (-P N): by default the groups
#         that carry data (transfer secure rotation many failure apps),
#         and the client fuzzer with -z; CI runs "./test.sh -P 2"
#   -x    the cross-platform subset (.ci/cross runs it with one end under
#         qemu, .ci/windows with one end under wine): transfers around
#         record boundaries and of 1 and 16 MiB, half-close, wrong key,
#         tampering, truncation, rotation, 200 concurrent connections
#   NAME  run only the test groups whose name contains NAME
#
# The groups are the files tests/NN-NAME.sh, sourced in the order of NN
# (so that counters and PIDs stay in this shell), with the helpers of
# tests/lib.sh (documented at its top). A file tests/NN-NAME.start.sh
# belongs to group NAME too: it starts what runs beside the other groups
# (rotation's 30 s streams). The Python helpers are tests/t.py (targets,
# load, strangers), tests/ref.py (a second implementation of the client),
# tests/fuzz.py and tests/mitm.py; they run under PY (Debian's
# /usr/bin/python3). A test whose optional tool is missing (curl, squid,
# mandoc, nft, a mount namespace...) is skipped and says why.
#
# Every test runs with the default cipher (aes; the server has no -c, so it
# takes what the client asks). Then test.sh runs itself again with
# CIPHER=chacha20: both ends get -c chacha20 through wrapper scripts, and the
# groups that carry no data or do not depend on the cipher are left out
# (unit, cli, keys, signal, cipher, fuzz, scale, limits, and the
# operations). The last line counts both runs.
#
# GSTUNNEL_CLIENT / GSTUNNEL_SERVER name the binaries (default: ./gstunnel_*),
# so the same tests rerun on sanitizer builds or under valgrind (a wrapper
# script that execs "valgrind -q ... gstunnel_*"); their reports fail the
# run. CLIENT_BIN / SERVER_BIN: the programs themselves, when those are
# wrappers. PORT_BASE (24000) moves every port (a run uses 200 from there);
# KEEP=1 keeps the logs; EXCEPT lists groups to leave out. Every wait is
# bounded; every process started here is stopped by PID. The last line is
# "N passed, N failed, N skipped"; the exit status is 0 when none failed.

set -u
cd "$(dirname "$0")" || exit 2
TESTS=$PWD/tests
CLIENT=${GSTUNNEL_CLIENT:-$PWD/gstunnel_client}
SERVER=${GSTUNNEL_SERVER:-$PWD/gstunnel_server}
# the programs themselves, for the checks that look inside them
CLIENT_BIN=${CLIENT_BIN:-$CLIENT} SERVER_BIN=${SERVER_BIN:-$SERVER}
PY=${PY:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1 # no tests/__pycache__
PORT_BASE=${PORT_BASE:-24000}
LONG=0 CROSS=0 FUZZ=0 FLAGS="" POOL=${POOL:-}
while :; do
	case ${1:-} in
	-l) LONG=1 ;;
	-x) CROSS=1 ;;
	-z) FUZZ=1 ;;
	-P) POOL=${2:-}; FLAGS="$FLAGS -P"; shift ;;
	*) break ;;
	esac
	FLAGS="$FLAGS $1"; shift
done
ONLY="$*"
[ $CROSS = 1 ] && [ -z "$ONLY" ] && ONLY="transfer secure rotation many"
[ -n "$POOL" ] && [ -z "$ONLY" ] && ONLY="transfer secure rotation many failure apps"
MANY=1000; [ $CROSS = 1 ] && MANY=200
EXCEPT=${EXCEPT:-}
# the groups of operations (#8): they do not depend on the cipher
OPS="dns targets config stop reload stats logs process strangers dead"
TAG=${CIPHER:+$CIPHER: }${POOL:+-P $POOL: }

T=$(mktemp -d) || exit 2
pids=""
passed=0 failed=0 skipped=0
KEY=sieEtfJoLh3IVFHists3pKoLHAbmvb8h # a -g key: no warning

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

# shellcheck source=tests/lib.sh
. "$TESTS/lib.sh"

# want GROUP: the command line and EXCEPT ask for it
want() { for w in $EXCEPT; do [ "$1" = "$w" ] && return 1; done
	case " $ONLY " in "  ") return 0 ;; esac
	for w in $ONLY; do case $1 in *"$w"*) return 0 ;; esac; done; return 1; }

# -P N: the client gets -P N, through a wrapper script
CLIENT0=$CLIENT # as given, for the second run
if [ -n "$POOL" ]; then
	printf '#!/bin/sh\nexec "%s" -P %s "$@"\n' "$CLIENT" "$POOL" >"$T/CLIENT.pool"
	chmod +x "$T/CLIENT.pool"
	CLIENT=$T/CLIENT.pool
fi

# CIPHER set: both ends get -c CIPHER, through wrapper scripts
if [ -n "${CIPHER:-}" ]; then
	for w in CLIENT SERVER; do
		eval "real=\$$w"
		printf '#!/bin/sh\nexec "%s" -c %s "$@"\n' "$real" "$CIPHER" >"$T/$w"
		chmod +x "$T/$w"
		eval "$w=\$T/\$w"
	done
fi

start_targets
for _gf in "$TESTS"/[0-9][0-9]-*.sh; do # NN-NAME.sh, NN-NAME.start.sh
	_gn=${_gf##*/}
	_gn=${_gn#[0-9][0-9]-}
	_gn=${_gn%%.*}
	# shellcheck source=/dev/null
	if want "$_gn"; then . "$_gf"; fi
done

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
	# shellcheck disable=SC2086 # FLAGS and ONLY are lists of words
	CIPHER=chacha20 EXCEPT="unit cli keys signal cipher fuzz scale limits $OPS" CLIENT_BIN="$CLIENT_BIN" \
		SERVER_BIN="$SERVER_BIN" GSTUNNEL_CLIENT="$CLIENT0" \
		GSTUNNEL_SERVER="$SERVER" PORT_BASE="$PORT_BASE" "$0" $FLAGS $ONLY |
		tee "$T/chacha.out"
	# shellcheck disable=SC2046
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
