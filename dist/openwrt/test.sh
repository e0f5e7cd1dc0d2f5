#!/bin/sh
# dist/openwrt/test.sh - tests of the OpenWrt init script
# (gstunnel/files/gstunnel.init) without OpenWrt.
#
# The script runs, unchanged, under busybox ash (OpenWrt's shell) in a
# chroot that has, instead of OpenWrt's own, small stand-ins written here:
# /etc/rc.common (start, stop, reload, restart as rc.common runs them for a
# procd script), /lib/functions.sh (config_load, config_foreach, config_get,
# config_get_bool, config_list_foreach), /lib/functions/procd.sh (the
# procd_* calls, recorded, and uci_validate_section, which checks the
# datatypes the script uses as ubox's validate_data does and prints the same
# shell code and messages) and logger. The procd stand-in also writes down
# what procd would do with each "service set", as procd's
# service/instance.c decides: a new instance starts, one whose command,
# parameters or files' contents changed gets its reload_signal, one left
# out stops, procd_kill stops one.
#
# Then, if the programs are built (../../gstunnel_client and _server, or
# $GSTUNNEL_CLIENT and $GSTUNNEL_SERVER), they run in the chroot from the
# command lines and files the script made, and carry data.
#
# Run as root (chroot, mknod), from anywhere; needs a static busybox
# (Debian: busybox-static). Ports $PORT_BASE (default 50600) to +2 on
# 127.0.0.1, in a network namespace of its own where unshare(1) can make
# one. Prints "N passed, N failed" last; exits 1 if a test failed.
# Without root or a static busybox it says why and runs nothing (exit 0).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
init=$here/gstunnel/files/gstunnel.init
example=$here/gstunnel/files/gstunnel.config
client_bin=${GSTUNNEL_CLIENT:-$top/gstunnel_client}
server_bin=${GSTUNNEL_SERVER:-$top/gstunnel_server}
P=${PORT_BASE:-50600}
passed=0 failed=0 pids=""

skip() {
	echo "skipped: $*"
	echo "0 passed, 0 failed"
	exit 0
}
[ "$(id -u)" = 0 ] || skip "the chroot needs root"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
	if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
[ -n "$busybox" ] || skip "no static busybox (apt-get install busybox-static)"
# A loopback of its own where it can: on a busy machine another program's
# outgoing connection may hold one of our ports (they are in the range
# the kernel picks local ports from).
if [ -z "${GS_OWN_NETNS:-}" ] && unshare -n true 2>/dev/null; then
	GS_OWN_NETNS=1 exec unshare -n sh "$0" "$@"
fi
[ -z "${GS_OWN_NETNS:-}" ] || "$busybox" ip link set lo up

T=$(mktemp -d /tmp/gs-openwrt.XXXXXX)
R=$T/root # the chroot
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# check NAME CMD...: one test; CMD's output is shown if it fails
check() {
	_name=$1; shift
	if "$@" >"$T/check.out" 2>&1; then
		passed=$((passed + 1)); echo "ok: $_name"
	else
		failed=$((failed + 1)); echo "FAILED: $_name"
		sed 's/^/  | /' "$T/check.out" | head -n 30
	fi
}

# ---- the chroot ------------------------------------------------------------
mkdir -p "$R/bin" "$R/sbin" "$R/usr/bin" "$R/usr/sbin" "$R/dev" "$R/tmp/rec" \
	"$R/etc/init.d" "$R/etc/config" "$R/etc/gstunnel" "$R/lib/functions" \
	"$R/var/etc"
cp "$busybox" "$R/bin/busybox"
chroot "$R" /bin/busybox --install -s
mknod -m 666 "$R/dev/null" c 1 3
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'nobody:*:65534:65534:nobody:/var:/bin/false' >>"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
cp "$init" "$R/etc/init.d/gstunnel"
chmod 755 "$R/etc/init.d/gstunnel"

# logger: the system log is a file
rm -f "$R/usr/bin/logger"
printf '#!/bin/sh\necho "logger $*" >>/tmp/rec/syslog\n' >"$R/usr/bin/logger"
chmod 755 "$R/usr/bin/logger"

