#!/bin/bash
# xci-hosts: xen421
# xci-timeout: 240
# `xcinspect flag GUEST disconnected` on the Linux 7.2 guest: the guest keeps running
# (CPU time rises) but out_prod freezes (it throws its console writes away); JSON says
# flag `disconnected`, verdict `disconnected`, flag_effect `drops-output`.
# `xcinspect flag GUEST connected` brings the output back (ticks written meanwhile are
# lost: expected). The audit log holds both writes.
. "$XCI_LIB"
[ -n "${XCI_GUEST_NEW:-}" ] || fail "no Linux >= 7.1 guest on this host"
g=$XCI_GUEST_NEW d=$XCI_DOMID_NEW xlog=$(guest_log "$XCI_GUEST_NEW")
a0=$(audit_lines)
xcinspect_flag "$g" disconnected flag-d.out
[ "$flag_rc" = 0 ] || fail "xcinspect flag $g disconnected exited $flag_rc"
[ "$(grep -c . flag-d.out)" = 1 ] || fail "want one line on stdout"
[ "$(byte3088 "$d")" = 1 ] || fail "byte 3088 is $(byte3088 "$d") after 'flag disconnected'"
sleep 1.5
r0=$(ring "$d"); c0=$(cpu_time "$g"); t0=$(last_tick "$xlog" "$g")
sleep 4
r1=$(ring "$d"); c1=$(cpu_time "$g")
[ "$(jq .out_prod <<<"$r0")" = "$(jq .out_prod <<<"$r1")" ] || fail "$g: out_prod moved with the flag disconnected: $r0 -> $r1"
float_gt "$c1" "$c0" 0.3 || fail "$g: CPU time did not rise ($c0 -> $c1)"
ok "$g: out_prod frozen at $(jq .out_prod <<<"$r1") for 4 s, CPU time $c0 -> $c1 s"

xci_json doc.json --window 2
dj=$(dom_json doc.json "$g")
jq -c '{flag: .ring.flag, verdict}' <<<"$dj"
jq_is "$dj" .ring.flag.layout xen-4.21 "$g"
jq_is "$dj" .ring.flag.state disconnected "$g"
jq_is "$dj" .ring.flag.byte 1 "$g"
jq_is "$dj" .verdict.state disconnected "$g"
jq_is "$dj" .verdict.flag_effect drops-output "$g"
reason_has "$dj" 'thrown away' "$g"

xcinspect_flag "$g" connected flag-c.out
[ "$flag_rc" = 0 ] || fail "xcinspect flag $g connected exited $flag_rc"
[ "$(byte3088 "$d")" = 0 ] || fail "byte 3088 is $(byte3088 "$d") after 'flag connected'"
wait_for 15 tick_above "$xlog" "$g" "$((t0 + 5))" || fail "$g: no output after 'flag connected'"
lost=$(ticks "$xlog" "$g" | awk -v t="$t0" '$1 <= t { p = $1; next } $1 != p + 1 { printf "%d-%d ", p + 1, $1 - 1 } { p = $1 }')
ok "$g: output resumed after 'flag connected'; ticks lost while disconnected (expected): ${lost:-none}"
new=$(tail -n +"$((a0 + 1))" "$(audit_log)")
echo "$new"
[ "$(grep -c flag <<<"$new")" -ge 2 ] || fail "audit log $(audit_log): want 2 new 'flag' entries"
ok "audit log: both flag writes"
finish
