# keys: the crypto self-test, -B, -g, RDRAND, getrandom, key files,
# GSTUNNEL_KEY, the KEY wiped from argv
ports KEY_C1 KEY_C2 KEY_C3 KEY_C4
selftest() { "$CLIENT" -S >"$T/st"; rc=$?; cat "$T/st"
	[ $rc = 0 ] && ! grep -q FAILED "$T/st" &&
	[ "$(grep -c '^aes-gcm .* ok$' "$T/st")" -ge 4 ] &&
	[ "$(grep -c '^chacha20-poly1305 .* ok$' "$T/st")" -ge 1 ] &&
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
	[ "$(grep -c '^chacha20-poly1305 .* MB/s$' "$T/sp")" -ge 1 ] &&
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
NG="keys: without getrandom: waits for /dev/random, then reads /dev/urandom"
if [ $CROSS = 1 ]; then :
elif ! have_cc; then
	skip "$NG ($why)"
elif ! build "$T/ng_client" -O2 -DNO_GETRANDOM -DCLIENT; then
	skip "$NG (cannot build here: $(head -c 80 "$T/cc.log"))"
elif ! have strace; then
	skip "$NG ($why)"
else
	no_getrandom() { "$T/ng_client" -S | grep 'OS random /dev/urandom (after /dev/random)' &&
		strace -e trace=open,openat,poll,ppoll,read -o "$T/ng.trace" \
			"$T/ng_client" -g && cat "$T/ng.trace" &&
		awk '/"\/dev\/random"/ && /open/ { r = 1 }
		     r && /poll\(\[\{fd=[0-9]+, events=POLLIN\}\].* = 1 / { p = 1 }
		     /"\/dev\/urandom"/ && /open/ { exit !(r && p) }
		     /getrandom/ { exit 1 }' "$T/ng.trace"; }
	check "$NG" no_getrandom
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
check "keys: -k FILE" key_client $KEY_C1 "$CLIENT" -k "$T/key"
check "keys: -k - (standard input)" key_client $KEY_C2 "$CLIENT" -k -
check "keys: GSTUNNEL_KEY" key_client $KEY_C3 env GSTUNNEL_KEY="$KEY" "$CLIENT"
check "keys: GSTUNNEL_NO_RDRAND=1 tunnel" key_client $KEY_C4 \
	env GSTUNNEL_NO_RDRAND=1 GSTUNNEL_KEY="$KEY" "$CLIENT"
check "keys: a bad key file is refused" bad_args "5 bytes" -k "$T/badkey" :1 127.0.0.1:2
check "keys: KEY given twice is refused" bad_args "twice" -k "$T/key" :1 127.0.0.1:2 "$KEY"
argv_wiped() { tr '\0' ' ' <"/proc/$A_C/cmdline"; echo
	tr '\0' ' ' <"/proc/$A_C/cmdline" | grep -q "127.0.0.1:$CA" &&
	! tr '\0' ' ' <"/proc/$A_C/cmdline" | grep -q "$KEY"; }
check "keys: the argv KEY is gone from /proc/PID/cmdline" argv_wiped
# a KEY that does not look random gets one line at start; a -g key never
ports KW
weak_warned() { timeout -k 1 5 "$CLIENT" 127.0.0.1:$KW 1.2.3.4:5 passwordpassword >"$T/w.log" 2>&1 & w=$!
	sleep 0.5; kill $w 2>/dev/null; wait $w; cat "$T/w.log"
	[ "$(grep -c 'KEY does not look random' "$T/w.log")" = 1 ]; }
check "keys: a KEY that looks typed is warned about, in one line" weak_warned
g_quiet() { for i in 1 2 3 4 5 6 7 8 9 10; do g=$("$CLIENT" -g)
		timeout -k 1 5 "$CLIENT" 127.0.0.1:$KW 1.2.3.4:5 "$g" >"$T/w.log" 2>&1 & w=$!
		sleep 0.3; kill $w 2>/dev/null; wait $w
		! grep 'look random' "$T/w.log" || return 1; done; }
check "keys: a -g key never is" g_quiet
