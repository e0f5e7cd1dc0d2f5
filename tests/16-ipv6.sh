# ipv6: [::1] on both sides
ports V6_S V6_C
if grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null; then
	bg "$T/v6.s.log" "$SERVER" "[::1]:$V6_S" 127.0.0.1:$ECHO "$KEY"; v6s=$last
	bg "$T/v6.c.log" "$CLIENT" "[::1]:$V6_C" "[::1]:$V6_S" "$KEY"; v6c=$last
	v6() { listening $V6_C && T_HOST=::1 t echo $V6_C 1000000; }
	check "ipv6: [::1] on both sides" v6
	stop $v6c; stop $v6s
else
	skip "ipv6: [::1] on both sides (no ::1 on this machine)"
fi
