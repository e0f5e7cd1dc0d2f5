#!/bin/sh
# .ci/dns/test.sh - gstunnel's own resolver (lookup() in gstunnel.c, driven
# by harness.c, which includes gstunnel.c) against a hostile fake
# nameserver (fakedns.py): forged, cut, looping and random replies,
# silence, search domains, /etc/hosts. As root, in a network namespace with
# only loopback and a mount namespace whose /etc/hosts and /etc/resolv.conf
# are ours. Builds: gcc, clang with ASan+UBSan (QUICK=1: gcc only).
# .ci/run runs it; it prints "N passed, N failed" at the end.
set -u
cd "$(dirname "$0")" || exit 2
D=$(pwd)

if [ -z "${IN_NS:-}" ]; then
	T=$(mktemp -d) || exit 2
	trap 'rm -rf "$T"' EXIT
	W="-std=c99 -Wall -Wextra -pedantic -Werror -DCLIENT"
	gcc $W -O2 harness.c -o "$T/lk-gcc" -lbearssl &&
	gcc $W -O2 -DHOSTS_PATH=\"$T/hosts2\" -DRESOLVE_MS=1500 \
	    harness.c -o "$T/lk-short" -lbearssl || exit 2
	BUILDS=gcc
	if [ -z "${QUICK:-}" ]; then
		clang $W -O1 -g -fsanitize=address,undefined \
		    -fno-sanitize-recover=all -fno-omit-frame-pointer \
		    harness.c -o "$T/lk-asan" -lbearssl || exit 2
		BUILDS="gcc asan"
	fi
	export T BUILDS IN_NS=1
	unshare -mn sh "$D/test.sh"
	exit $?
fi

# ---- inside the namespaces -----------------------------------------------
mount --make-rprivate / || exit 2
ip link set lo up || exit 2
cat > "$T/hosts" <<'EOT'
# comment line
127.0.0.1	localhost
fd00::11	h1.example h1	# IPv6 first in the file
10.1.1.1	h1.example h1
10.1.1.2	Mixed.CASE
10.1.1.3 multi ; comment
bogus multi
10.1.1.4	x	multi
10.1.1.3	multi
10.1.1.5	override.test
fe80::1%lo	scoped
EOT
printf '10.7.7.7 only.in.hosts2\n' > "$T/hosts2"
: > "$T/resolv.conf"
mount --bind "$T/hosts" /etc/hosts &&
mount --bind "$T/resolv.conf" /etc/resolv.conf || exit 2
conf() { printf '%s\n' "$@" > "$T/resolv.conf"; }
DEF='nameserver 127.0.0.1'

: > "$T/qlog"
python3 "$D/fakedns.py" "$T/qlog" "$T/ready" 2>"$T/dns.err" &
DNS=$!
trap 'kill $DNS 2>/dev/null' EXIT
i=0
while [ ! -e "$T/ready" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -e "$T/ready" ] || { cat "$T/dns.err"; exit 2; }

pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL [$B] $*"; }

# run ARGS...: $out is the output, $ms the time taken
run() {
	last="$*"
	out=$(LK_TIME=1 "$LK" "$@" 2>"$T/err")
	rc=$?
	ms=$(sed -n 's/^ms //p' "$T/err" | tail -n 1)
	if grep -v '^ms ' "$T/err" | grep -q .; then
		bad "$*: stderr:"; grep -v '^ms ' "$T/err" | head -20
	fi
	[ $rc -le 1 ] || bad "$*: exit $rc"
}
# t WANT ARGS...: the output must be WANT (lines given as \n)
t() {
	want=$(printf "$1"); shift
	run "$@"
	if [ "$out" = "$want" ]; then ok; else
		bad "$*: want '$want', got '$out'"; fi
}
# time_in MIN MAX: the last run took MIN to MAX ms
time_in() {
	if [ "${ms:-0}" -ge "$1" ] && [ "${ms:-0}" -le "$2" ]; then ok; else
		bad "$last: took ${ms}ms, want $1..$2"; fi
}
# logged PATTERN: the queries since the last qmark, one line, match
qmark() { : > "$T/qlog"; }
queries() { awk '{print $1}' "$T/qlog" | uniq | tr '\n' ' '; }

