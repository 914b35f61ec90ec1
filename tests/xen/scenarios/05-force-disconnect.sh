#!/bin/bash
# xci-timeout: 90
# Force-disconnect: an `xl console` session holds /var/lock/xenconsole.<domid>;
# `xcinspect disconnect --force` ends it, and a later attach succeeds.
. "$XCI_LIB"
g=$XCI_GUEST1 d=$XCI_DOMID1

# A client that stays attached: stdin a pipe that never ends.
mkfifo hold
sleep 600 >hold &
holder=$!
xl console "$g" <hold >xl-console.out 2>&1 &
xlpid=$!
wait_for 15 [ -e "/var/lock/xenconsole.$d" ] || fail "xl console took no lock"
sleep 1
kill -0 $xlpid 2>/dev/null || { cat xl-console.out; fail "xl console exited early"; }
ok "xl console (pid $xlpid) holds /var/lock/xenconsole.$d"
grep -E "^[0-9]+: FLOCK" /proc/locks

rc=0; xcinspect disconnect --force "$g" >disconnect.out 2>&1 || rc=$?
cat disconnect.out
[ $rc = 0 ] || fail "xcinspect disconnect --force exited $rc"
wait_for 10 eval "! kill -0 $xlpid 2>/dev/null" || fail "xl console still running after disconnect --force"
ok "xl console session ended"
kill $holder 2>/dev/null

attach_echo "$g" attach.out || { tail -c 800 attach.out; cat attach.out.err; fail "attach after the forced disconnect failed"; }
ok "later attach: XC-42"
