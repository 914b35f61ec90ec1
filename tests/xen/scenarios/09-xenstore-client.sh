#!/bin/bash
# xci-timeout: 200
# xcinspect's own xenstore client against the host's real xenstored: a node with more
# children than fit one 4096-byte reply (a dom0 with ~1,040+ domains has that under
# /local/domain) is listed whole (DIRECTORY, or DIRECTORY_PART after E2BIG, whichever
# this xenstored answers) and agrees with what was written; pipelined reads and watches
# agree with xenstore-read and fire once each; a read-only client sends no write.
. "$XCI_LIB"
base=/tool/xcinspect-e2e
xenstore-rm "$base" 2>/dev/null || true
# 1,200 children with 12-character names: ~15.6 KB of listing (xenstore-write takes pairs)
args=()
for i in $(seq 1 1200); do printf -v n %06d "$i"; args+=("$base/child-$n" "v$i"); done  # no fork a key
for ((k = 0; k < ${#args[@]}; k += 400)); do xenstore-write "${args[@]:k:400}" || fail "xenstore-write"; done
for i in $(seq 1 1200); do printf 'child-%06d\n' "$i"; done >want.txt
note "xenstored here: $(readlink /proc/$(pidof xenstored oxenstored | awk '{print $1}')/exe 2>/dev/null)"
# (Xen's own xenstore-list cannot list this node here: oxenstored sends the 15.6 KB list in
# one reply, longer than XENSTORE_PAYLOAD_MAX, and libxenstore refuses it.)
if xenstore-list "$base" >/dev/null 2>cli.err; then note "xenstore-list lists it"; else note "xenstore-list fails: $(head -1 cli.err)"; fi
[ "$(xenstore-read "$base/child-001200")" = v1200 ] || fail "the 1,200 keys were not written"

python3 - "$base" <<'EOF' || fail "XsClient against the real xenstored"
import sys, time
from xcinspect.platform.dom0 import Dom0Platform
from xcinspect.platform.xenstore import NoEntry, Op, XenstoreError, XenstoreReplyError, XsClient
base = sys.argv[1]
xs = XsClient(Dom0Platform().xenstore_path())
try:
    xs._request(Op.DIRECTORY, (base + "\0").encode())
    how = "one DIRECTORY reply longer than 4096 bytes"
except XenstoreReplyError as exc:
    assert exc.code == "E2BIG", exc.code
    how = "E2BIG, then DIRECTORY_PART"
names = xs.list(base)
with open("got.txt", "w") as f:
    f.write("".join(n + "\n" for n in sorted(names)))
print(f"listed {len(names)} children ({how})")
vals = xs.read_many([f"{base}/{n}" for n in sorted(names)] + [f"{base}/no-such-key"])
assert vals[-1] is None and all(v == "v%d" % int(n.split("-")[1]) for n, v in zip(sorted(names), vals)), vals[:3]
print("read_many of 1,201 keys agrees")
pairs = [(f"{base}/{n}", f"t{n}") for n in sorted(names)[:200]]
xs.watch_many(pairs)
got, end = [], time.monotonic() + 20
while len(got) < 200 and time.monotonic() < end:
    got += xs.events(1.0)
assert sorted(got) == sorted(pairs), (len(got), got[:3])
print("200 pipelined watches fired once each on registration")
ro = XsClient(Dom0Platform().xenstore_path(), read_only=True)
try:
    ro.write(f"{base}/child-000001", "x")
    raise SystemExit("read-only client wrote")
except XenstoreError as exc:
    assert "read-only" in str(exc)
assert ro.read(f"{base}/child-000001") == "v1"
print("read-only client refused to write, value unchanged")
EOF
diff want.txt got.txt >/dev/null || fail "XsClient's listing differs from the keys written: $(diff want.txt got.txt | head -5)"
ok "XsClient.list of 1,200 children matches the keys written"
xenstore-rm "$base"
