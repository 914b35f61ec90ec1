#!/bin/bash
# xci-hosts: xen421
# xci-timeout: 180
# The stalled 7.2 guest behind a "connected" flag (xenconsoled killed): `xcinspect
# connect` drains it from exactly where xenconsoled stopped; the guest resumes, and
# xenconsoled's log followed by the drain log hold every tick number exactly once (no
# gap, no duplicate).
. "$XCI_LIB"
[ -n "${XCI_GUEST_NEW:-}" ] || fail "no Linux >= 7.1 guest on this host"
g=$XCI_GUEST_NEW d=$XCI_DOMID_NEW xlog=$(guest_log "$XCI_GUEST_NEW")
# Both logs are appended to across scenarios: this one looks at what was added from here on.
x0=$(stat -c %s "$xlog")
for f in /var/log/xcinspect/*.log; do [ -f "$f" ] && echo "$f $(stat -c %s "$f")"; done >sizes-before.txt
wait_for 20 tick_above "$xlog" "$g" "$(( $(last_tick "$xlog" "$g") + 10 ))"    # some ticks of xenconsoled's own
stop_xenconsoled
wait_for 20 ring_full "$d" || fail "$g ring not full after stopping xenconsoled"
sleep 2
k=$(last_tick "$xlog" "$g")
ok "xenconsoled stopped, $g ring full, byte 3088 $(byte3088 "$d"); its log ends at tick $k"

xcinspect connect "$g" >connect.out 2>connect.err &
cpid=$!
wait_for 60 grep -q '^log: ' connect.out || { sleep 5; ps -eo pid,etime,args | grep '[x]cinspect'; cat connect.out connect.err; fail "no 'log: PATH' line from xcinspect connect"; }
cat connect.out
blog=$(sed -n 's/^log: *//p' connect.out | head -1)
[ -f "$blog" ] || fail "reported log '$blog' does not exist"
wait_for 15 ring_drained "$d" || { ring "$d"; fail "ring not drained by xcinspect's backend"; }
ok "ring drained: $(ring "$d")"
wait_for 30 tick_above "$blog" "$g" "$((k + 20))" || { tail -c 600 "$blog"; fail "ticks do not advance in $blog"; }
note "byte 3088 while xcinspect serves it: $(byte3088 "$d")"
b0=$(awk -v f="$blog" '$1 == f {print $2}' sizes-before.txt); b0=${b0:-0}
tail -c +"$((x0 + 1))" "$xlog" >xenconsoled.part
tail -c +"$((b0 + 1))" "$blog" >drain.part
cat xenconsoled.part drain.part >both.log
first=$(ticks xenconsoled.part "$g" | head -1); last=$(last_tick drain.part "$g")
note "xenconsoled's log from byte $x0: ticks $first..$(last_tick xenconsoled.part "$g"); drain log from byte $b0: ticks $(ticks drain.part "$g" | head -1)..$last"
check_ticks both.log "$g" || { tail -c 400 xenconsoled.part; echo; head -c 600 drain.part; fail "xenconsoled's log + the drain log: ticks not consecutive"; }
dups=$(ticks both.log "$g" | sort -n | uniq -d | head -3)
[ -z "$dups" ] || fail "ticks repeated: $dups"
ok "xenconsoled's log + drain log: ticks $first..$last, each exactly once (seam at $k/$((k + 1)))"
xcinspect disconnect "$g" >disconnect.out 2>&1 || { cat disconnect.out; fail "xcinspect disconnect exited $?"; }
cat disconnect.out
kill $cpid 2>/dev/null
note "byte 3088 after disconnect: $(byte3088 "$d")"
