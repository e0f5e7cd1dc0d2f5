# stats: SIGUSR1, -s, the -m page (summed over workers)
ports ST_S ST_M ST_C STJ_S STJ_M STJ_C
bg "$T/st.s.log" "$SERVER" -s 1 -m $ST_M 127.0.0.1:$ST_S 127.0.0.1:$ECHO "$KEY"; sts=$last
bg "$T/st.c.log" "$CLIENT" 127.0.0.1:$ST_C 127.0.0.1:$ST_S "$KEY"; stc=$last
listening $ST_M >/dev/null && listening $ST_C >/dev/null
scrape() { curl -s -m 5 http://127.0.0.1:$ST_M/metrics; }
have curl && scrape >"$T/m0"
t echo $ST_C 100000 && t echo $ST_C 100000 && t echo $ST_C 100000
sleep 0.2
have curl && scrape >"$T/m1"
metric() { awk -v m="$1" '$1 == m { print $2 }' "$2"; }
moved() { cat "$T/m1"; a=$(metric gstunnel_connections_total "$T/m0")
	b=$(metric gstunnel_connections_total "$T/m1")
	c=$(metric 'gstunnel_bytes_total{direction="c2s"}' "$T/m1")
	d=$(metric 'gstunnel_bytes_total{direction="s2c"}' "$T/m1")
	[ "$a" = 0 ] && [ "$b" = 3 ] && [ "$c" = 300000 ] && [ "$d" = 300000 ]; }
check_with curl "stats: -m: a scrape shows the connection and byte counters move" moved
status() { curl -s -m 5 -o /dev/null -w '%{http_code}' "$@"; }
refuse() { a=$(status http://127.0.0.1:$ST_M/) b=$(status -X POST \
	http://127.0.0.1:$ST_M/metrics); echo "$a $b"; [ "$a $b" = "404 405" ]; }
check_with curl "stats: -m refuses anything but GET /metrics" refuse
usr1() { kill -USR1 $sts; wait_for 20 grep -q 'stats: open=0 total=3 .*bytes_c2s=300000 bytes_s2c=300000' "$T/st.s.log" ||
	{ cat "$T/st.s.log"; false; }; }
check "stats: SIGUSR1 logs one statistics line" usr1
every() { sleep 2.2; n=$(grep -c 'stats:' "$T/st.s.log"); echo "$n lines"; [ "$n" -ge 3 ]; }
check "stats: -s 1 logs one every second" every
stop $stc; stop $sts
# with workers, the counters are summed over them
bg "$T/stj.s.log" "$SERVER" -j 2 -m $STJ_M 127.0.0.1:$STJ_S 127.0.0.1:$ECHO "$KEY"; stj=$last
bg "$T/stj.c.log" "$CLIENT" 127.0.0.1:$STJ_C 127.0.0.1:$STJ_S "$KEY"; stc=$last
listening $STJ_M >/dev/null && listening $STJ_C >/dev/null
sleep 0.5
summed() { t many $STJ_C 20 1000 || return 1
	curl -s -m 5 http://127.0.0.1:$STJ_M/metrics >"$T/m2"
	n=$(metric gstunnel_connections_total "$T/m2"); echo "total $n"; [ "$n" = 20 ]; }
check_with curl "stats: -j 2: the page sums both workers" summed
stop $stc; stop $stj
# four idle connections to -m (HTTP_MAX) do not keep a scraper out: a new
# request takes the oldest one's place
ports SI_S SI_M
bg "$T/si.s.log" "$SERVER" -m $SI_M 127.0.0.1:$SI_S 127.0.0.1:$ECHO "$KEY"; sis=$last
listening $SI_M >/dev/null
bg "$T/si.hog.log" "$PY" "$TESTS/t.py" hog $SI_M 4 8; sih=$last
idle_kept_out() { sleep 0.5; curl -s -m 1 http://127.0.0.1:$SI_M/metrics |
	grep -q '^gstunnel_connections_total 0$'; }
check_with curl "stats: -m: 4 idle connections do not delay a scrape (1 s)" idle_kept_out
stop $sih; stop $sis
