#!/bin/bash
# xci-hosts: xen417 xen421 xenarm
# xci-timeout: 180
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

# Every check of one guest in one jq run: a process start costs about a second in a dom0
# under TCG, and ~35 of them per guest took this scenario to its timeout (issue 17 lab).
# Ring indices in range: LO <= X <= HI for free-running u32 indices (no wrap in a lab run).
RING_CHECKS='
  (["out", 2048], ["in", 1024]) as [$s, $size] | .ring[$s] as $r
  | (if $r.size != $size then "ring.\($s).size is not \($size): \($r | tojson)" else empty end),
    (("cons", "prod") as $i | $lo["\($s)_\($i)"] as $l | $hi["\($s)_\($i)"] as $h | $r[$i] as $v
     | if $v < $l or $v > $h then "ring.\($s).\($i)=\($v) outside raw reads [\($l), \($h)]" else empty end),
    (if $r.fill != (($r.prod - $r.cons) % 4294967296) then "ring.\($s).fill != prod - cons: \($r | tojson)" else empty end)'

for i in 1 2; do
    g=guest$i; d=$(domid_of "$g")
    eval "before=\$before$i after=\$after$i"
    dj=$(dom_json doc.json "$g")
    [ -n "$dj" ] || fail "$g missing from .domains"
    # A here-string, not process substitution: the lab dom0 has no /dev/fd.
    mapfile -t got <<<"$(jq -r '.domid, (.console | .ring_ref, .port, .tty, .type), .ring.valid,
        .ring.flag.layout, .ring.flag.state, .verdict.state, (.ring.out, .ring.flag | tojson) | tostring' <<<"$dj")"
    [ "${got[0]}" = "$d" ] || fail "$g: domid ${got[0]} != $d"
    n=1
    for k in ring-ref port tty type; do
        want=$(xs "/local/domain/$d/console/$k")
        [ "${got[$n]}" = "$want" ] || fail "$g: console.${k/-/_} is '${got[$n]}', xenstore says '$want'"
        n=$((n + 1))
    done
    ok "$g: domid, console ring_ref/port/tty/type match xenstore"

    problems=$(jq -r --argjson lo "$before" --argjson hi "$after" "$RING_CHECKS" <<<"$dj")
    [ -z "$problems" ] || fail "$g: $problems"
    ok "$g: ring indices within raw reads: out ${got[9]}, raw $before .. $after"
    [ "${got[5]}" = true ] || fail "$g: ring.valid is not true"
    [ "${got[6]}" = "$want_layout" ] || fail "$g: ring.flag.layout is not $want_layout"
    if [ "$want_layout" = xen-4.21 ]; then
        [ "${got[7]}" = connected ] || fail "$g: ring.flag.state is not connected: ${got[10]}"
        ok "$g: flag ${got[10]}"
    fi
    st=${got[8]}
    case $st in serviced|idle) ok "$g: verdict $st" ;; *) fail "$g: verdict '$st' with xenconsoled servicing it" ;; esac
done
