#!/bin/bash
# xci-hosts: xen417 xen421 xenarm
# xci-timeout: 120
# Stuck boot: with xenconsoled stopped, a guest's out ring fills within seconds and
# xcinspect's verdict is `stalled`, with a reason that names the missing backend.
. "$XCI_LIB"

stop_xenconsoled
t0=$(now_ms)
wait_for 20 ring_full "$XCI_DOMID1" || { ring "$XCI_DOMID1"; fail "guest1 out ring not full 20 s after xenconsoled stopped"; }
ok "guest1 out ring full $(( ($(now_ms) - t0) / 1000 )) s after xenconsoled stopped: $(ring "$XCI_DOMID1")"
sleep 1
xci_json doc.json
dj=$(dom_json doc.json guest1)
jq . <<<"$dj"
[ "$(jq .ring.out.fill <<<"$dj")" = 2048 ] || fail "xcinspect: guest1 ring.out.fill is not 2048"
st=$(jq -r .verdict.state <<<"$dj"); reason=$(jq -r .verdict.reason <<<"$dj")
[ "$st" = stalled ] || fail "guest1 verdict '$st' ($reason), want stalled"
grep -qiE 'xenconsoled|backend' <<<"$reason" || fail "verdict reason does not name the missing backend: '$reason'"
ok "guest1: verdict stalled: $reason"
start_xenconsoled
