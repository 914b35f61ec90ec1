#!/bin/bash
# xci-hosts: xen417 xenarm
# xci-timeout: 120
# Attach: a non-interactive `xcinspect attach` sends `echo XC-$((6*7))` to the guest
# shell and reads `XC-42` back, first through xenconsoled's pty, then with xcinspect
# itself as the backend (after `xcinspect connect`).
. "$XCI_LIB"
g=$XCI_GUEST2 d=$XCI_DOMID2

attach_echo "$g" via-pty.out || { tail -c 800 via-pty.out; cat via-pty.out.err; fail "no XC-42 through xenconsoled's pty"; }
ok "attach via xenconsoled's pty: XC-42"
grep -q . via-pty.out.err && { note "stderr:"; cat via-pty.out.err; }

stop_xenconsoled
wait_for 20 ring_full "$d" || fail "guest2 ring not full after stopping xenconsoled"
xcinspect connect "$g" >connect.out 2>connect.err &
cpid=$!
wait_for 60 grep -q '^log: ' connect.out || { cat connect.out connect.err; fail "xcinspect connect did not report its log"; }
wait_for 15 ring_drained "$d" || fail "xcinspect's backend does not drain guest2"
ok "xcinspect is guest2's backend"
attach_echo "$g" via-backend.out || { tail -c 800 via-backend.out; cat via-backend.out.err; fail "no XC-42 with xcinspect as the backend"; }
ok "attach with xcinspect as the backend: XC-42"
xcinspect disconnect "$g" || fail "xcinspect disconnect exited $?"
kill $cpid 2>/dev/null
start_xenconsoled
