#!/bin/bash
# xci-hosts: xen417 xen421 xenarm
# xci-timeout: 120
# Connect: with xenconsoled gone and the ring full, `xcinspect connect` services the
# console: the guest resumes (ticks advance), the log it reports (`log: PATH`) holds the
# guest's output in order, no tick missing or repeated, continuing where xenconsoled's
# log stopped. `disconnect` releases it (the ring fills again); a restarted xenconsoled
# binds and services the console again.
. "$XCI_LIB"
g=$XCI_GUEST1 d=$XCI_DOMID1 xlog=$(guest_log "$XCI_GUEST1")

stop_xenconsoled
wait_for 20 ring_full "$d" || fail "guest1 ring not full after stopping xenconsoled"
k=$(last_tick "$xlog" "$g")
ok "xenconsoled stopped, guest1 ring full; xenconsoled's log ends at tick $k"

# connect may return once its backend runs, or stay in the foreground: accept both.
xcinspect connect "$g" >connect.out 2>connect.err &
cpid=$!
wait_for 60 grep -q '^log: ' connect.out || { cat connect.out connect.err; fail "no 'log: PATH' line from xcinspect connect"; }
cat connect.out
blog=$(sed -n 's/^log: *//p' connect.out | head -1)
[ -f "$blog" ] || fail "reported log '$blog' does not exist"
if ! kill -0 $cpid 2>/dev/null; then
    wait $cpid; rc=$?
    [ $rc = 0 ] || { cat connect.err; fail "xcinspect connect exited $rc"; }
fi
ok "xcinspect connect: log $blog"

wait_for 15 ring_drained "$d" || { ring "$d"; fail "ring not drained by xcinspect's backend"; }
ok "ring drained: $(ring "$d")"
wait_for 20 tick_above "$blog" "$g" "$((k + 15))" || { tail -c 600 "$blog"; fail "ticks do not advance in $blog"; }
check_ticks "$blog" "$g" || { head -c 1500 "$blog"; fail "ticks in $blog not consecutive"; }
first=$(ticks "$blog" "$g" | head -1)
[ "$first" -ge "$((k + 1))" ] && [ "$first" -le "$((k + 2))" ] ||
    fail "xcinspect's log starts at tick $first, xenconsoled's ended at $k: data lost or repeated"
ok "backend log: ticks $first..$(last_tick "$blog" "$g") consecutive, continuing xenconsoled's $k"

rc=0; xcinspect disconnect "$g" >disconnect.out 2>&1 || rc=$?
cat disconnect.out
[ $rc = 0 ] || fail "xcinspect disconnect exited $rc"
wait_for 20 ring_full "$d" || { ring "$d"; fail "ring not full again after disconnect: still serviced?"; }
ok "after disconnect the ring fills again: $(ring "$d")"
kill $cpid 2>/dev/null

t=$(last_tick "$xlog" "$g")
start_xenconsoled
wait_for 15 ring_drained "$d" || {
    note "xenconsoled did not bind yet; firing its console watch"
    xenstore-write "/local/domain/$d/console/tty" "$(xs "/local/domain/$d/console/tty")"
    wait_for 10 ring_drained "$d"
} || fail "restarted xenconsoled does not service guest1"
wait_for 15 tick_above "$xlog" "$g" "$((t + 5))" || fail "no new ticks in xenconsoled's log"
ok "restarted xenconsoled services guest1 again (log past tick $t)"
