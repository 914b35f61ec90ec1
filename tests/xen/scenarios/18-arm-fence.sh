#!/bin/bash
# xci-hosts: xenarm
# xci-timeout: 150
# The arm64 fence really runs: on aarch64 dom0 the platform selects `dmb ish; ret`
# (bf3b03d5 c0035fd6) as machine code on a read+exec page (fence_kind() says so), the
# bytes on that page are exactly those, and xcinspect's real backend (engine.service,
# in this process, xenconsoled stopped) drains the guest's full ring with every ring
# barrier executing that page: a counting wrapper around the page's function pointer
# sees its calls (over a hundred), the ring empties, the drained ticks are consecutive. Fails if
# any other fence (none, TSO, x86) is the one in use.
. "$XCI_LIB"
d=$XCI_DOMID1

python3 - <<'EOF' || fail "fence selection on aarch64"
import ctypes, platform
from xcinspect.platform import fence
from xcinspect.engine import service
m = platform.machine()
f = fence.get_fence()
print("machine", m, "| fence_kind():", fence.fence_kind(), "| how:", f.how, "| page", hex(f.address or 0))
assert m == "aarch64", f"dom0 is {m}, not aarch64"
assert f.kind == fence.KIND_A64_DMB, f"fence in use is {f.describe()!r}, not {fence.KIND_A64_DMB!r}"
assert f.safe and fence.write_paths_safe() and f.address
code = ctypes.string_at(f.address, 8)
print("code on the page:", code.hex())
assert code == bytes.fromhex("bf3b03d5c0035fd6"), code.hex()     # dmb ish; ret
for line in open("/proc/self/maps"):
    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
    if lo <= f.address < hi:
        print("mapping:", line.strip())
        assert line.split()[1] == "r-xp", line          # never writable and executable
        break
else:
    raise SystemExit("the fence page is not in /proc/self/maps")
assert service.ring_fence() is fence.full_fence, service.ring_fence()
import time
t0 = time.perf_counter(); n = 200000
for _ in range(n):
    fence.full_fence()
print(f"{n} calls of full_fence(): {(time.perf_counter() - t0) / n * 1e6:.2f} us each")
EOF
ok "aarch64: fence_kind() is '$(python3 -c 'from xcinspect.platform.fence import fence_kind; print(fence_kind())')'; page holds dmb ish; ret (r-xp)"

stop_xenconsoled
wait_for 20 ring_full "$d" || fail "guest1 ring not full after stopping xenconsoled"
ok "xenconsoled stopped, guest1 ring full: $(ring "$d")"

python3 - "$d" <<'EOF' >backend.txt 2>&1 || { cat backend.txt; fail "in-process backend with a counting fence"; }
import json, sys, threading, time
from xcinspect.platform import fence
from xcinspect.platform.dom0 import Dom0Platform
from xcinspect.engine import service
d = int(sys.argv[1])
f = fence.get_fence()
assert f.kind == fence.KIND_A64_DMB, f.describe()
machine_code = f.fn                       # the cffi pointer to the dmb ish page
calls = 0
def counted():
    global calls
    calls += 1
    machine_code()
f.fn = counted                            # full_fence() -> get_fence().fn()
import os
p = Dom0Platform()
log = service.log_path(p, d)
start = os.path.getsize(log) if os.path.exists(log) else 0   # an earlier scenario's drain
b = service.Backend(p, d, sync=False)
def stopper():      # once a full ring's worth and more went through (or after 5 min)
    for _ in range(3000):
        if b.drained >= 4096:
            break
        time.sleep(0.1)
    time.sleep(1)
    b.stop = True
threading.Thread(target=stopper, daemon=True).start()
rc = b.run()
print(json.dumps({"rc": rc, "fence_calls": calls, "drained": b.drained,
                  "log": log, "start": start}))
EOF
cat backend.txt
res=$(tail -1 backend.txt)
jq -e . <<<"$res" >/dev/null || fail "no result from the in-process backend"
[ "$(jq .rc <<<"$res")" = 0 ] || fail "backend exited $(jq .rc <<<"$res")"
calls=$(jq .fence_calls <<<"$res"); drained=$(jq .drained <<<"$res")
[ "$drained" -ge 2048 ] || fail "backend drained only $drained bytes"
[ "$calls" -ge 10 ] || fail "only $calls calls of the machine-code fence while draining $drained bytes"
ok "xcinspect's backend drained $drained bytes executing the dmb ish page $calls times"
tail -c +"$(( $(jq .start <<<"$res") + 1 ))" "$(jq -r .log <<<"$res")" >drain.log
blog=drain.log
check_ticks "$blog" "$XCI_GUEST1" || { head -c 1500 "$blog"; fail "ticks in $blog not consecutive"; }
ok "this drain in $(jq -r .log <<<"$res"): ticks $(ticks "$blog" "$XCI_GUEST1" | head -1)..$(last_tick "$blog" "$XCI_GUEST1") consecutive"
start_xenconsoled