cat >"$R/etc/rc.common" <<'EOF'
#!/bin/sh
# stand-in for OpenWrt's /etc/rc.common: the actions of a USE_PROCD script
. /lib/functions.sh
initscript=$1
action=${2:-help}
shift 2
start_service() { return 0; }
stop_service() { return 0; }
service_triggers() { return 0; }
. "$initscript"
[ -n "${USE_PROCD:-}" ] || { echo "stand-in: USE_PROCD only" >&2; exit 1; }
. /lib/functions/procd.sh
basescript=$(readlink "$initscript")
rc_procd() {
	procd_open_service "$(basename "${basescript:-$initscript}")" "$initscript"
	"$@"
	procd_close_service
}
start() { rc_procd start_service "$@"; }
stop() {
	stop_service "$@"
	procd_kill "$(basename "${basescript:-$initscript}")" "${1:-}"
}
reload() {
	if type reload_service >/dev/null 2>&1; then reload_service "$@"
	else start; fi
}
restart() { stop "$@"; start "$@"; }
boot() { start "$@"; }
case $action in
start | stop | reload | restart | boot) $action "$@" ;;
*) echo "stand-in: no action $action" >&2; exit 1 ;;
esac
EOF

cat >"$R/lib/functions.sh" <<'EOF'
# stand-in for OpenWrt's /lib/functions.sh: the config_* functions over
# CONFIG_<section>_<option> variables. config_load sources the UCI file with
# config, option and list as functions (UCI's syntax is the shell's for
# these files); the real one reads "uci export".
config() {
	CONFIG_N=$((${CONFIG_N:-0} + 1))
	CONFIG_SECTION=${2:-cfg$(printf '%06x' "$CONFIG_N")}
	CONFIG_SECTIONS="$CONFIG_SECTIONS $CONFIG_SECTION"
	eval "CONFIG_${CONFIG_SECTION}_TYPE=\$1"
}
option() {
	eval "CONFIG_${CONFIG_SECTION}_$1=\$2"
}
list() {
	local n
	eval "n=\$((\${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0} + 1))"
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$n=\$2"
	eval "CONFIG_${CONFIG_SECTION}_$1_LENGTH=$n"
	eval "CONFIG_${CONFIG_SECTION}_$1=\"\${CONFIG_${CONFIG_SECTION}_$1:+\$CONFIG_${CONFIG_SECTION}_$1 }\$2\""
}
config_load() {
	CONFIG_SECTIONS= CONFIG_N=0
	echo "config_load $1" >>/tmp/rec/calls
	. "/etc/config/$1"
}
config_get() { # VAR SECTION OPTION [DEFAULT]
	eval "$1=\${CONFIG_$2_$3:-\${4:-}}"
}
config_get_bool() { # VAR SECTION OPTION [DEFAULT]
	local v
	eval "v=\${CONFIG_$2_$3:-}"
	case "$v" in
	1 | on | true | yes | enabled) v=1 ;;
	0 | off | false | no | disabled) v=0 ;;
	*) v=${4:-} ;;
	esac
	eval "$1=\$v"
}
config_foreach() { # FUNCTION [TYPE] ARGS...
	local f=$1 type=${2:-} s t
	shift; [ $# -gt 0 ] && shift
	for s in $CONFIG_SECTIONS; do
		eval "t=\$CONFIG_${s}_TYPE"
		[ -z "$type" ] || [ "$t" = "$type" ] || continue
		"$f" "$s" "$@"
	done
}
config_list_foreach() { # SECTION OPTION FUNCTION ARGS...
	local s=$1 o=$2 f=$3 i=1 n v
	shift 3
	eval "n=\${CONFIG_${s}_${o}_LENGTH:-0}"
	while [ $i -le "$n" ]; do
		eval "v=\$CONFIG_${s}_${o}_ITEM$i"
		"$f" "$v" "$@"
		i=$((i + 1))
	done
}
EOF

cat >"$R/lib/functions/procd.sh" <<'EOF'
# stand-in for OpenWrt's /lib/functions/procd.sh: records the procd_* calls
# in /tmp/rec/procd.log, and in /tmp/rec/events what procd would do.
# /tmp/rec/state/INSTANCE holds each running instance as procd last took it.
rec=/tmp/rec
mkdir -p $rec/state
procd_log() { echo "$*" >>$rec/procd.log; }
procd_event() { echo "$*" >>$rec/events; }
procd_open_service() {
	procd_service=$1 procd_seq=0
	rm -rf $rec/new && mkdir $rec/new
	procd_log "service $*"
}
procd_open_instance() {
	procd_seq=$((procd_seq + 1))
	procd_instance=${1:-instance$procd_seq}
	: >"$rec/new/$procd_instance"
	procd_log "instance $procd_instance"
}
procd_set_param() {
	procd_log "  $*"
	echo "$*" >>"$rec/new/$procd_instance"
}
procd_append_param() {
	procd_set_param "$@"
}
procd_close_instance() {
	procd_log "  end"
	procd_instance=
}
procd_add_reload_trigger() {
	local c
	for c; do procd_log "trigger config.change $c: reload"; done
}
procd_open_validate() { procd_log "validate {"; }
procd_close_validate() { procd_log "validate }"; }
# Like service/instance.c: procd reads the files' contents when it gets
# the message; a changed instance gets the reload_signal it ran with.
procd_close_service() {
	local f n old sig
	service_triggers
	for f in $rec/new/*; do
		[ -f "$f" ] || continue
		sed -n 's/^file //p' "$f" | tr ' ' '\n' | while read -r n; do
			[ -n "$n" ] || continue
			echo "md5 $n $(md5sum <"$n" 2>/dev/null | cut -d' ' -f1)"
		done >>"$f"
	done
	for f in $rec/new/*; do
		[ -f "$f" ] || continue
		n=${f##*/} old=$rec/state/${f##*/}
		if [ ! -f "$old" ]; then
			procd_event "start $n"
		elif ! cmp -s "$f" "$old"; then
			sig=$(sed -n 's/^reload_signal //p' "$old")
			if [ -n "$sig" ]; then procd_event "$sig $n"
			else procd_event "restart $n"; fi
		fi
	done
	for old in $rec/state/*; do # "set": instances left out stop
		[ -f "$old" ] && [ ! -f "$rec/new/${old##*/}" ] &&
			procd_event "stop ${old##*/}"
	done
	rm -rf $rec/state && mv $rec/new $rec/state
	procd_log "set $procd_service"
}
procd_kill() { # SERVICE [INSTANCE]
	local f
	procd_log "kill $*"
	for f in $rec/state/${2:-*}; do
		[ -f "$f" ] || continue
		procd_event "stop ${f##*/}"
		rm -f "$f"
	done
}

