#!/bin/bash
# xci-hosts: xen420
# xci-timeout: 240
# Byte 3088 on Xen 4.20, which has no flag field: the guest kernel reads it all the same.
# Written to 1 under the Linux 7.2 guest (ring.py, a writable foreign map), its output
# stops (out_prod frozen while its CPU time rises); xcinspect under `auto` (layout none)
# still shows `.ring.flag.byte == 1`, verdict `disconnected` with flag_effect
# `drops-output` (not n/a); `xcinspect flag GUEST connected` (writes 0) brings the output
# back. The same byte under the 6.12 guest changes nothing: flag_effect `ignored`.
. "$XCI_LIB"
[ -n "${XCI_GUEST_NEW:-}" ] || fail "no Linux >= 7.1 guest on this host"
g=$XCI_GUEST_NEW d=$XCI_DOMID_NEW xlog=$(guest_log "$XCI_GUEST_NEW")
a0=$(audit_lines)
grep -aq "boot line 2: kernel 7\." "$xlog" || fail "$g does not run Linux 7.x: $(grep -a 'boot line 2' "$xlog")"
grep -aq "boot line 2: kernel 6\.12" "$(guest_log "$XCI_GUEST_OLD")" || fail "$XCI_GUEST_OLD does not run Linux 6.12"
ok "guests: $(grep -ah 'boot line 2' "$xlog" "$(guest_log "$XCI_GUEST_OLD")" | tr -d '\r' | tr '\n' ' ')"

[ "$(byte3088 "$d")" = 0 ] || fail "byte 3088 of $g is $(byte3088 "$d") at the start, want 0"
set_byte3088 "$d" 1 || fail "ring.py --set-byte 3088=1 on dom$d"
sleep 1.5
r0=$(ring "$d"); c0=$(cpu_time "$g"); t0=$(last_tick "$xlog" "$g")
sleep 4
r1=$(ring "$d"); c1=$(cpu_time "$g")
note "byte 1: $r0"
note "4 s later: $r1 (cpu $c0 -> $c1 s)"
[ "$(jq .out_prod <<<"$r0")" = "$(jq .out_prod <<<"$r1")" ] || fail "$g: out_prod moved with byte 3088 == 1 (a 7.2 guest drops its writes)"
float_gt "$c1" "$c0" 0.3 || fail "$g: CPU time did not rise ($c0 -> $c1): the guest is not running"
ok "$g: out_prod frozen at $(jq .out_prod <<<"$r1") for 4 s while its CPU time rose $c0 -> $c1 s"

xci_json doc.json --window 2
dj=$(dom_json doc.json "$g")
jq . <<<"$dj"
case $(jq -r .host.xen_version doc.json) in 4.20.*) ok "host.xen_version $(jq -r .host.xen_version doc.json)" ;;
    *) fail "host.xen_version is '$(jq -r .host.xen_version doc.json)', want 4.20.x" ;; esac
jq_is "$(cat doc.json)" .host.flag_layout none "host"
jq_is "$dj" .ring.flag.layout none "$g"
jq_is "$dj" .ring.flag.byte 1 "$g"
jq_is "$dj" .verdict.flag_effect drops-output "$g"
jq_is "$dj" .verdict.state disconnected "$g"
reason_has "$dj" 'thrown away' "$g"

xcinspect_flag "$g" connected flag-connected.out
[ "$flag_rc" = 0 ] || fail "xcinspect flag $g connected exited $flag_rc under layout none with byte 1"
[ "$(grep -c . flag-connected.out)" = 1 ] || fail "xcinspect flag: want one line on stdout"
[ "$(byte3088 "$d")" = 0 ] || fail "byte 3088 is $(byte3088 "$d") after 'flag connected', want 0"
wait_for 15 tick_above "$xlog" "$g" "$((t0 + 5))" || fail "$g: no ticks after 'flag connected' (log ends at $(last_tick "$xlog" "$g"))"
lost=$(ticks "$xlog" "$g" | awk -v t="$t0" '$1 <= t { p = $1; next } $1 != p + 1 { printf "%d-%d ", p + 1, $1 - 1 } { p = $1 }')
ok "$g: output back after 'flag connected' (ticks past $t0; lost while the byte was 1, as expected: ${lost:-none})"

grep -a '"flag"\|flag' "$(audit_log)" | tail -3
[ "$(audit_lines)" -gt "$a0" ] || fail "no new line in the audit log $(audit_log)"
tail -n +"$((a0 + 1))" "$(audit_log)" | grep -q flag || fail "audit log: no 'flag' action"
ok "audit log records the flag write"

# The 6.12 guest ignores the byte.
go=$XCI_GUEST_OLD do=$XCI_DOMID_OLD olog=$(guest_log "$XCI_GUEST_OLD")
set_byte3088 "$do" 1 || fail "ring.py --set-byte on dom$do"
p0=$(ring "$do" out_prod); t1=$(last_tick "$olog" "$go")
xci_json doc-old.json --window 2
p1=$(ring "$do" out_prod)
[ "$p1" -gt "$p0" ] || fail "$go: out_prod frozen with byte 1: a 6.12 guest should ignore it"
dj=$(dom_json doc-old.json "$go")
jq -c '{flag: .ring.flag, verdict}' <<<"$dj"
jq_is "$dj" .ring.flag.byte 1 "$go"
jq_is "$dj" .verdict.flag_effect ignored "$go"
wait_for 10 tick_above "$olog" "$go" "$((t1 + 5))" || fail "$go: ticks stopped with byte 1"
check_ticks "$olog" "$go" || fail "$go: ticks not consecutive with byte 1"
ok "$go (6.12): keeps writing with byte 3088 == 1, no tick lost; flag_effect ignored"
xcinspect_flag "$go" connected flag-old.out
[ "$flag_rc" = 0 ] && [ "$(byte3088 "$do")" = 0 ] || fail "xcinspect flag $go connected: rc $flag_rc, byte $(byte3088 "$do")"
ok "$go: byte back to 0"
finish
