# failure: failures stay local (target or server down, resets, peers that
# vanish mid-write)
ports FL_S FL_C FL_T FL_DC FL_DS FL_MUX
# C: a target that is down; D: a server that is down
pair C $FL_C $FL_S 127.0.0.1:$FL_T; C_C=$cpid C_S=$spid
bg "$T/C.c.log" "$CLIENT" 127.0.0.1:$FL_DC 127.0.0.1:$FL_DS "$KEY"; D_C=$last
listening $FL_DC >/dev/null
check "failure: target down: app closed at once" t closed $FL_C "sink|" 5 reset
check "failure: server down: app closed at once" t closed $FL_DC "sink|" 5 reset
check "failure: target reset mid-stream: app reset" t closed $CB "reset 100000|" 5 reset
bg "$T/serve2.log" "$PY" "$TESTS/t.py" serve "$T/target2.log" $FL_T $FL_MUX
bg "$T/D.s.log" "$SERVER" 127.0.0.1:$FL_DS 127.0.0.1:$MUX "$KEY"
listening $FL_T >/dev/null; listening $FL_DS >/dev/null
check "failure: target back: the same tunnel works" t echo $FL_C 100000
check "failure: server back: the same client works" t up $FL_DC 100000
check "failure: after a reset the tunnel serves others" t up $CB 100000
check "failure: the app closes while data flows to it" t gone $CB
check "failure: the target closes while data flows to it" t gone_target $CB
survived() { alive $C_C && alive $C_S && alive $D_C && alive $B_C && alive $B_S; }
check "failure: every process survived (no SIGPIPE death)" survived
