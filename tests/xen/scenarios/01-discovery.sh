#!/bin/bash
# xci-hosts: xen417 xen421 xenarm
# xci-timeout: 90
# Discovery: `xcinspect --once --json` agrees with xenstore on name, ring-ref, port, tty,
# type for both guests; its ring indices agree with a raw read of the page; flag layout
# `none` on Xen 4.17 (and 4.20), `xen-4.21` on the 4.21 host, where the flag reads
# connected (xenconsoled set it up).
. "$XCI_LIB"
case ${XCI_HOST:-xen417} in
    xen417) want_ver='4.17.*' want_layout=none ;;
    xen420) want_ver='4.20.*' want_layout=none ;;
    xen421) want_ver='4.21*' want_layout=xen-4.21 ;;
    xenarm) want_ver='4.17.*' want_layout=none ;;
esac

before1=$(ring "$XCI_DOMID1"); before2=$(ring "$XCI_DOMID2")
xci_json doc.json
after1=$(ring "$XCI_DOMID1"); after2=$(ring "$XCI_DOMID2")
jq . doc.json

xv=$(jq -r '.host.xen_version' doc.json)
# shellcheck disable=SC2254
case $xv in $want_ver) ok "host.xen_version $xv" ;; *) fail "host.xen_version is '$xv', want $want_ver" ;; esac
[ "$(jq -r '.host.flag_layout' doc.json)" = "$want_layout" ] || fail "host.flag_layout is not '$want_layout'"
ok "host.flag_layout $want_layout"

# in range: LO <= X <= HI for free-running u32 indices (no wrap in a lab run).
in_range() { [ "$2" -ge "$1" ] && [ "$2" -le "$3" ]; }

for i in 1 2; do
    g=guest$i; d=$(domid_of "$g")
    eval "before=\$before$i after=\$after$i"
    dj=$(dom_json doc.json "$g")
    [ -n "$dj" ] || fail "$g missing from .domains"
    [ "$(jq -r .domid <<<"$dj")" = "$d" ] || fail "$g: domid $(jq -r .domid <<<"$dj") != $d"
    for k in ring-ref port tty type; do
        want=$(xs "/local/domain/$d/console/$k")
        got=$(jq -r --arg k "${k/-/_}" '.console[$k] | tostring' <<<"$dj")
        [ "$got" = "$want" ] || fail "$g: console.${k/-/_} is '$got', xenstore says '$want'"
    done
    ok "$g: domid, console ring_ref/port/tty/type match xenstore"

    for side in out in; do
        size=$([ $side = out ] && echo 2048 || echo 1024)
        r=$(jq -c ".ring.$side" <<<"$dj")
        [ "$(jq .size <<<"$r")" = "$size" ] || fail "$g: ring.$side.size is not $size: $r"
        for idx in cons prod; do
            lo=$(jq ".${side}_$idx" <<<"$before"); hi=$(jq ".${side}_$idx" <<<"$after")
            v=$(jq ".$idx" <<<"$r")
            in_range "$lo" "$v" "$hi" || fail "$g: ring.$side.$idx=$v outside raw reads [$lo, $hi]"
        done
        fill=$(jq '(.prod - .cons) % 4294967296' <<<"$r")
        [ "$(jq .fill <<<"$r")" = "$fill" ] || fail "$g: ring.$side.fill != prod - cons: $r"
    done
    ok "$g: ring indices within raw reads: out $(jq -c .ring.out <<<"$dj"), raw $(jq -c '[.out_cons,.out_prod]' <<<"$before") .. $(jq -c '[.out_cons,.out_prod]' <<<"$after")"
    [ "$(jq .ring.valid <<<"$dj")" = true ] || fail "$g: ring.valid is not true"
    [ "$(jq -r .ring.flag.layout <<<"$dj")" = "$want_layout" ] || fail "$g: ring.flag.layout is not $want_layout"
    if [ "$want_layout" = xen-4.21 ]; then
        [ "$(jq -r .ring.flag.state <<<"$dj")" = connected ] || fail "$g: ring.flag.state is not connected: $(jq -c .ring.flag <<<"$dj")"
        ok "$g: flag $(jq -c .ring.flag <<<"$dj")"
    fi
    st=$(jq -r .verdict.state <<<"$dj")
    case $st in serviced|idle) ok "$g: verdict $st" ;; *) fail "$g: verdict '$st' with xenconsoled servicing it" ;; esac
done
