# dns: names, in a network and mount namespace, with our own resolv.conf,
# hosts file and nameserver (t.py's c_dns); its ports are fixed (nothing
# else is in that namespace)
DNS_NEEDS="mntns netns ip"
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
		"$3" -v 127.0.0.1:7011 $name:7010 "$5" 2>"$1/dns.$name.log" & c=$!
		sleep 0.3
		echo "$name: $("$2" "$6/t.py" closed 7011 x 8 reset 2>&1)"
		kill $c; wait $c
	done
	# a stream flows while another connection waits for a name that a
	# nameserver never answers, and while SIGHUP looks them up again
	printf "%s" "$5" >"$1/dns.key" # SIGHUP reads and stretches it again
	"$3" -v -k "$1/dns.key" 127.0.0.1:7012 127.0.0.1:7010,silent.test:7010 \
		2>"$1/dns.gaps.log" & c=$!
	sleep 0.3
	"$2" "$6/t.py" gaps 7012 11 0.5 >"$1/dns.gaps.out" 2>&1 & g=$!
	sleep 1
	"$2" "$6/t.py" echo 7012 1000 >"$1/dns.waiter.out" 2>&1 & w=$!
	sleep 4.5
	kill -HUP $c
	wait $g; echo "gaps: $? $(cat "$1/dns.gaps.out")"
	wait $w; echo "waiter: $? $(cat "$1/dns.waiter.out")"
	kill $c; wait $c
	# a server whose target does not resolve yet: it runs, and carries
	# data once the name resolves (here: once it is in /etc/hosts)
	"$4" -v 127.0.0.1:7020 later.test:7001 "$5" 2>"$1/dns.later.log" & s2=$!
	"$3" 127.0.0.1:7021 127.0.0.1:7020 "$5" 2>/dev/null & c=$!
	sleep 0.5
	echo "later1: $("$2" "$6/t.py" closed 7021 x 5 reset 2>&1)"
	echo "127.0.0.1 later.test" >>"$1/dns.hosts"
	i=0; while [ $i -lt 100 ] && ! grep -q "resolves now" "$1/dns.later.log"; do
		sleep 0.1; i=$((i + 1)); done
	"$2" "$6/t.py" echo 7021 10000 && echo "later2: ok" || echo "later2: FAILED"
	kill $c $s2; wait $c $s2
	kill $d $e $s; wait' sh "$T" "$PY" "$CLIENT" "$SERVER" "$KEY" "$TESTS" \
	>"$T/dns.out" 2>&1; }
# shellcheck disable=SC2086 # a list
have $DNS_NEEDS && dns_ns
dns_ok() { grep -q "^$1: ok$" "$T/dns.out" || { cat "$T/dns.out"; false; }; }
check_with "$DNS_NEEDS" "dns: a name from the nameserver (A)" dns_ok tunnel.test
check_with "$DNS_NEEDS" "dns: a name without a dot, found in a search domain" dns_ok tun
spoof() { dns_ok spoof.test && ! grep 127.0.0.9 "$T/dns.spoof.test.log"; }
check_with "$DNS_NEEDS" "dns: replies with a wrong ID or from a wrong port are ignored" spoof
nx() { grep "^nx.test: closed (reset) after 0" "$T/dns.out" &&
	logged "server nx.test:7010: no address for 'nx.test'; looking it up again in 1 s" \
		"$T/dns.nx.test.log" &&
	logged "cannot connect to server: its name does not resolve" "$T/dns.nx.test.log"; }
check_with "$DNS_NEEDS" "dns: a name that does not exist (yet): the client runs, and resets connections with a line" nx
silent() { grep "^silent.test: closed (reset) after [4-6]\." "$T/dns.out" &&
	logged "no answer from the nameservers; looking it up again in 1 s" "$T/dns.silent.test.log"; }
check_with "$DNS_NEEDS" "dns: a nameserver that does not answer: a connection waits for the lookup (5 s), then is reset" silent
out_has() { grep "^$1" "$T/dns.out" || { cat "$T/dns.out"; false; }; }
check_with "$DNS_NEEDS" "dns: a stream flows on (no gap over 0.5 s) while another connection waits for a silent nameserver, and through SIGHUP's lookups" \
	out_has "gaps: 0 "
waited() { out_has "waiter: 0 " && logged "conn 2: connecting to 127.0.0.1:7010" "$T/dns.gaps.log" &&
	logged "SIGHUP: reloaded (the key stretched in" "$T/dns.gaps.log"; }
check_with "$DNS_NEEDS" "dns: the connection that waited for the name is served by the next server" waited
later() { out_has "later1: closed (reset)" &&
	logged "target later.test:7001: no address for 'later.test'; looking it up again in 1 s" "$T/dns.later.log" &&
	logged "cannot connect to target: its name does not resolve" "$T/dns.later.log"; }
check_with "$DNS_NEEDS" "dns: a server whose target does not resolve yet runs, and resets connections with a line" later
later2() { out_has "later2: ok" && logged "target later.test:7001 resolves now" "$T/dns.later.log"; }
check_with "$DNS_NEEDS" "dns: and carries data once the name resolves, without a restart" later2
