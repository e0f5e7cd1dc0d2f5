# dead: -i, and keepalive finding a silent link dead
ports I_S I_C I2_S I2_C
# -i: an idle connection is reset on time
SOPT="-i 2" pair I $I_C $I_S 127.0.0.1:$ECHO; is=$spid ic=$cpid
check "dead: -i 2 resets an idle connection after about 2 s" t idle $I_C 1.5 4
stop $ic; stop $is
pair I2 $I2_C $I2_S 127.0.0.1:$ECHO; is=$spid ic=$cpid
kept_open() { ! t idle $I2_C 4 6; }
check "dead: without -i it stays open" kept_open
stop $ic; stop $is
# keepalive: in a network namespace, the link's packets dropped by nft (its
# ports are fixed: nothing else is in that namespace)
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
	kill $a $b $c; wait $a $b $c' sh "$T" "$PY" "$SERVER" "$CLIENT" "$KEY" "$TESTS"
	cat "$T/ka.idle"; grep -E 'reset|timed out|link' "$T/ka.c.log" "$T/ka.s.log"
	grep -q "idle: 0" "$T/ka.idle"; }
check_with "netns ip nft" "dead: -K 2,1,2: a silent link is found dead within the keepalive bound" ka_ns
