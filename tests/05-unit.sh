# unit: gstunnel.c's small parts on their own: tests/unit.c includes
# gstunnel.c (the formatter, udiv, the number parser, the config reader,
# the option rows, the weak-key test), built for each side; and
# tests/fmtlint.py: every format string uses only the conversions the
# formatter has (the compiler checks them as printf's, which has more)
for _side in CLIENT SERVER; do
	if ! have_cc; then
		skip "unit: tests/unit.c, -D$_side ($why)"
	elif ${CC:-cc} -std=c99 -Wall -Wextra -D$_side -o "$T/unit" tests/unit.c \
		-lbearssl 2>"$T/cc.log"; then
		check "unit: tests/unit.c, -D$_side" "$T/unit"
	else
		no "unit: tests/unit.c, -D$_side does not build: $(head -c 200 "$T/cc.log")"
	fi
done
check "unit: every format string uses only what the formatter implements" \
	"$PY" "$TESTS/fmtlint.py" gstunnel.c