# uci_validate_section PACKAGE TYPE SECTION OPTION:DATATYPE[:DEFAULT]...,
# as procd.sh's runs ubox's validate_data: sets each option (bool as 0/1;
# an invalid one unset), returns 255 if any value is invalid, and then prints
# validate_data's lines for every option on stderr. The datatypes are those
# gstunnel.init uses; numbers are decimal here (validate_data takes 0x10).
validate_dt() { # DATATYPE VALUE
	local a l
	case $1 in
	string) return 0 ;;
	file) [ -f "$2" ] ;;
	bool)
		case $(echo "$2" | tr A-Z a-z) in
		0 | off | false | no | disabled | 1 | on | true | yes | enabled) ;;
		*) return 1 ;;
		esac ;;
	range\(*,*\))
		a=${1#range(}; a=${a%)}
		case $2 in '' | *[!0-9]*) return 1 ;; esac
		[ ${#2} -le 9 ] && [ "$2" -ge "${a%,*}" ] && [ "$2" -le "${a#*,}" ] ;;
	or\(*\))
		a=${1#or(}; a=${a%)}
		for l in $(echo "$a" | tr , ' '); do
			l=${l#\"}
			[ "${l%\"}" = "$2" ] && return 0
		done
		return 1 ;;
	*) echo "stand-in: no datatype $1" >&2; return 1 ;;
	esac
}
validate_export() { # DATATYPE VALUE: the value as validate_data prints it
	case $1 in
	bool)
		case $(echo "$2" | tr A-Z a-z) in
		1 | on | true | yes | enabled) echo 1 ;;
		*) echo 0 ;;
		esac ;;
	range*) echo "$2" ;;
	*) printf "'%s'\n" "$(echo "$2" | sed "s/'/'\"'\"'/g")" ;;
	esac
}
uci_validate_section() {
	local pkg=$1 type=$2 sec=$3 t opt dt def v n i code= msg= rc=0
	shift 3
	if [ -z "$sec" ]; then
		procd_log "  $type: $*"
		return 0
	fi
	for t; do
		opt=${t%%:*} dt=${t#*:} def=
		case $dt in *:*) def=${dt#*:} dt=${dt%%:*} ;; esac
		eval "n=\${CONFIG_${sec}_${opt}_LENGTH:-0}"
		eval "v=\${CONFIG_${sec}_${opt}:-}"
		if [ "$n" -gt 0 ]; then
			code="$code$opt=" i=1
			while [ $i -le "$n" ]; do
				eval "v=\$CONFIG_${sec}_${opt}_ITEM$i"
				if validate_dt "$dt" "$v"; then
					code="$code$(validate_export "$dt" "$v")\\ "
					msg="$msg$pkg.$sec.$opt[$((i - 1))]=$v validates as $dt with true
"
				else
					rc=255
					msg="$msg$pkg.$sec.$opt[$((i - 1))]=$v validates as $dt with false
"
				fi
				i=$((i + 1))
			done
			code="${code%\\ }; "
		elif [ -n "$v" ]; then
			if validate_dt "$dt" "$v"; then
				code="$code$opt=$(validate_export "$dt" "$v"); "
				msg="$msg$pkg.$sec.$opt=$v validates as $dt with true
"
			else
				rc=255 code="${code}unset -v $opt; "
				msg="$msg$pkg.$sec.$opt=$v validates as $dt with false
"
			fi
		else
			if [ -n "$def" ]; then
				code="$code$opt=$(validate_export "$dt" "$def"); "
			else
				code="${code}unset -v $opt; "
			fi
			msg="$msg$pkg.$sec.$opt is unset and defaults to $dt ${def:-(null)}
"
		fi
	done
	eval "$code"
	[ $rc = 0 ] || printf '%s' "$msg" >&2
	return $rc
}
EOF

# The programs: the real ones with the libraries they need (or stand-ins
# that only exist, when they are not built).
real=1
for b in "$client_bin" "$server_bin"; do [ -x "$b" ] || real=0; done
if [ $real = 1 ]; then
	cp "$client_bin" "$R/usr/bin/gstunnel_client"
	cp "$server_bin" "$R/usr/bin/gstunnel_server"
	for lib in $(ldd "$client_bin" "$server_bin" 2>/dev/null |
		sed -n 's/.*[ 	]\(\/[^ ]*\) (0x.*/\1/p' | sort -u); do
		mkdir -p "$R${lib%/*}"
		cp -L "$lib" "$R$lib"
	done
else
	for s in client server; do
		printf '#!/bin/sh\nexit 0\n' >"$R/usr/bin/gstunnel_$s"
		chmod 755 "$R/usr/bin/gstunnel_$s"
	done
fi

# ---- helpers -----------------------------------------------------------------
KEY_HOME=0123456789abcdef0123456789abcdef
KEY_VPS=fedcba9876543210
printf '%s\n' "$KEY_HOME" >"$R/etc/gstunnel/home.key"
chmod 600 "$R/etc/gstunnel/home.key"

# act ACTION: run /etc/init.d/gstunnel ACTION in the chroot; the events,
# stderr and syslog lines of this run only are in $T/events, err, syslog
act() {
	: >"$R/tmp/rec/events"; : >"$R/tmp/rec/syslog"; : >"$R/tmp/rec/procd.log"
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		chroot "$R" /etc/init.d/gstunnel "$1" >"$T/out" 2>"$T/err"
	echo $? >"$T/rc"
	cp "$R/tmp/rec/events" "$T/events"
	cp "$R/tmp/rec/syslog" "$T/syslog"
	cp "$R/tmp/rec/procd.log" "$T/procd.log"
}
# same FILE: stdin is FILE's expected content
same() { cat >"$T/expected"; diff "$T/expected" "$1"; }
# has FILE PATTERN: a fixed string in FILE
has() { grep -F -e "$2" "$1" >/dev/null || { echo "no '$2' in:"; cat "$1"; return 1; }; }
hasnt() { ! grep -F -e "$2" "$1" || { echo "'$2' should not be there"; return 1; }; }
empty() { [ ! -s "$1" ] || { echo "$1:"; cat "$1"; return 1; }; }
run_ok() { [ "$(cat "$T/rc")" = 0 ] || { echo "exit $(cat "$T/rc")"; cat "$T/err"; return 1; }; }
state() { cat "$R/tmp/rec/state/$1"; }
conf() { cat "$R/var/etc/gstunnel/$1.conf"; }

# The config of most tests: two enabled sections, two disabled ones (one
# with a bad value, which must not matter while it is disabled).
main_config() {
	cat >"$R/etc/config/gstunnel" <<EOF
config client 'home'
	option listen '192.168.1.1:1080'
	list server 'a.example:8443'
	list server '[2001:db8::1]:8443'
	option key_file '/etc/gstunnel/home.key'
	option cipher 'chacha20'
	option keepalive '30,5,4'
	option pool '2'
	option verbose '1'

config server 'vps'
	option enabled 'yes'
	option listen ':8443'
	option target '127.0.0.1:3128,127.0.0.1:3129'
	option key '$KEY_VPS'
	option workers '2'
	option idle '3600'
	option wait '20'
	option metrics '127.0.0.1:9300'
	option memory '16'
	option proxy_protocol '1'

config client 'off'
	option enabled '0'
	option listen '127.0.0.1:1081'
	option server 'b.example:8443'
	option key_file '/etc/gstunnel/home.key'

config server 'off2'
	option enabled 'off'
	option workers 'many'
EOF
}

# ---- the shipped example -----------------------------------------------------
echo "== the shipped /etc/config/gstunnel (every section disabled)"
cp "$example" "$R/etc/config/gstunnel"
act start
check "example: runs, starts nothing, says nothing" \
	sh -c "$(cat <<EOF
[ "\$(cat $T/rc)" = 0 ] && [ ! -s $T/events ] && [ ! -s $T/err ] &&
	[ ! -s $T/syslog ]
EOF
)"
check "example: reload when /etc/config/gstunnel changes (trigger)" \
	has "$T/procd.log" "trigger config.change gstunnel: reload"
