# fuzz (-z only): an ASan+UBSan server against tests/fuzz.py, where the Ref
# client picks a cipher per connection (not again with -P: the server is
# the same, and fuzz.py makes links with and without early OPENs)
if [ $FUZZ = 1 ] && [ -z "$POOL" ]; then
	ports FZ_S FZ_T
	FZ=$T/fz_server
	FZ_NAME="fuzz: ${FUZZ_SECONDS:-60} s of random record sequences and hellos"
	if ! have_cc; then
		skip "$FZ_NAME ($why)"
		skip "fuzz: the server is still running ($why)"
		skip "fuzz: no sanitizer report ($why)"
	elif ! build "$FZ" -g -O1 -fsanitize=address,undefined \
		-fno-sanitize-recover=undefined -fno-omit-frame-pointer -DSERVER
	then
		no "fuzz: cannot build the sanitizer server: $(head -c 200 "$T/cc.log")"
	else
		bg "$T/fuzz.s.log" env ASAN_OPTIONS=abort_on_error=0 "$FZ" -r 1 -t 3 \
			127.0.0.1:$FZ_S 127.0.0.1:$FZ_T "$KEY"; fzs=$last
		listening $FZ_S >/dev/null
		check "$FZ_NAME" "$PY" "$TESTS/fuzz.py" $FZ_S $FZ_T "$KEY" \
			"${FUZZ_SECONDS:-60}" "${FUZZ_SEED:-$$}"
		sed -n 's/^fuzz: /        | /p' "$T/out"
		check "fuzz: the server is still running" alive $fzs
		stop $fzs
		clean() { ! grep -e 'ERROR: [A-Za-z]*Sanitizer' -e 'runtime error:' \
			-e 'SUMMARY: [A-Za-z]*Sanitizer' "$T/fuzz.s.log"; }
		check "fuzz: no sanitizer report" clean
	fi
fi
# the client's fuzzer: an ASan+UBSan client against tests/cfuzz.py, which
# plays both its server (holding the key) and its application
if [ $FUZZ = 1 ]; then
	ports CF_C CF_S
	CF=$T/fz_client
	CF_NAME="fuzz: ${FUZZ_SECONDS:-60} s of random records and hellos at the client"
	if ! have_cc; then
		skip "$CF_NAME ($why)"
		skip "fuzz: the client is still running ($why)"
		skip "fuzz: no sanitizer report from the client ($why)"
	elif ! build "$CF" -g -O1 -fsanitize=address,undefined \
		-fno-sanitize-recover=undefined -fno-omit-frame-pointer -DCLIENT
	then
		no "fuzz: cannot build the sanitizer client: $(head -c 200 "$T/cc.log")"
	else
		bg "$T/cfuzz.c.log" env ASAN_OPTIONS=abort_on_error=0 "$CF" ${POOL:+-P $POOL} -r 1 -t 3 \
			127.0.0.1:$CF_C 127.0.0.1:$CF_S "$KEY"; cfc=$last
		listening $CF_C >/dev/null
		check "$CF_NAME" "$PY" "$TESTS/cfuzz.py" $CF_C $CF_S "$KEY" \
			"${FUZZ_SECONDS:-60}" "${FUZZ_SEED:-$$}"
		sed -n 's/^cfuzz: /        | /p' "$T/out"
		check "fuzz: the client is still running" alive $cfc
		stop $cfc
		cclean() { ! grep -e 'ERROR: [A-Za-z]*Sanitizer' -e 'runtime error:' \
			-e 'SUMMARY: [A-Za-z]*Sanitizer' "$T/cfuzz.c.log"; }
		check "fuzz: no sanitizer report from the client" cclean
	fi
fi
