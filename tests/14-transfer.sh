# transfer: sizes around every record boundary, both ways, half-close
SIZES="0 1 2 16383 16384 16385 32767 32768 32769 1048576"
# 64 MiB is too slow under qemu and wine: -x has 16 MiB
if [ $CROSS = 0 ]; then SIZES="$SIZES 67108864"; else SIZES="$SIZES 16777216"; fi
for n in $SIZES; do
	check "transfer: $n bytes echoed (both ways at once)" t echo $CA $n
done
for n in $SIZES; do
	check "transfer: $n bytes app -> target" t up $CB $n
	check "transfer: $n bytes target -> app" t down $CB $n
done
check "transfer: half-close: 3 MB, EOF, all of it back, EOF" t back $CB 3000000