check "example: client and server sections declared for validation" \
	sh -c "grep -q '^  client: enabled:bool:1 listen:string server:string' \
		$T/procd.log && grep -q '^  server: .* target:string' $T/procd.log"
check "example: both sections parsed (procd got a service with no instance)" \
	sh -c "grep -qx 'set gstunnel' $T/procd.log &&
		! grep -q '^instance' $T/procd.log &&
		grep -qx 'config_load gstunnel' $R/tmp/rec/calls"

sed "s/option enabled '0'/option enabled '1'/" "$example" >"$R/etc/config/gstunnel"
for k in example example_ssh; do
	printf '%s\n' "$KEY_HOME" >"$R/etc/gstunnel/$k.key"
done
act start
check "example: each section, once enabled, starts as it is" sh -c "$(cat <<EOF
[ "\$(cat $T/rc)" = 0 ] && [ ! -s $T/err ] &&
	[ "\$(cat $T/events)" = 'start client.example
start server.example_ssh' ] || { cat $T/events $T/err; exit 1; }
EOF
)"
act stop >/dev/null

# ---- start -------------------------------------------------------------------
echo "== start"
main_config
act stop >/dev/null
act start
check "start: exit status 0, nothing on stderr" sh -c "$(cat <<EOF
[ "\$(cat $T/rc)" = 0 ] && [ ! -s $T/err ] || { cat $T/err; exit 1; }
EOF
)"
check "start: one instance per enabled section, disabled ones skipped" \
	same "$T/events" <<EOF
