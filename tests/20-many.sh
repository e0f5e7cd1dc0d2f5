# many: many connections at once
fa=$(fds $A_C) fb=$(fds $A_S)
check "many: $MANY concurrent connections, each verified" t many $CA $MANY 20000
fds_back() { [ "$(fds $A_C)" = "$fa" ] && [ "$(fds $A_S)" = "$fb" ]; }
check "many: fd counts back where they started ($fa, $fb)" wait_for 50 fds_back
