# pool: -P (ready links, OPEN), and --proxy-protocol. Protocol-level, so
# the first pass only.
[ -n "${CIPHER:-}" ] && return 0
# a server that waits 1.5 s for OPEN, not 60: built meanwhile
OW=$T/ow_server
if have_cc; then
	(build "$OW" -O1 -DSERVER -DOPEN_WAIT_MS=1500; echo $? >"$T/ow.rc") &
	owb=$!
fi
ports PL_S PL_C PL_M PL_G PL_GS PL_GC PW_C PO_S PO_D PX_T PX_S PX_C
metric() { curl -s -m 5 http://127.0.0.1:$PL_M/metrics |
	awk -v m="$1" '$1 == m { print $2 }'; }
# -P 2: two links made ahead; the target sees nothing until an
# application opens one, and applications take them
a0=$(accepts)
bg "$T/pl.s.log" "$SERVER" -v 127.0.0.1:$PL_S 127.0.0.1:$ECHO "$KEY"; pls=$last
listening $PL_S >/dev/null
bg "$T/pl.c.log" "$CLIENT" -v -P 2 -m $PL_M 127.0.0.1:$PL_C 127.0.0.1:$PL_S "$KEY"; plc=$last
listening $PL_S >/dev/null && listening $PL_C >/dev/null && listening $PL_M >/dev/null
ready2() { [ "$(metric gstunnel_pool_ready)" = 2 ]; }
made_ahead() { wait_for 50 ready2 && sleep 0.3 && nothing_in "$a0" &&
	[ "$(grep -c 'new connection' "$T/pl.s.log")" = 2 ]; }
check_with curl "pool: -P 2: two links made and authenticated ahead; the target sees none" made_ahead
taken() { t many $PL_C 3 1000 && logged "new connection, on a ready link" "$T/pl.c.log" &&
	wait_for 30 ready2 && n=$(metric gstunnel_pool_taken_total) && echo "taken $n" &&
	[ "$n" -ge 2 ] && [ "$(metric gstunnel_pool_links)" = 2 ]; }
check_with curl "pool: applications take ready links, and the pool refills" taken
# a target that speaks first (a mail server's greeting) through a ready link
bg "$T/greeter.log" "$PY" "$TESTS/t.py" greeter $PL_G; plg=$last
bg "$T/pg.s.log" "$SERVER" 127.0.0.1:$PL_GS 127.0.0.1:$PL_G "$KEY"; pgs=$last
listening $PL_GS >/dev/null # first: a pool link made before would back off
bg "$T/pg.c.log" "$CLIENT" -v -P 1 127.0.0.1:$PL_GC 127.0.0.1:$PL_GS "$KEY"; pgc=$last
listening $PL_G >/dev/null && listening $PL_GS >/dev/null && listening $PL_GC >/dev/null
greet() { sleep 0.5; t greet $PL_GC && logged "on a ready link" "$T/pg.c.log"; }
check "pool: a target that speaks first (an SMTP greeting) works through a ready link" greet
stop $pgc; stop $pgs; stop $plg
# the server restarts: the pool notices; meanwhile applications are reset,
# not hung; then it refills, and serves. SIGTERM with only ready links
# open: nothing to drain, the end exits at once (not after -w 10).
quick() { kill "$1"; _q=0; while [ $_q -lt 20 ] && alive "$1"; do sleep 0.1; _q=$((_q + 1)); done
	echo "exited after $((_q / 10)).$((_q % 10)) s"; ! alive "$1"; }
check "pool: SIGTERM: a server holding only ready links exits at once" quick $pls
gone() { wait_for 50 sh -c "[ \"\$(curl -s -m 5 http://127.0.0.1:$PL_M/metrics |
	awk '\$1 == \"gstunnel_pool_ready\" { print \$2 }')\" = 0 ]" &&
	t closed $PL_C x 5 reset; }
