# rotation, part 2 (part 1 is 00-rotation.start.sh): what the streams did,
# rotation by volume and at full speed
ports RF_C RF_S V_S V_C
rotations() { # rotations LOG WHICH MIN
	n=$(grep -c "$2 key rotated" "$1"); echo "$1: $n $2 rotations"
	[ "$n" -ge "$3" ]; }
rot_ok() { wait $rot && cat "$T/rot.out" &&
	rotations "$T/R.c.log" send 20 && rotations "$T/R.c.log" receive 20 &&
	rotations "$T/R.s.log" send 20 && rotations "$T/R.s.log" receive 20; }
check "rotation: -r 1, 30 s both ways: intact, rotated both ways" rot_ok
impl() { tr -d '\r' <"$T/R.c.log" | # CRLF from a Windows end
	grep -E "cipher (aes: aes-gcm (x86ni|pwr8|ct64|ct)\+(pclmul|pwr8|ctmul64|ctmul|ctmul32), AES-256|chacha20: chacha20-poly1305 (ct|sse2)\+(ctmulq|ctmul|ctmul32))$"; }
check "rotation: -v names the cipher code in use" impl
# rotation by volume: a build whose threshold is 256 KiB, not 1 GiB
VOL="rotation: by volume (a build rotating every 256 KiB)"
if [ $CROSS = 1 ]; then
	skip "rotation: by volume (a native build: not in the -x subset)"
elif ! have_cc; then
	skip "$VOL ($why)"
elif build "$T/vol_client" -O2 -DROTATE_BYTES=262144 -DCLIENT &&
	build "$T/vol_server" -O2 -DROTATE_BYTES=262144 -DSERVER; then
	vol() { oc=$CLIENT os=$SERVER; CLIENT=$T/vol_client SERVER=$T/vol_server
		COPT="-v -r 0 ${CIPHER:+-c $CIPHER}" SOPT="-v -r 0 ${CIPHER:+-c $CIPHER}"
		pair V $V_C $V_S 127.0.0.1:$ECHO; rc=$?
		CLIENT=$oc SERVER=$os COPT= SOPT=
		[ $rc = 0 ] && t echo $V_C 16000000 && sleep 0.5 &&
		rotations "$T/V.c.log" send 4 && rotations "$T/V.s.log" receive 4; }
	check "$VOL" vol
else
	skip "$VOL (cannot build here: $(head -c 80 "$T/cc.log"))"
fi
rotq_ok() { wait $rotq && rotations "$T/Q.c.log" send 4 &&
	rotations "$T/Q.s.log" receive 4; }
check "rotation: the server's -r asks the client to rotate" rotq_ok
# at full speed, so that control records wait behind full buffers. Each
# rotation waits for the OFFER and the SWITCH to pass the queued data: an end
# under qemu moving 10 MB/s behind megabytes of socket buffer takes about 2 s
# a rotation, not 1, so -x blasts for longer to see the same count.
COPT="-v -r 1" SOPT="-v -r 1" pair RF $RF_C $RF_S 127.0.0.1:$MUX
RF_SECS=4; [ $CROSS = 1 ] && RF_SECS=10
fast() { t blast $RF_C $RF_SECS "$1" && rotations "$T/RF.c.log" send "$2" &&
	rotations "$T/RF.s.log" send "$2"; }
check "rotation: -r 1, full speed app -> target: intact, rotated" fast up 3
check "rotation: -r 1, full speed target -> app: intact, rotated" fast down 6
