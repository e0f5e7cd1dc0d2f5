# cipher: cipher choice and refusal
ports CI_S CI_C
# a server given -c refuses the other cipher, and both ends say so
a0=$(accepts)
bg "$T/CF.s.log" "$SERVER" -c aes 127.0.0.1:$CI_S 127.0.0.1:$MUX "$KEY"; fs=$last
bg "$T/CF.c.log" "$CLIENT" -c chacha20 127.0.0.1:$CI_C 127.0.0.1:$CI_S "$KEY"; fc=$last
listening $CI_S >/dev/null; listening $CI_C >/dev/null
check "cipher: server -c aes, client -c chacha20: the app is reset" \
	t closed $CI_C "sink|" 5 reset
check "cipher: refused: the target gets no connection" nothing_in "$a0"
two() { logged "refused the client's cipher chacha20: this server takes only aes" "$T/CF.s.log" &&
	logged "the server refused cipher chacha20: it takes only aes" "$T/CF.c.log"; }
check "cipher: refused: both ends log the two ciphers" two
stop $fc
bg "$T/CF2.c.log" "$CLIENT" -c aes 127.0.0.1:$CI_C 127.0.0.1:$CI_S "$KEY"; fc=$last
listening $CI_C >/dev/null
check "cipher: server -c aes, client -c aes: served" t up $CI_C 100000
stop $fc; stop $fs
# without -c the server takes what each client asks for
bg "$T/CF3.c.log" "$CLIENT" -v -c chacha20 127.0.0.1:$CI_C 127.0.0.1:$SB "$KEY"; fc=$last
listening $CI_C >/dev/null
check "cipher: a server without -c serves a chacha20 client" t up $CI_C 100000
stop $fc
check "cipher: the README's protocol, chacha20" \
	"$PY" "$TESTS/ref.py" $SB "$KEY" chacha20
check "cipher: bad -c is refused" bad_args "bad -c CIPHER 'des'" -c des 127.0.0.1:1 127.0.0.1:2 "$KEY"
