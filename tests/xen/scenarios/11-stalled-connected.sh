#!/bin/bash
# xci-hosts: xen421
# xci-timeout: 330
# xenconsoled killed under the running Linux 7.2 guest: the 4.21 flag stays `connected`
# (nobody writes 1 again), the ring fills and the guest spins (CPU time keeps rising).
# xcinspect: verdict `stalled`, reason says the flag only means `connected once`; the TUI
# under tmux shows `stalled` on that guest's row, and no `serviced`.
. "$XCI_LIB"
[ -n "${XCI_GUEST_NEW:-}" ] || fail "no Linux >= 7.1 guest on this host"
g=$XCI_GUEST_NEW d=$XCI_DOMID_NEW
stop_xenconsoled
wait_for 20 ring_full "$d" || { ring "$d"; fail "$g ring not full 20 s after xenconsoled died"; }
[ "$(byte3088 "$d")" = 0 ] || fail "byte 3088 is $(byte3088 "$d"), want 0 (connected) after xenconsoled died"
c0=$(cpu_time "$g"); sleep 3; c1=$(cpu_time "$g")
float_gt "$c1" "$c0" 1.0 || fail "$g: CPU time $c0 -> $c1 in 3 s: not spinning"
ok "$g: ring full, byte 3088 still 0, spinning (CPU $c0 -> $c1 s in 3 s)"

xci_json doc.json
dj=$(dom_json doc.json "$g")
jq -c '{flag: .ring.flag, out: .ring.out, verdict}' <<<"$dj"
jq_is "$dj" .ring.flag.layout xen-4.21 "$g"
jq_is "$dj" .ring.flag.state connected "$g"
jq_is "$dj" .verdict.state stalled "$g"
reason_has "$dj" 'connected once' "$g"

export TERM=xterm-256color
tmux -u -f /dev/null new-session -d -s xci -x 160 -y 40 "env TERM=xterm-256color xcinspect; echo 'xcinspect exited'; sleep 600" ||
    fail "tmux new-session failed"
row_stalled() {
    tmux capture-pane -p -t xci >screen.txt 2>/dev/null &&
        grep -E "(^|[^a-z0-9])$g([^a-z0-9]|$)" screen.txt | grep -q stalled
}
t0=$(now_ms)
wait_for 180 row_stalled
rc=$?
note "the TUI showed the row after $(( ($(now_ms) - t0) / 1000 )) s (a first start in this boot)"
cat screen.txt
tmux kill-server
[ $rc = 0 ] || fail "the TUI has no row for $g showing 'stalled'"
row=$(grep -E "(^|[^a-z0-9])$g([^a-z0-9]|$)" screen.txt | grep stalled | head -1)
grep -q serviced <<<"$row" && fail "the TUI row for $g also says serviced: $row"
ok "TUI row: $row"
finish
