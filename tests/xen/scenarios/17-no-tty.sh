#!/bin/bash
# xci-hosts: xen420
# xci-timeout: 150
# A console whose console/tty never appears: with xenconsoled stopped, `xl create` of a
# third guest writes the console keys, then waits (~10 s) for console/tty before it
# destroys the domain. The scenario freezes xl (SIGSTOP) during that wait, so the domain
# stays without a tty as long as needed; `xcinspect --once --json` shows it with
# `no console/tty` in its verdict's reason. Then the domain is destroyed and xl let go.
. "$XCI_LIB"
stop_xenconsoled
xl create /etc/xen/guest3.cfg >create.out 2>&1 &
cpid=$!
d3=
has_console() { d3=$(xl domid guest3 2>/dev/null) && xs "/local/domain/$d3/console/port" >/dev/null 2>&1; }
wait_for 60 has_console || { cat create.out; fail "guest3 never got console keys"; }
xlpids=$(pgrep -f 'xl create /etc/xen/guest3.cfg')
kill -STOP $xlpids
ok "guest3 is dom$d3 with console port $(xs "/local/domain/$d3/console/port"); xl ($xlpids) frozen while it waits for console/tty"
# libxl writes console/tty as "" and waits for xenconsoled to fill it in.
t=$(xs "/local/domain/$d3/console/tty" 2>/dev/null) && [ -n "$t" ] && fail "guest3 has a console/tty: $t"
note "console/tty: $(xs "/local/domain/$d3/console/tty" >/dev/null 2>&1 && echo 'empty string' || echo absent)"
got=
for try in 1 2; do
    rc=0; timeout 90 xcinspect --once --json --window 0.3 >doc.json 2>doc.err || rc=$?
    [ $rc = 0 ] || { note "try $try: exit $rc: $(head -c 500 doc.err)"; continue; }
    dj=$(dom_json doc.json guest3)
    [ -n "$dj" ] || { note "try $try: guest3 not in the document: $(jq -c '[.domains[] | {domid, name}]' doc.json)"; continue; }
    jq -c '{domid, console, verdict}' <<<"$dj"
    reason=$(jq -r .verdict.reason <<<"$dj")
    grep -q 'no console/tty' <<<"$reason" && { got=1; break; }
    note "try $try: reason '$reason'"
done
xl destroy guest3
kill -CONT $xlpids
kill $xlpids 2>/dev/null
wait $cpid 2>/dev/null
[ -n "$got" ] || fail "guest3: no verdict reason with 'no console/tty'"
ok "guest3: verdict $(jq -r .verdict.state <<<"$dj"): $reason"
start_xenconsoled
