#!/bin/bash
# xci-hosts: xen421
# xci-timeout: 150
# The same flag write on the Linux 6.12 guest, which ignores the flag: it keeps writing
# (ticks consecutive in xenconsoled's log), and xcinspect says flag `disconnected`,
# flag_effect `ignored`, verdict from the ring (serviced).
. "$XCI_LIB"
[ -n "${XCI_GUEST_OLD:-}" ] || fail "no old guest on this host"
g=$XCI_GUEST_OLD d=$XCI_DOMID_OLD xlog=$(guest_log "$XCI_GUEST_OLD")
a0=$(audit_lines)
xcinspect_flag "$g" disconnected flag-d.out
[ "$flag_rc" = 0 ] || fail "xcinspect flag $g disconnected exited $flag_rc"
[ "$(byte3088 "$d")" = 1 ] || fail "byte 3088 is $(byte3088 "$d") after 'flag disconnected'"
t0=$(last_tick "$xlog" "$g"); p0=$(ring "$d" out_prod)
xci_json doc.json --window 2
p1=$(ring "$d" out_prod)
[ "$p1" -gt "$p0" ] || fail "$g: out_prod frozen ($p0) with the flag disconnected"
dj=$(dom_json doc.json "$g")
jq -c '{flag: .ring.flag, verdict}' <<<"$dj"
jq_is "$dj" .ring.flag.state disconnected "$g"
jq_is "$dj" .verdict.flag_effect ignored "$g"
st=$(jq -r .verdict.state <<<"$dj")
case $st in serviced|idle|backlog) ok "$g: verdict $st" ;; *) fail "$g: verdict '$st', want the ring's (serviced)" ;; esac
reason_has "$dj" 'ignores the flag' "$g"
wait_for 10 tick_above "$xlog" "$g" "$((t0 + 10))" || fail "$g: ticks stopped"
check_ticks "$xlog" "$g" || fail "$g: ticks not consecutive with the flag disconnected"
ok "$g (6.12): every tick arrives with the flag disconnected"
xcinspect_flag "$g" connected flag-c.out
[ "$flag_rc" = 0 ] && [ "$(byte3088 "$d")" = 0 ] || fail "flag connected: rc $flag_rc, byte $(byte3088 "$d")"
[ "$(tail -n +"$((a0 + 1))" "$(audit_log)" | grep -c flag)" -ge 2 ] || fail "audit log: want 2 new 'flag' entries"
ok "flag back to connected; audit log has both writes"
finish
