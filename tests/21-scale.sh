# scale: timers at scale. 3000 connections open (each echoing a byte
# every 2 s, so never idle for -i 6), and beside them a stranger that
# stalls its handshake (-t 2) and a connection that goes idle: each of
# those two ends on time, and none of the 3000 is touched.
ports SCC SCS
SOPT="-t 2 -i 6" pair SC $SCC $SCS 127.0.0.1:$ECHO
scs=$spid scc=$cpid
bg "$T/keep.out" t keep $SCC 3000 14 2; keep=$last
sleep 4 # most of them open
check "scale: with 3000 open, a stalled handshake ends after -t 2" t stall $SCS 1.5 4.5
check "scale: with 3000 open, an idle connection ends after -i 6" t idle $SCC 5.5 9
kept() { wait $keep; rc=$?; cat "$T/keep.out"; [ $rc = 0 ]; }
check "scale: and each of the 3000 carried on, untouched" kept
stop $scc; stop $scs