start client.home
start server.vps
EOF
check "start: client.home's command line" \
	has "$T/procd.log" "command /usr/bin/gstunnel_client -f /var/etc/gstunnel/client.home.conf"
check "start: server.vps's command line" \
	has "$T/procd.log" "command /usr/bin/gstunnel_server -f /var/etc/gstunnel/server.vps.conf"
conf client.home >"$T/c1" 2>&1
check "start: client.home's config file" same "$T/c1" <<EOF
# from /etc/config/gstunnel, client 'home', by /etc/init.d/gstunnel
listen 192.168.1.1:1080
server a.example:8443,[2001:db8::1]:8443
key-file /etc/gstunnel/home.key
cipher chacha20
pool 2
keepalive 30,5,4
verbose
EOF
conf server.vps >"$T/c2" 2>&1
check "start: server.vps's config file (key and list given as options)" \
	same "$T/c2" <<EOF
# from /etc/config/gstunnel, server 'vps', by /etc/init.d/gstunnel
listen :8443
target 127.0.0.1:3128,127.0.0.1:3129
key $KEY_VPS
workers 2
memory 16
idle 3600
wait 20
metrics 127.0.0.1:9300
proxy-protocol
EOF
check "start: the files are readable by root only (0600)" sh -c \
	"[ \"\$(stat -c %a $R/var/etc/gstunnel/client.home.conf $R/var/etc/gstunnel/server.vps.conf)\" = '600