check_with curl "pool: the server stops: ready links noticed, an application reset at once" gone
bg "$T/pl2.s.log" "$SERVER" 127.0.0.1:$PL_S 127.0.0.1:$ECHO "$KEY"; pls=$last
listening $PL_S >/dev/null
back() { wait_for 100 ready2 && t many $PL_C 3 1000; }
check_with curl "pool: the server is back: the pool refills and serves" back
check "pool: SIGTERM: a client holding only ready links exits at once" quick $plc
stop $pls
# a wrong key: no busy loop; one line per back-off, not per link: at 0,
# 1 and 3 s (waits of 1 s, 2 s, 4 s), so 3 lines in the first 5 s
bg "$T/pw.c.log" "$CLIENT" -P 2 127.0.0.1:$PW_C 127.0.0.1:$SB "$(printf '%s' "$KEY" | tr a-z b-za)"; pwc=$last
listening $PW_C >/dev/null
sleep 1; c0=$(cpu_ticks $pwc); sleep 4; c1=$(cpu_ticks $pwc)
backoff() { cat "$T/pw.c.log"; n=$(grep -c 'pool link: .*the next in' "$T/pw.c.log")
	echo "$n lines in 5 s, cpu ticks $((c1 - c0))"
	[ "$n" = 3 ] && [ $((c1 - c0)) -lt 20 ] &&
	logged "authentication failed.*the next in 4 s" "$T/pw.c.log"; }
check "pool: a wrong key: the pool backs off (one line each), no busy loop" backoff
stop $pwc
# the server ends a link that no OPEN comes to (OW: after 1.5 s), and
# counts such links in -n: a connection from elsewhere waits
if ! have_cc; then
	skip "pool: the server ends an unopened link after its bound, and counts it in -n ($why)"
elif ! wait $owb || [ "$(cat "$T/ow.rc")" != 0 ]; then
	no "pool: cannot build a server with a short OPEN wait: $(head -c 200 "$T/cc.log")"
else
	bg "$T/po.s.log" "$OW" -v -n 2 127.0.0.1:$PO_S 127.0.0.1:$ECHO "$KEY"; pos=$last
	bg "$T/pd.c.log" "$CLIENT" 127.0.0.1:$PO_D 127.0.0.1:$PO_S "$KEY"; pdc=$last
	listening $PO_S >/dev/null && listening $PO_D >/dev/null
	bg "$T/po.r.log" "$PY" "$TESTS/ref.py" unopened $PO_S "$KEY" 2; por=$last
	unopened() { wait_for 100 grep -q ready "$T/po.r.log" || return 1
		t0=$(date +%s%N); t echo $PO_D 1000 || return 1
		dt=$((($(date +%s%N) - t0) / 1000000)); echo "another client waited $dt ms"
		wait_for 50 grep -q "ended by the server" "$T/po.r.log"; cat "$T/po.r.log"
		grep -q "2 links ended by the server after [123]\." "$T/po.r.log" &&
		[ $dt -ge 500 ] && [ $dt -lt 4000 ] &&
		[ "$(grep -c 'connecting to' "$T/po.s.log")" = 1 ]; }
	check "pool: the server ends an unopened link after its bound, counts it in -n, never connects it" unopened
	stop $por; stop $pdc; stop $pos
fi
# --proxy-protocol: the target gets a PROXY v2 header with the
# application's address, then the data
bg "$T/px.s.log" "$SERVER" --proxy-protocol 127.0.0.1:$PX_S 127.0.0.1:$PX_T "$KEY"; pxs=$last
listening $PX_S >/dev/null
bg "$T/px.c.log" "$CLIENT" -P 1 127.0.0.1:$PX_C 127.0.0.1:$PX_S "$KEY"; pxc=$last
listening $PX_S >/dev/null && listening $PX_C >/dev/null
check "pool: --proxy-protocol: a PROXY v2 header with the application's address, as the spec has it" \
	t proxycheck $PX_T $PX_C $PX_S
stop $pxc; stop $pxs
proxy_side() { "$CLIENT" --proxy-protocol :1 1.2.3.4:5 "$KEY" 2>"$T/e"; rc=$?; cat "$T/e"
	"$SERVER" -P 2 :1 1.2.3.4:5 "$KEY" 2>"$T/e2"; rc2=$?; cat "$T/e2"
	[ $rc = 2 ] && grep -q "is for gstunnel_server" "$T/e" &&
	[ $rc2 = 2 ] && grep -q "is for gstunnel_client" "$T/e2"; }
check "pool: --proxy-protocol is for the server, -P for the client" proxy_side
