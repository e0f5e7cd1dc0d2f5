# signal: SIGTERM and SIGINT end the shared pair A with exit status 0
exits0() { kill -"$1" "$2"; i=0
	while [ $i -lt 30 ] && alive "$2"; do sleep 0.1; i=$((i + 1)); done
	wait "$2"; rc=$?; echo "exit status $rc"; [ $rc = 0 ]; }
check "signal: SIGTERM: the client exits 0" exits0 TERM $A_C
check "signal: SIGINT: the server exits 0" exits0 INT $A_S
