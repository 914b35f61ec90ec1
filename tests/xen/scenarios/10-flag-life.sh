#!/bin/bash
# xci-hosts: xen421
# xci-timeout: 150
# The 4.21 flag's real life under `auto`: with xenconsoled down, a third guest created
# paused (`xl create -p`, a placeholder console/tty written so that xl goes on) has
# byte 3088 == 1 from libxenguest; xcinspect shows `.ring.flag.state == "disconnected"`
# (byte 1, layout xen-4.21). Starting xenconsoled sets it to connected within seconds.
. "$XCI_LIB"
stop_xenconsoled
xl create -p /etc/xen/guest3.cfg >create.out 2>&1 &
cpid=$!
d3=
has_console() { d3=$(xl domid guest3 2>/dev/null) && xs "/local/domain/$d3/console/ring-ref" >/dev/null 2>&1; }
wait_for 60 has_console || { cat create.out; fail "guest3 never got console/ring-ref"; }
xenstore-write "/local/domain/$d3/console/tty" /dev/null || fail "placeholder console/tty"
ok "guest3 is dom$d3; placeholder console/tty written"
rc=0; wait $cpid || rc=$?
cat create.out
[ $rc = 0 ] || fail "xl create -p guest3 exited $rc"
[ "$(byte3088 "$d3")" = 1 ] || fail "byte 3088 of the new domain is $(byte3088 "$d3"), want 1 (libxenguest writes DISCONNECTED)"
ok "raw: byte 3088 of dom$d3 is 1 with xenconsoled down"

xci_json doc.json
dj=$(dom_json doc.json guest3)
[ -n "$dj" ] || fail "guest3 missing from xcinspect's document"
jq -c '{domid, flag: .ring.flag, verdict}' <<<"$dj"
jq_is "$(cat doc.json)" .host.flag_layout xen-4.21 "host"
case $(jq -r .host.xen_version doc.json) in 4.21*) ok "host.xen_version $(jq -r .host.xen_version doc.json)" ;;
    *) fail "host.xen_version '$(jq -r .host.xen_version doc.json)', want 4.21*" ;; esac
jq_is "$dj" .ring.flag.layout xen-4.21 guest3
jq_is "$dj" .ring.flag.byte 1 guest3
jq_is "$dj" .ring.flag.state disconnected guest3

start_xenconsoled
t0=$(now_ms)
wait_for 20 eval '[ "$(byte3088 "$d3")" = 0 ]' || fail "byte 3088 still $(byte3088 "$d3") 20 s after starting xenconsoled"
ok "xenconsoled set byte 3088 to 0 $(( ($(now_ms) - t0) )) ms after it started (guest still paused)"
xci_json doc2.json
dj=$(dom_json doc2.json guest3)
jq -c '{flag: .ring.flag, verdict}' <<<"$dj"
jq_is "$dj" .ring.flag.state connected guest3
jq_is "$dj" .ring.flag.byte 0 guest3
xl destroy guest3
