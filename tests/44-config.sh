# config: config files (-f), and each kind of bad line
ports CF_S CF_L CF_C
bg "$T/cf.s.log" "$SERVER" 127.0.0.1:$CF_S 127.0.0.1:$ECHO "$KEY"; cfs=$last
listening $CF_S >/dev/null
printf '# a client\n\nserver 127.0.0.1:%s # the server\nkey %s\nlisten 127.0.0.1:%s\nverbose\ntimeout  5 \n' \
	$CF_S "$KEY" $CF_L >"$T/c.conf"
bg "$T/cf.c.log" "$CLIENT" -f "$T/c.conf" 127.0.0.1:$CF_C; cfc=$last
cf_serves() { listening $CF_C && t echo $CF_C 100000 &&
	logged "listening on 127.0.0.1:$CF_C" "$T/cf.c.log"; }
check "config: a tunnel from -f FILE; the command line's LISTEN wins" cf_serves
stop $cfc; stop $cfs
bad_conf() { printf "$2" >"$T/bad.conf"; bad_args "$1" -f "$T/bad.conf" :1 127.0.0.1:2 "$KEY"; }
check "config: an unknown name is refused with FILE:LINE" \
	bad_conf "bad.conf:2: colour: unknown name" 'verbose\ncolour blue\n'
check "config: a bad value is refused with FILE:LINE" \
	bad_conf "bad.conf:1: bad timeout 'soon'" 'timeout soon\n'
check "config: a missing value is refused" bad_conf "bad.conf:1: rotate: needs a value" 'rotate\n'
check "config: a flag with a value is refused" bad_conf "bad.conf:1: verbose: takes no value" 'verbose yes\n'
check "config: a name given twice is refused" bad_conf "bad.conf:2: idle: given twice" 'idle 1\nidle 2\n'
check "config: key and key-file together are refused" \
	bad_conf "KEY given twice" "key-file $T/c.conf\nkey $KEY\n"
check "config: a missing file is refused" bad_args "cannot read '$T/none'" -f "$T/none"
check "config: --long options work on the command line" \
	bad_args "bad -t SECONDS 'soon'" --timeout=soon :1 127.0.0.1:2 "$KEY"