suite() {
	conf "$DEF" 'search nope.test sub.test' 'options ndots:1'
	# literals and the passive wildcard
	t 'inet 1.2.3.4 80' 1.2.3.4 80
	t 'inet6 fe80::1:2 443' fe80::1:2 443
	t 'inet6 ::ffff:1.2.3.4 1' ::ffff:1.2.3.4 1
	t 'inet6 :: 8080\ninet 0.0.0.0 8080' '' 8080 passive
	t "error: bad host name ''" '' 80
	t 'inet 127.0.0.1 65535' 127.0.0.1 65535 passive
	# /etc/hosts: both families, IPv4 first, case, final dot, no dups
	t 'inet 10.1.1.1 1\ninet6 fd00::11 1' h1 1
	t 'inet 10.1.1.1 1\ninet6 fd00::11 1' H1.Example. 1
	t 'inet 10.1.1.2 2' mixed.case 2
	t 'inet 10.1.1.3 3\ninet 10.1.1.4 3' multi 3
	t 'inet 10.1.1.5 4' override.test 4
	# DNS
	t 'inet 10.0.0.1 53\ninet 10.0.0.2 53\ninet6 fd00::1 53' a.test 53
	t 'inet 10.0.1.1 5\ninet6 fd00::101 5' order.test 5
	t 'inet 10.0.0.3 6' v4only.test 6
	t 'inet6 fd00::3 7' v6only.test 7
	t 'inet 10.0.0.4 8\ninet6 fd00::4 8' cname.test 8
	t 'inet 10.0.0.14 9' dup.test 9
	run big.test 10
	# 40 A records, 30 of them within 512 bytes; 20 AAAA: 32 kept
	n=$(printf '%s\n' "$out" | grep -c '^inet6* [0-9a-f:.]* 10$')
	[ "$n" = 32 ] && ok || bad "big.test: $n addresses, want 32"
	# search list, for names without a dot only; NXDOMAIN moves on
	qmark; t 'inet 10.0.0.5 11' host 11
	[ "$(queries)" = 'host.nope.test host.sub.test ' ] && ok ||
	    bad "search order: $(queries)"
	qmark; t 'inet 10.0.0.6 12' bare 12
	[ "$(queries)" = 'bare.nope.test bare.sub.test bare ' ] && ok ||
	    bad "search then bare: $(queries)"
	qmark; t "error: no address for 'x.y'" x.y 13
	[ "$(queries)" = 'x.y ' ] && ok || bad "dotted name: $(queries)"
	qmark; t 'inet 10.0.0.1 14\ninet 10.0.0.2 14\ninet6 fd00::1 14' a.test. 14
	[ "$(queries)" = 'a.test ' ] && ok || bad "absolute: $(queries)"
	t "error: no address for 'scoped'" scoped 14
	t "error: no address for 'nx.test'" nx.test 15
	time_in 0 500
	t "error: no address for 'nodata.test'" nodata.test 16
	# ... and the last of search/domain counts
	conf "$DEF" 'search sub.test' 'domain nope.test'
	t "error: no address for 'host'" host 17
	conf "$DEF" 'domain nope.test' 'search  nope.test	sub.test  '
	t 'inet 10.0.0.5 17' host 17
	# bad names
	l63=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
	n253=$l63.$l63.$l63.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
	t "error: no address for '$n253'" $n253 1
	t "error: bad host name '${n253}a'" ${n253}a 1
	t "error: no address for '$n253.'" $n253. 1
	t "error: bad host name '${l63}a.test'" ${l63}a.test 1
	for n in a..b .a . 'a b' 'a/b' 'a
b' '-x;y'; do
		run "$n" 1
		[ "$out" = "error: bad host name '$n'" ] && ok || bad "'$n': $out"
	done
	# forgeries are ignored, the real answer taken
	for n in spoofid spoofport spoofip noqr wrongq; do
		t 'inet 10.0.0.7 18\ninet6 fd00::7 18' $n.test 18
	done
	t 'error: no answer from the nameservers' spoofonly.test 19
	time_in 4900 5600
	# broken replies
	t 'inet 10.0.0.11 20' trunc.test 20
	t 'inet 10.0.0.12 21\ninet 10.0.0.13 21' loop.test 21
	t 'inet 10.0.0.18 22' badlen.test 22
	run garbage.test 23
	case $out in "inet 10.0.0.15 23"*"inet6 fd00::15 23"*) ok ;;
	*) bad "garbage.test: $out" ;; esac
	i=0
	while [ $i -lt ${FUZZ:-20} ]; do
		run fuzz.test 24
		case $out in error:*|inet*) ok ;; *) bad "fuzz: $out" ;; esac
		[ "${ms:-9999}" -le 5600 ] && ok || bad "fuzz took ${ms}ms"
		i=$((i + 1))
	done
	# a lost query is asked again
	t 'inet 10.0.0.16 25\ninet6 fd00::16 25' retry.test 25
	time_in 900 1600
	# silence: the whole budget, no more
	t 'error: no answer from the nameservers' silent.test 26
	time_in 4900 5600
	conf 'search s1.test s2.test s3.test' 'nameserver 127.0.0.1' \
	    'nameserver ::1' 'nameserver 127.0.0.2'
	t 'error: no answer from the nameservers' silent 27
	time_in 4900 5600
	# nameservers: IPv6 ones, rotation, at most 3, default 127.0.0.1
	conf 'nameserver ::1'
	t 'inet 10.0.0.1 28\ninet 10.0.0.2 28\ninet6 fd00::1 28' a.test 28
	conf 'nameserver 127.0.0.2' 'nameserver 192.0.2.1' \
	    'nameserver 127.0.0.1' 'nameserver 127.0.0.3'
	t 'inet 10.0.0.3 29' v4only.test 29
	time_in 0 500
	conf '# nothing' 'nameserver' 'nameserver bogus' 'options ndots:3'
	t 'inet 10.0.0.3 30' v4only.test 30
	conf 'nameserver 127.0.0.2' 'nameserver 127.0.0.3' \
	    'nameserver 127.0.0.4' 'nameserver 127.0.0.1'
	t 'error: no answer from the nameservers' v4only.test 31
	time_in 4900 5600
}

for B in $BUILDS; do
	LK=$T/lk-$B
	echo "== $B"
	suite
done
# compile-time paths and budget
B=short LK=$T/lk-short
conf "$DEF"
t 'inet 10.7.7.7 1' only.in.hosts2 1
t 'error: no answer from the nameservers' silent.test 1
time_in 1400 1900
# valgrind: leaks, bad reads, open descriptors
if command -v valgrind >/dev/null; then
	B=valgrind
	conf "$DEF" 'search nope.test sub.test'
	for a in h1 a.test cname.test bare nx.test garbage.test fuzz.test \
	    loop.test trunc.test big.test 1.2.3.4 ''; do
		valgrind -q --leak-check=full --errors-for-leak-kinds=all \
		    --error-exitcode=9 --track-fds=yes "$T/lk-gcc" "$a" 1 \
		    ${a:+x} >/dev/null 2>"$T/vg"
		rc=$?
		if [ $rc -le 1 ] && ! grep -q 'Open .*socket' "$T/vg"; then ok
		else bad "valgrind $a: rc $rc"; cat "$T/vg"; fi
	done
fi
B=server
grep 'server error' "$T/dns.err" && bad "fake server errors"
echo "passed $pass, failed $fail"
[ $fail = 0 ]