600' ] && [ \"\$(stat -c %a $R/var/etc/gstunnel)\" = 755 ]"
state client.home >"$T/s1" 2>&1
check "start: client.home: respawn, SIGHUP on reload, term_timeout 15, logs, both files watched" \
	sh -c "grep -qx respawn $T/s1 && grep -qx 'reload_signal HUP' $T/s1 &&
		grep -qx 'term_timeout 15' $T/s1 && grep -qx 'stdout 1' $T/s1 &&
		grep -qx 'stderr 1' $T/s1 &&
		grep -qx 'file /var/etc/gstunnel/client.home.conf /etc/gstunnel/home.key' $T/s1 ||
		{ cat $T/s1; exit 1; }"
check "start: server.vps: term_timeout is wait + 5 (25)" \
	has "$R/tmp/rec/state/server.vps" "term_timeout 25"
check "start: disabled sections neither checked nor written" sh -c \
	"! grep -q -e client.off -e server.off2 $T/procd.log && [ ! -e $R/var/etc/gstunnel/client.off.conf ] &&
		[ ! -e $R/var/etc/gstunnel/server.off2.conf ]"

# ---- bad values --------------------------------------------------------------
echo "== bad values: the section is refused, with the reason; others start"
# bad NAME EXPECTED OPTION-LINES...: client 'bad' made of a good client with
# the option lines given (OPTION= removes OPTION)
bad() {
	_name=$1 _expect=$2; shift 2
	{
		echo "config server 'good'"
		printf "\toption listen ':%s'\n\toption target '127.0.0.1:22'\n" $((P + 10))
		printf "\toption key '%s'\n\n" "$KEY_VPS"
		echo "config client 'bad'"
		for o in "listen '127.0.0.1:1080'" "server 'a.example:8443'" \
			"key_file '/etc/gstunnel/home.key'"; do
			for l; do
				case $l in "${o%% *}="*) o= ;; esac
			done
			[ -z "$o" ] || printf "\toption %s\n" "$o"
		done
		for l; do
			case $l in *=) ;; *) printf '\t%s\n' "$l" ;; esac
		done
	} >"$R/etc/config/gstunnel"
	act stop >/dev/null
	act start
	printf "gstunnel: client 'bad': %s; not started\n" "$_expect" >"$T/want.err"
	printf "logger -t gstunnel -p daemon.err client 'bad': %s; not started\n" \
		"$_expect" >"$T/want.syslog"
	check "bad: $_name" sh -c "$(cat <<EOF
