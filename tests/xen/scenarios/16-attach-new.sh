#!/bin/bash
# xci-hosts: xen420 xen421
# xci-timeout: 260
# Attach to the Linux 7.2 guest's shell: `xcinspect attach` sends `echo XC-$((6*7))`
# and reads `XC-42` back through xenconsoled's pty, then with xcinspect itself as the
# backend (after `xcinspect connect`, xenconsoled stopped).
. "$XCI_LIB"
[ -n "${XCI_GUEST_NEW:-}" ] || fail "no Linux >= 7.1 guest on this host"
g=$XCI_GUEST_NEW d=$XCI_DOMID_NEW

attach_echo "$g" via-pty.out || { tail -c 800 via-pty.out; cat via-pty.out.err; fail "no XC-42 through xenconsoled's pty"; }
ok "$g (7.2): attach via xenconsoled's pty: XC-42"

stop_xenconsoled
wait_for 20 ring_full "$d" || fail "$g ring not full after stopping xenconsoled"
note "byte 3088: $(byte3088 "$d")"
xcinspect connect "$g" >connect.out 2>connect.err &
cpid=$!
if ! wait_for 120 grep -q '^log: ' connect.out; then
    sleep 5; ps -eo pid,etime,args | grep '[x]cinspect'; cat connect.out connect.err
    note "the backend by hand (what connect spawns, stderr shown):"
    t0=$(now_ms)
    # SIGABRT after 40 s: faulthandler prints every thread's Python stack (where it waits)
    timeout -s ABRT 40 python3 -X faulthandler -m xcinspect _backend "$d" --status-fd 1 --flag-layout auto 2>&1 | head -c 6000
    note "backend by hand: exit ${PIPESTATUS[0]} after $(( $(now_ms) - t0 )) ms"
    fail "xcinspect connect did not report its log"
fi
wait_for 15 ring_drained "$d" || fail "xcinspect's backend does not drain $g"
ok "xcinspect is $g's backend"
attach_echo "$g" via-backend.out || { tail -c 800 via-backend.out; cat via-backend.out.err; fail "no XC-42 with xcinspect as the backend"; }
ok "$g (7.2): attach with xcinspect as the backend: XC-42"
xcinspect disconnect "$g" || fail "xcinspect disconnect exited $?"
kill $cpid 2>/dev/null
start_xenconsoled
