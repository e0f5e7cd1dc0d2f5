# rotation, part 1: the streams with -r 1 run for 30 s beside the other
# groups; 32-rotation.sh checks what they did.
ports R_C R_S Q_C Q_S
COPT="-v -r 1" SOPT="-v -r 1" pair R $R_C $R_S 127.0.0.1:$ECHO
bg "$T/rot.out" t stream $R_C 30 256; rot=$last
# the server asks (REQUEST); the client never rotates on its own
COPT="-v -r 0" SOPT="-v -r 1" pair Q $Q_C $Q_S 127.0.0.1:$ECHO
bg "$T/rotq.out" t stream $Q_C 8 256; rotq=$last
# their target connections, before anything counts connections
streams_in() { [ "$(accepts)" -ge 2 ]; }
wait_for 50 streams_in
