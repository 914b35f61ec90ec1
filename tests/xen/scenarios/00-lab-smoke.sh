#!/bin/bash
# xci-timeout: 180
# xci-needs-project: no
# The lab itself, no xcinspect: both guests in xenstore with a console, the console page
# maps read-only (grant ref 0 and foreign map) and xenconsoled drains it, the ticks reach
# xenconsoled's log and pty, the guest shell answers through `xl console`, and with
# xenconsoled killed the out ring fills to 2048.
. "$XCI_LIB"

xenstore-ls /local/domain >xs.txt || fail "xenstore-ls failed"
for g in $XCI_GUESTS; do
    d=$(domid_of "$g") || fail "xl domid $g"
    [ "$(xs "/local/domain/$d/name")" = "$g" ] || fail "/local/domain/$d/name is not $g"
    grep -q "name = \"$g\"" xs.txt || fail "$g not in xenstore-ls /local/domain"
    tty=$(xs "/local/domain/$d/console/tty")
    case $tty in /dev/pts/*) ;; *) fail "$g console/tty is '$tty'" ;; esac
    ok "$g: domid $d, tty $tty, ring-ref $(xs "/local/domain/$d/console/ring-ref")," \
       "port $(xs "/local/domain/$d/console/port"), type $(xs "/local/domain/$d/console/type" 2>/dev/null || echo '(none)')"

    j=$(python3 "$XCI_RING" "$d" --lib cffi) || fail "raw read (cffi, grant ref 0) of dom$d"
    note "cffi, grant ref 0: $j"
    [ "$(jq .byte3088 <<<"$j")" = 0 ] || fail "byte 3088 is not 0 on 4.17"
    jf=$(python3 "$XCI_RING" "$d" --via foreign) || fail "raw read (foreign map) of dom$d"
    note "ctypes, foreign map of ring-ref: $jf"
    wait_for 5 ring_drained "$d" || fail "dom$d: out_cons != out_prod with xenconsoled running"
    ok "$g: ring drained by xenconsoled"

    wait_for 15 tick_above "$(guest_log "$g")" "$g" 3 || fail "no ticks in $(guest_log "$g")"
    check_ticks "$(guest_log "$g")" "$g" || fail "ticks in xenconsoled's log not consecutive"
    ok "$g: ticks in xenconsoled's log up to $(last_tick "$(guest_log "$g")" "$g")"

    timeout 2 cat "$tty" >"pty-$g.out"
    n=$(ticks "pty-$g.out" "$g" | wc -l)
    [ "$n" -ge 3 ] || { head -c 600 "pty-$g.out"; fail "$g: $n ticks read from the pty in 2 s"; }
    ok "$g: $n ticks read from the pty $tty in 2 s"
done

# The guest shell through xenconsoled's pty (the harness's own check of the guest).
# `xl console` forwards stdin only when stdin and stdout are TTYs; the client it execs
# has an undocumented --interactive that forwards a pipe too. Ctrl-] ends it.
{ sleep 1; printf 'echo XC-$((6*7))\n'; sleep 3; printf '\035'; } |
    timeout 20 /usr/lib/xen-4.17/bin/xenconsole --interactive --type pv "$XCI_DOMID1" >xl-console.out 2>&1
note "xenconsole exit $?"
grep -aq 'XC-42' xl-console.out || { tail -c 800 xl-console.out; fail "no XC-42 through xenconsole"; }
ok "xenconsole (xl console's client): echo XC-\$((6*7)) -> XC-42"

# Stuck boot: xenconsoled gone, the guest fills its out ring.
stop_xenconsoled
d=$XCI_DOMID1
wait_for 20 ring_full "$d" || { ring "$d"; fail "dom$d out ring not full 20 s after xenconsoled died"; }
a=$(ring "$d"); sleep 1; b=$(ring "$d")
note "full: $a"
note "1 s later: $b"
[ "$(jq .out_cons <<<"$a")" = "$(jq .out_cons <<<"$b")" ] || fail "out_cons moved without a backend"
[ "$(jq .out_fill <<<"$b")" = 2048 ] || fail "ring not full"
ok "dom$d: out ring full (2048) and out_cons frozen without xenconsoled"

t=$(last_tick "$(guest_log "$XCI_GUEST1")" "$XCI_GUEST1")
start_xenconsoled
wait_for 10 ring_drained "$d" || fail "restarted xenconsoled does not drain dom$d"
wait_for 10 tick_above "$(guest_log "$XCI_GUEST1")" "$XCI_GUEST1" "$((t + 5))" ||
    fail "ticks do not resume in the log after restarting xenconsoled"
ok "restarted xenconsoled services dom$d again (ticks past $t)"
