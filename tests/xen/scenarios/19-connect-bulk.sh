#!/bin/bash
# xci-hosts: xenarm
# xci-timeout: 300
# Connect under volume: xenconsoled killed, the ring full, `xcinspect connect` is the
# backend (its process has the arm64 fence page: r-xp, `dmb ish; ret`); through
# `xcinspect attach` the guest's shell prints BULK_N numbered lines of 102 bytes (about
# 300 KiB) while its ticks go on. The drain log (from where this connect started) holds
# exactly the expected bulk lines, byte for byte, in order, none missing or repeated,
# and every tick of the period exactly once, continuing xenconsoled's log.
. "$XCI_LIB"
g=$XCI_GUEST1 d=$XCI_DOMID1 xlog=$(guest_log "$XCI_GUEST1")
N=${BULK_N:-3000}
pad=..........................................................................................

blog=$(python3 -c "import sys; from xcinspect.engine import service; from xcinspect.platform.dom0 import Dom0Platform; print(service.log_path(Dom0Platform(), int(sys.argv[1])))" "$d")
size0=$(stat -c %s "$blog" 2>/dev/null || echo 0)

stop_xenconsoled
wait_for 20 ring_full "$d" || fail "guest1 ring not full after stopping xenconsoled"
k=$(last_tick "$xlog" "$g")
ok "xenconsoled stopped, ring full; its log ends at tick $k; drain log $blog has $size0 bytes before"

xcinspect connect "$g" >connect.out 2>connect.err &
cpid=$!
wait_for 60 grep -q '^log: ' connect.out || { cat connect.out connect.err; fail "no 'log: PATH' line from xcinspect connect"; }
cat connect.out
[ "$(sed -n 's/^log: *//p' connect.out | head -1)" = "$blog" ] || fail "connect reports another log than $blog"
wait_for 15 ring_drained "$d" || fail "ring not drained by xcinspect's backend"

# The backend process: its fence page holds dmb ish; ret.
bpid=$(pgrep -f "xcinspect _backend $d( |$)" | head -1)
[ -n "$bpid" ] || { ps -eo pid,args | grep '[x]cinspect'; fail "no backend process for domain $d"; }
python3 - "$bpid" <<'EOF' || fail "the backend process has no dmb ish code page"
import sys
pid = int(sys.argv[1])
hits = []
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
    for line in maps:
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        if f[1] == "r-xp" and hi - lo == 4096 and (len(f) < 6 or "memfd:xcinspect-fence" in f[5]):
            mem.seek(lo)
            if mem.read(8) == bytes.fromhex("bf3b03d5c0035fd6"):
                hits.append(line.strip())
print("backend", pid, "fence page:", hits)
assert hits
EOF
ok "backend pid $bpid maps the dmb ish; ret page (r-xp)"

# The bulk: typed into the guest's shell through xcinspect's own backend.
cmd="awk 'BEGIN { for (i = 1; i <= $N; i++) printf \"bulk %06d %s\\n\", i, \"$pad\"; print \"BULK-\" \"END\" }'"
{ sleep 1; printf '%s\n' "$cmd"; sleep 200; } | xcinspect attach "$g" >attach.out 2>attach.err &
apid=$!
t0=$(now_ms)
wait_for 200 grep -aq 'BULK-END' "$blog" || { tail -c 800 "$blog"; cat attach.err; fail "the bulk did not complete in the drain log"; }
ms=$(( $(now_ms) - t0 ))
kill $apid 2>/dev/null
sleep 2
tail -c +"$((size0 + 1))" "$blog" | tr -d '\r' >drain.log
awk -v n="$N" -v pad="$pad" 'BEGIN { for (i = 1; i <= n; i++) printf "bulk %06d %s\n", i, pad }' >want.txt
grep -aoE 'bulk [0-9]{6} [.]*' drain.log >got.txt
bytes=$(wc -c <want.txt)
if ! cmp -s want.txt got.txt; then
    note "got $(wc -l <got.txt) bulk lines, want $N"; diff want.txt got.txt | head -20
    fail "bulk lines in the drain log differ from the expected $bytes bytes"
fi
ok "drain log: all $N bulk lines ($bytes bytes) byte-exact, in order, in $((ms / 1000)) s"
check_ticks drain.log "$g" || fail "ticks in this drain not consecutive"
first=$(ticks drain.log "$g" | head -1)
[ "$first" -ge "$((k + 1))" ] && [ "$first" -le "$((k + 2))" ] ||
    fail "this drain starts at tick $first, xenconsoled's log ended at $k"
ok "ticks $first..$(last_tick drain.log "$g") consecutive, continuing xenconsoled's $k; $(wc -c <drain.log) bytes drained"

xcinspect disconnect "$g" || fail "xcinspect disconnect exited $?"
kill $cpid 2>/dev/null
start_xenconsoled
