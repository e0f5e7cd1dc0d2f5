# secure: the secure channel (wrong key, replay, tampering, truncation,
# strangers, a second implementation of the client, confidentiality)
ports WK_S WK_C X_S X_C RP_M RP_C RP_S TM_M TM_C TM_S PL_M

# mitm NAME MPORT CPORT SPORT TARGET OPTS...: a client on CPORT -> mitm.py
# on MPORT with OPTS -> a new server on SPORT -> TARGET. PIDs: mc ms mm.
mitm() {
	name=$1 mp=$2 mcp=$3 msp=$4 tg=$5; shift 5
	bg "$T/$name.s.log" "$SERVER" ${SOPT:-} 127.0.0.1:$msp "$tg" "$KEY"; ms=$last
	bg "$T/$name.m.log" "$PY" "$TESTS/mitm.py" "$mp" $msp "$@"; mm=$last
	# the client last: with -P its links start at once, numbered in order
	listening "$mp" >/dev/null && listening $msp >/dev/null
	bg "$T/$name.c.log" "$CLIENT" ${COPT:-} 127.0.0.1:$mcp 127.0.0.1:"$mp" "$KEY"; mc=$last
	listening $mcp >/dev/null
}
unmitm() { stop $mc; stop $mm; stop $ms; }

# wrong key: nothing reaches the target, both ends say why
a0=$(accepts)
bg "$T/W.s.log" "$SERVER" 127.0.0.1:$WK_S 127.0.0.1:$MUX \
	abcdefghijklmnopabcdefghijklmnop; ws=$last
bg "$T/W.c.log" "$CLIENT" 127.0.0.1:$WK_C 127.0.0.1:$WK_S "$KEY"; wc=$last
listening $WK_S >/dev/null; listening $WK_C >/dev/null
check "secure: wrong key: the app is closed at once" t closed $WK_C "sink|" 5 reset
check "secure: wrong key: the target gets no connection" nothing_in "$a0"
check "secure: wrong key: the server logs it" logged "authentication failed" "$T/W.s.log"
check "secure: wrong key: the client logs it" logged "authentication failed" "$T/W.c.log"
stop $wc; stop $ws

# replay: record a client's stream, play it to the server again
mitm RP $RP_M $RP_C $RP_S 127.0.0.1:$MUX rec="$T/rec"
check "secure: replay: a recorded session works" t up $RP_C 300000
stop $mc; stop $mm
a0=$(accepts)
replay() { t replay $RP_S "$T/rec.1.c2s" && nothing_in "$a0" &&
	logged "bad client finished" "$T/RP.s.log"; }
check "secure: replay: nothing reaches the target" replay
stop $ms

# tamper: one flipped bit kills the stream; no altered byte gets out
tamper() { # tamper NAME DIR:OFFSET WHO-LOGS WHAT
	mitm "$1" $TM_M $TM_C $TM_S 127.0.0.1:$ECHO flip="$2"
	t tamper $TM_C 8000000; rc=$?
	unmitm
	[ $rc = 0 ] && logged "$4" "$T/$1.$3.log"
}
check "secure: tamper: client hello"  tamper TA c2s:20 s "bad client hello"
check "secure: tamper: server hello"  tamper TB s2c:40 c "bad server proof"
check "secure: tamper: server hello's cipher byte" tamper TI s2c:0 c "bad server hello"
check "secure: tamper: client finished" tamper TC c2s:80 s "bad client finished"
check "secure: tamper: record length" tamper TD c2s:98 s "record"
check "secure: tamper: deep, app -> target" tamper TE c2s:5000000 s "does not verify"
check "secure: tamper: deep, target -> app" tamper TF s2c:5000000 c "does not verify"

# truncation at a record boundary: a reset, never a clean EOF
truncated() { # truncated NAME DIR:RECORDS WHO-LOGS
	mitm "$1" $TM_M $TM_C $TM_S 127.0.0.1:$ECHO cut="$2"
	t tamper $TM_C 4000000; rc=$?
	unmitm
	[ $rc = 0 ] && logged "truncated" "$T/$1.$3.log"
}
resets() { grep -c 'echo in=[0-9]* end=reset' "$T/target.log"; }
check "secure: truncation: target -> app cut after 20 records" truncated TG s2c:20 c
r0=$(resets)
check "secure: truncation: app -> target cut after 20 records" truncated TH c2s:20 s
target_reset() { [ "$(resets)" -gt "$r0" ]; }
check "secure: truncation: the target saw a reset too" wait_for 20 target_reset

# strangers at the server port get not one byte, and time out (-v:
# every failure before authentication is logged, see "logs")
bg "$T/X.s.log" "$SERVER" -v -t 2 127.0.0.1:$X_S 127.0.0.1:$MUX "$KEY"; xs=$last
listening $X_S >/dev/null
a0=$(accepts)
for kind in random big http hello half silent; do
	check "secure: stranger ($kind): no byte back, closed" t probe $X_S $kind 5
done
check "secure: strangers: the target saw none of them" nothing_in "$a0"
check "secure: a wrong version byte is logged as such" \
	logged "protocol version 71, we speak 3" "$T/X.s.log"
check "secure: a client written from the README's protocol works" \
	"$PY" "$TESTS/ref.py" $SB "$KEY"
check "secure: a hello built from the README's spec is answered" \
	t hello $X_S "$KEY" 9 65
weak() { t hello $X_S "$KEY" 0 0 && logged "weak public key" "$T/X.s.log"; }
check "secure: a hello with a low-order X25519 key is refused" weak
xs_serves() { bg "$T/X.c.log" "$CLIENT" 127.0.0.1:$X_C 127.0.0.1:$X_S "$KEY"
	xc=$last; listening $X_C && t up $X_C 100000; rc=$?; stop $xc; return $rc; }
check "secure: strangers: the server still serves" xs_serves
stop $xs

# confidentiality: a known plaintext never shows on the wire
M=GSTUNNEL-PLAINTEXT-MARKER-
mitm CF $TM_M $TM_C $TM_S 127.0.0.1:$ECHO rec="$T/cf"
t marker $TM_C "$M" 2000 && t marker $TM_C "$M" 2000 &&
	t zeros $TM_C 1000000
unmitm
bg "$T/plain.m.log" "$PY" "$TESTS/mitm.py" $PL_M $ECHO rec="$T/pl"; pm=$last
listening $PL_M >/dev/null && t marker $PL_M "$M" 2000; stop $pm
marker_hidden() {
	grep -a -q "$M" "$T/pl.1.c2s" || { echo "the check cannot see the marker"; return 1; }
	for f in "$T"/cf.*; do
		if grep -a -q "$M" "$f"; then echo "marker in $f"; return 1; fi
	done
	ls -l "$T"/cf.*
	[ "$(cat "$T"/cf.1.* | wc -c)" -gt 100000 ]
}
check "secure: the plaintext never appears on the wire" marker_hidden
differ() { ! cmp -s "$T/cf.1.c2s" "$T/cf.2.c2s" && ! cmp -s "$T/cf.1.s2c" "$T/cf.2.s2c"; }
check "secure: two sessions with the same data differ" differ
check "secure: no nonce or key is used twice" t nonces "$T/cf.3.c2s" "$T/cf.3.s2c"
