# apps: applications through the tunnel: an HTTP proxy (squid), a SOCKS5
# proxy (microsocks) and a mail server (aiosmtpd, swaks as its client)
ports APP_C APP_S ORIGIN SQUID SOCKS SMTP

# app NAME: run app_NAME (http, socks, smtp), then stop what it started
app() {
	app_pids="" svc=""
	"app_$1"; rc=$?
	for p in $app_pids; do stop "$p"; done
	# squid removes its shared memory itself, unless killed
	[ -z "$svc" ] || rm -f /dev/shm/"$svc"-*.shm
	return $rc
}
# start_daemon WHAT PORT LOG TENTHS CMD...: start CMD (stopped by app); it must
# listen on PORT within TENTHS tenths of a second, else show LOG's end
start_daemon() {
	what=$1 dport=$2 dlog=$3 tenths=$4; shift 4
	bg "$dlog" "$@"; app_pids="$last $app_pids"
	listening "$dport" "$tenths" >/dev/null && return 0
	if alive $last; then echo "$what: nothing listens on $dport"
	else echo "$what exited"; fi
	tail -n 5 "$dlog"; return 1
}
# tunnel_up PORT: a server in front of 127.0.0.1:PORT, its client on $APP_C
tunnel_up() {
	start_daemon "the tunnel's server" $APP_S "$T/app.s.log" 50 \
		"$SERVER" 127.0.0.1:$APP_S 127.0.0.1:"$1" "$KEY" &&
	start_daemon "the tunnel's client" $APP_C "$T/app.c.log" 50 \
		"$CLIENT" 127.0.0.1:$APP_C 127.0.0.1:$APP_S "$KEY"
}
# origin DIR: a random 1 MiB file, DIR/www/file, served by t.py on $ORIGIN
# (on [::1] too, where there is one)
origin() {
	mkdir -p "$1/www" && head -c 1048576 /dev/urandom >"$1/www/file" &&
		start_daemon "the origin server" $ORIGIN "$1/origin.log" 50 \
			"$PY" "$TESTS/t.py" origin "$1/www" $ORIGIN
}
same_file() { # same_file GOT WANT: by sha256
	[ "$(sha256sum <"$1")" = "$(sha256sum <"$2")" ] ||
		{ echo "sha256 differs ($(wc -c <"$1") bytes received)"; false; }
}

app_http() {
	d=$T/app.http sq=$T/app.http/squid
	mkdir -p "$sq" && origin "$d" || return 1
	# Squid refuses to keep running as root: it drops to cache_effective_user,
	# which must be able to reach and write its log/pid directory.
	squser=
	if [ "$(id -u)" -eq 0 ]; then
		for u in proxy nobody; do
			if id "$u" >/dev/null 2>&1; then squser=$u; break; fi
		done
		[ -n "$squser" ] ||
			{ echo "no unprivileged user (proxy/nobody) for squid"; return 1; }
		chmod 711 "$T" "$d"
		chown "$squser" "$sq"
	fi
	{
		echo "http_port 127.0.0.1:$SQUID"
		echo "visible_hostname gstunnel-test"
		[ -n "$squser" ] && echo "cache_effective_user $squser"
		echo "pid_filename $sq/squid.pid"
		echo "cache_log $sq/cache.log"
		echo "access_log stdio:$sq/access.log"
		echo "cache_store_log none"
		echo "logfile_rotate 0"
		echo "coredump_dir $sq"
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
	} >"$sq/squid.conf"
	# -n: its own service name, so that squid's shared memory segments
	# (/dev/shm/SERVICE-cf__*.shm, created O_EXCL) and its identity never
	# clash with a system squid (service "squid") or another run
	svc=gstunnel$SQUID
	rm -f /dev/shm/"$svc"-*.shm # stale, from a kill -9
	# squid 5.7 usually listens after 0.5 to 1.5 s; allow 10 s
	start_daemon squid $SQUID "$sq/stdout.log" 100 \
		squid -N -n "$svc" -f "$sq/squid.conf" ||
		{ tail -n 5 "$sq/cache.log"; return 1; }
	tunnel_up $SQUID || return 1
	url=http://127.0.0.1:$ORIGIN/file
	curl -sS --max-time 20 --connect-timeout 5 --noproxy '' -f \
		-x "http://127.0.0.1:$APP_C" -D "$d/headers" -o "$d/out" "$url" ||
		{ echo "curl through the tunnel and squid failed"; return 1; }
	same_file "$d/out" "$d/www/file" || return 1
	# Proof that squid handled it: its Via header, and its access log line.
	grep -qi '^Via:.*squid' "$d/headers" ||
		{ echo "the response has no Via header from squid"; return 1; }
	# the log line is written at the end of the transaction
	wait_for 30 grep -q "/200 .* GET $url " "$sq/access.log" 2>/dev/null ||
		{ echo "no 'GET $url' 200 line in squid's access.log"
		tail -n 5 "$sq/access.log"; return 1; }
}

