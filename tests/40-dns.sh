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
		t0=$(date +%s)
		"$3" 127.0.0.1:7011 $name:7010 "$5" 2>"$1/dns.$name.log"
		echo "$name: exit $? after $(($(date +%s) - t0)) s"
	done
	kill $d $e $s; wait' sh "$T" "$PY" "$CLIENT" "$SERVER" "$KEY" "$TESTS" \
	>"$T/dns.out" 2>&1; }
# shellcheck disable=SC2086 # a list
have $DNS_NEEDS && dns_ns
dns_ok() { grep -q "^$1: ok$" "$T/dns.out" || { cat "$T/dns.out"; false; }; }
check_with "$DNS_NEEDS" "dns: a name from the nameserver (A)" dns_ok tunnel.test
check_with "$DNS_NEEDS" "dns: a name without a dot, found in a search domain" dns_ok tun
spoof() { dns_ok spoof.test && ! grep 127.0.0.9 "$T/dns.spoof.test.log"; }
check_with "$DNS_NEEDS" "dns: replies with a wrong ID or from a wrong port are ignored" spoof
nx() { grep -q "^nx.test: exit 2 " "$T/dns.out" &&
	logged "cannot resolve SERVER 'nx.test': no address" "$T/dns.nx.test.log"; }
check_with "$DNS_NEEDS" "dns: a name that does not exist is refused at start" nx
silent() { grep "^silent.test: exit 2 after [4-7] s" "$T/dns.out" &&
	logged "no answer from the nameservers" "$T/dns.silent.test.log"; }
check_with "$DNS_NEEDS" "dns: a nameserver that does not answer: refused after 5 s" silent
