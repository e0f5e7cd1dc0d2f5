# fuzz (-z only): an ASan+UBSan server against tests/fuzz.py, where the Ref
# client picks a cipher per connection
if [ $FUZZ = 1 ]; then
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
