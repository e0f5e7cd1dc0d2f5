# soak (-l only): 5 minutes of rotation under load, 10 x 1000 connections
if [ $LONG = 1 ]; then
	ports SK_S SK_C
	COPT="-v -r 1" SOPT="-v -r 1" pair L $SK_C $SK_S 127.0.0.1:$ECHO
	check "soak: 5 minutes of rotation under load" t stream $SK_C 300 2048
	check "soak: 10 x 1000 connections" sh -c "for i in 1 2 3 4 5 6 7 8 9 10; do
		'$PY' '$TESTS/t.py' many $SK_C 1000 5000 || exit 1; done"
fi