grep -qx 'start server.good' $T/events &&
	! grep -q 'client.bad' $T/events $T/procd.log &&
	grep -qxF -f $T/want.err $T/err && grep -qxF -f $T/want.syslog $T/syslog &&
	[ ! -e $R/var/etc/gstunnel/client.bad.conf ] ||
	{ cat $T/events $T/err $T/syslog $R/etc/config/gstunnel; exit 1; }
EOF
)"
}
bad "workers out of range" "workers=300 is not range(0,256)" \
	"option workers '300'"
bad "timeout not a number" "timeout=ten is not range(1,3600)" \
	"option timeout 'ten'"
bad "unknown cipher" 'cipher=des is not or("aes","chacha20")' \
	"option cipher 'des'"
bad "log neither stderr nor syslog" 'log=file is not or("stderr","syslog")' \
	"option log 'file'"
bad "enabled neither 0 nor 1" "enabled=maybe is not bool" \
	"option enabled 'maybe'"
bad "key_file missing" "key_file=/etc/gstunnel/nokey is not file" \
	"key_file=" "option key_file '/etc/gstunnel/nokey'"
bad "two bad values: both named" \
	"idle=-1 is not range(0,2592000); stats=x is not range(0,86400)" \
	"option idle '-1'" "option stats 'x'"
bad "listen without a port" \
	"listen '127.0.0.1': want host:port, [ipv6]:port or :port" \
	"listen=" "option listen '127.0.0.1'"
bad "listen with a port too large" \
	"listen ':65536': want host:port, [ipv6]:port or :port" \
	"listen=" "option listen ':65536'"
bad "no server" "no server" "server="
bad "a server without a host" "server ':8443': want host:port or [ipv6]:port" \
	"server=" "list server 'a.example:1'" "list server ':8443'"
bad "IPv6 server without brackets" \
	"server '2001:db8::1:8443': want host:port or [ipv6]:port" \
	"server=" "option server '2001:db8::1:8443'"
bad "no key" "no key: set key_file (or key)" "key_file="
bad "key and key_file" "key and key_file: give one" \
	"option key '$KEY_VPS'"
bad "key of 15 bytes" "key: 16, 24 or 32 bytes, not 15" \
	"key_file=" "option key '0123456789abcde'"
bad "keepalive of two numbers" \
	"keepalive '60,10': want 0 or IDLE,INTERVAL,COUNT" \
	"option keepalive '60,10'"
bad "metrics without a port" "metrics 'localhost': want [HOST:]PORT" \
	"option metrics 'localhost'"
bad "pool out of range" "pool=65 is not range(0,64)" "option pool '65'"
bad "proxy_protocol on a client" "proxy_protocol: for a server section" \
	"option proxy_protocol '1'"

# ---- reload ------------------------------------------------------------------
echo "== reload"
act stop >/dev/null
main_config
act start >/dev/null
act reload
check "reload, nothing changed: nothing happens" empty "$T/events"
sed -i "s/option idle '3600'/option idle '60'/" "$R/etc/config/gstunnel"
act reload
check "reload, idle changed: SIGHUP to server.vps only, new file in place" \
	sh -c "[ \"\$(cat $T/events)\" = 'HUP server.vps' ] &&
		grep -qx 'idle 60' $R/var/etc/gstunnel/server.vps.conf ||
		{ cat $T/events; exit 1; }"
printf '%s\n' "abcdef0123456789abcdef0123456789" >"$R/etc/gstunnel/home.key"
act reload
check "reload, the key file changed: SIGHUP to client.home" \
	same "$T/events" <<EOF
HUP client.home
EOF
sed -i "s/option listen '192.168.1.1:1080'/option listen '192.168.1.1:1090'/" \
	"$R/etc/config/gstunnel"