app_socks() {
	d=$T/app.socks
	origin "$d" || return 1
	start_daemon microsocks $SOCKS "$d/microsocks.log" 50 \
		microsocks -i 127.0.0.1 -p $SOCKS || return 1
	tunnel_up $SOCKS || return 1
	curl -sS --max-time 20 --connect-timeout 5 --noproxy '' -f \
		--socks5-hostname "127.0.0.1:$APP_C" -o "$d/out" \
		"http://localhost:$ORIGIN/file" ||
		{ echo "curl through the tunnel and microsocks failed"
		tail -n 5 "$d/microsocks.log"; return 1; }
	same_file "$d/out" "$d/www/file" || return 1
	# Proof that microsocks resolved and connected it: its per-client log
	# line "client[N] 127.0.0.1: connected to localhost:PORT".
	wait_for 30 grep -q "connected to localhost:$ORIGIN" \
		"$d/microsocks.log" 2>/dev/null ||
		{ echo "microsocks did not log 'connected to localhost:$ORIGIN'"
		tail -n 5 "$d/microsocks.log"; return 1; }
}

app_smtp() {
	d=$T/app.smtp
	mkdir -p "$d" || return 1
	# The Mailbox handler writes each message into a Maildir ($d/mail/new/).
	# -n: no setuid to nobody (needed when run as root, harmless otherwise).
	start_daemon aiosmtpd $SMTP "$d/smtpd.log" 50 "$PY" -m aiosmtpd -n \
		-l 127.0.0.1:$SMTP -c aiosmtpd.handlers.Mailbox "$d/mail" || return 1
	tunnel_up $SMTP || return 1
	tok=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	timeout 25 swaks --server 127.0.0.1 --port $APP_C --timeout 10 \
		--helo localhost --to a@example.test --from b@example.test \
		--header "Subject: gstunnel-$tok" --body "gstunnel test body $tok" \
		>"$d/swaks.log" 2>&1 ||
		{ echo "swaks through the tunnel failed"; tail -n 5 "$d/swaks.log"
		return 1; }
	stored() {
		for m in "$d"/mail/new/*; do
			[ -f "$m" ] && grep -q "^Subject: gstunnel-$tok" "$m" &&
				grep -q "^gstunnel test body $tok" "$m" && return 0
		done
		return 1
	}
	wait_for 30 stored ||
		{ echo "no stored message with $tok in its subject and body"
		tail -n 5 "$d/smtpd.log"; return 1; }
}

check_with "curl squid" "apps: HTTP proxy (squid) through the tunnel" app http
check_with "curl microsocks" \
	"apps: SOCKS5 proxy (microsocks) through the tunnel" app socks
check_with "swaks py:aiosmtpd" \
	"apps: mail (swaks to an SMTP server) through the tunnel" app smtp
