# cli: bad command lines, -h against the README and the man page, -V,
# make install
ports BAD_L BAD_S
awk '/^## Usage/ { u = 1; next } u && /^## / { exit }
     u && /^    usage:/ { p = 1 }
     p { sub(/^    /, ""); print }
     p && /print this help and exit/ { exit }' README >"$T/usage"
usage_same() { [ -s "$T/usage" ] && "$1" -h | diff - "$T/usage"; }
check "cli: gstunnel_client -h is the README's usage" usage_same "$CLIENT"
check "cli: gstunnel_server -h is the README's usage" usage_same "$SERVER"
# the man page has one item per option of -h, with the same long name
man_same() { awk '/^\.It Fl / { f = $3 } /^\.Pq Cm / && f {
	print (f ~ /^\\-/ ? "" : "-" f ", ") "--" $3; f = "" }' dist/gstunnel.1 |
	sort >"$T/man.opts"
	"$1" -h | sed -n 's/^  \(-., --[a-z-]*\).*/\1/p; s/^      \(--[a-z-]*\).*/\1/p' |
	sort | diff - "$T/man.opts" &&
	[ "$(wc -l <"$T/man.opts")" -gt 10 ]; }
check "cli: the man page lists the options of -h (client)" man_same "$CLIENT"
check "cli: the man page lists the options of -h (server)" man_same "$SERVER"
check_with mandoc "cli: the man page passes mandoc -T lint" \
	mandoc -T lint -W warning dist/gstunnel.1
installs() { rm -rf "$T/inst"; make -s install DESTDIR="$T/inst" PREFIX=/usr >/dev/null &&
	for f in bin/gstunnel_client bin/gstunnel_server share/man/man1/gstunnel.1 \
		share/man/man1/gstunnel_client.1 share/man/man1/gstunnel_server.1; do
		[ -s "$T/inst/usr/$f" ] || { echo "no $f"; return 1; }; done; }
check "cli: make install puts the programs and the man page in place" installs
version() { "$CLIENT" -V | grep -x "gstunnel_client $(sed -n 's/^VERSION = //p' Makefile)"; }
check "cli: -V prints the Makefile's version" version
L=127.0.0.1:$BAD_L S=127.0.0.1:$BAD_S # nothing listens
check "cli: short key"         bad_args "16, 24 or 32" "$L" "$S" 0123456789abcde
check "cli: long key"          bad_args "33 bytes" "$L" "$S" "${KEY}x"
check "cli: 20-byte key"       bad_args "20 bytes" "$L" "$S" 01234567890123456789
check "cli: bad port"          bad_args "port '99999'" "$L" 127.0.0.1:99999 "$KEY"
check "cli: port not a number" bad_args "port 'http'" 127.0.0.1:http "$S" "$KEY"
check "cli: no port"           bad_args "host:port" "$L" 127.0.0.1 "$KEY"
check "cli: malformed host name" bad_args "bad SERVER 'no..such:80': bad host name" \
	"$L" no..such:80 "$KEY"
check "cli: missing argument"  bad_args "missing SERVER" "$L"
check "cli: missing key"       bad_args "missing KEY" "$L" "$S"
check "cli: extra argument"    bad_args "unexpected argument" "$L" "$S" "$KEY" more
check "cli: bad -n"            bad_args "-n MAXCONN '0'" -n 0 "$L" "$S" "$KEY"
check "cli: bad -t"            bad_args "-t SECONDS 'soon'" -t soon "$L" "$S" "$KEY"
check "cli: unknown option"    bad_args "unknown option '-x'" -x "$L" "$S" "$KEY"
check "cli: option without its value" bad_args "-k needs a value" -k
cannot_listen() { "$SERVER" 127.0.0.1:$SB 127.0.0.1:1 $KEY 2>"$T/e"
	[ $? = 1 ] && grep -q 'cannot listen' "$T/e"; }
check "cli: a port in use exits 1" cannot_listen