act reload
check "reload, listen changed (SIGHUP cannot): client.home restarted" \
	same "$T/events" <<EOF
stop client.home
start client.home
EOF
sed -i "s/option workers '2'/option workers '1'/" "$R/etc/config/gstunnel"
act reload
check "reload, workers changed: server.vps restarted" \
	same "$T/events" <<EOF
stop server.vps
start server.vps
EOF
sed -i "s/option enabled 'yes'/option enabled 'no'/" "$R/etc/config/gstunnel"
sed -i "s/option enabled '0'/option enabled '1'/" "$R/etc/config/gstunnel"
act reload
check "reload, one section disabled and one enabled: one stops, one starts" \
	sh -c "grep -qx 'start client.off' $T/events &&
		grep -qx 'stop server.vps' $T/events && [ \$(wc -l <$T/events) = 2 ] &&
		[ ! -e $R/var/etc/gstunnel/server.vps.conf ] ||
		{ cat $T/events; ls $R/var/etc/gstunnel; exit 1; }"
sed -i "s/option cipher 'chacha20'/option cipher 'rot13'/" "$R/etc/config/gstunnel"
act reload
check "reload, a bad value: that section stops, with the reason" \
	sh -c "[ \"\$(cat $T/events)\" = 'stop client.home' ] &&
		grep -q \"client 'home': cipher=rot13 is not\" $T/err ||
		{ cat $T/events $T/err; exit 1; }"

# ---- stop --------------------------------------------------------------------
echo "== stop"
act stop
check "stop: every instance stops, /var/etc/gstunnel is gone" \
	sh -c "[ \"\$(cat $T/events)\" = 'stop client.off' ] &&
		[ ! -e $R/var/etc/gstunnel ] || { cat $T/events; exit 1; }"

# ---- the real programs -------------------------------------------------------
echo "== the programs, from the command lines and files the script made"
if [ $real = 0 ]; then
	echo "skipped: $client_bin or $server_bin not built"
else
	cat >"$R/etc/config/gstunnel" <<EOF
config server 'rserver'
	option listen '127.0.0.1:$P'
	option target '127.0.0.1:$((P + 2))'
	option key_file '/etc/gstunnel/home.key'
	option wait '1'

config client 'rclient'
	option listen '127.0.0.1:$((P + 1))'
	option server '127.0.0.1:$P'
	option key_file '/etc/gstunnel/home.key'
	option timeout '5'
	option verbose '1'
EOF
	act start
	for i in client.rclient server.rserver; do
		sed -n 's/^command //p' "$R/tmp/rec/state/$i" >"$T/cmd.$i"
		[ -s "$T/cmd.$i" ] || { echo "no command for $i"; continue; }
		# shellcheck disable=SC2046 # the recorded words, as procd runs them
		chroot "$R" $(cat "$T/cmd.$i") >"$T/log.$i" 2>&1 &
		pids="$pids $!"
	done
	chroot "$R" timeout 10 nc -l -p $((P + 2)) >"$T/target.out" &
	target=$!
	pids="$pids $target"
	# listening: a socket on 127.0.0.1:PORT in state LISTEN (0A)
	listening() {
		grep -q "^ *[0-9]*: 0100007F:$(printf %04X "$1") 00000000:0000 0A" \
			/proc/net/tcp
	}
	up() {
		for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
			listening "$P" && listening $((P + 1)) && return 0
			sleep 0.25
		done
		return 1
	}
	through() {
		up || { cat "$T/log.client.rclient" "$T/log.server.rserver"; return 1; }
		echo "hello through gstunnel" |
			chroot "$R" timeout 5 nc 127.0.0.1 $((P + 1)) >/dev/null
		wait "$target"
		grep -qx "hello through gstunnel" "$T/target.out" || {
			echo "target got:"; cat "$T/target.out"
			cat "$T/log.client.rclient" "$T/log.server.rserver"; return 1; }
	}
	check "programs: client.rclient and server.rserver take their files and carry data" \
		through
	for p in $pids; do kill "$p" 2>/dev/null; done
	pids=""
	act stop >/dev/null
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
