"""Cross-process producer/consumer stress through a page file and the sim event channels:
>= 10 MB each way at once, byte-exact, with the indices starting just below 2^32."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

from xcinspect.core import ring
from xcinspect.sim import stress
from xcinspect.sim.evtchn import port_bound

MB = 1 << 20
OUT_BYTES = 10 * MB + 12345
IN_BYTES = 10 * MB + 54321


def test_ring_stress_both_ways_across_the_wrap(tmp_path):
    page = tmp_path / "dom1.page"
    start_out = (1 << 32) - 3 * MB - 777  # the out indices wrap a few MB in
    start_in = (1 << 32) - 1 * MB - 333
    page.write_bytes(bytes(ring.blank_page(out_cons=start_out, out_prod=start_out, in_cons=start_in, in_prod=start_in)))
    world_id = "stress" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:8]
    seed_out, seed_in = 1234, 1234  # the guest draws both its stream and its chunking from it

    r, w = os.pipe()
    guest = subprocess.Popen(
        [sys.executable, "-m", "xcinspect.sim.stress", "--page", str(page), "--world-id", world_id,
         "--domid", "1", "--port", "2", "--out-bytes", str(OUT_BYTES), "--in-bytes", str(IN_BYTES),
         "--seed", str(seed_out), "--ready-fd", str(w)],
        stdout=subprocess.PIPE, pass_fds=(w,), text=True,
    )
    os.close(w)
    try:
        assert os.read(r, 1) == b"r", "the guest half did not start"
        os.close(r)
        t0 = time.monotonic()
        back = stress.run_backend(str(page), world_id, 1, 2, OUT_BYTES, IN_BYTES, seed_in + 1,
                                  deadline=time.monotonic() + 60)
        out, _ = guest.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if guest.poll() is None:
            guest.kill()
            guest.wait()
    assert guest.returncode == 0
    g = json.loads(out)

    # guest -> out -> backend: every byte, once, in order
    assert back["out_len"] == OUT_BYTES
    assert back["out_sha256"] == hashlib.sha256(stress.stream(seed_out, OUT_BYTES)).hexdigest()
    # backend -> in -> guest
    assert g["in_len"] == IN_BYTES
    assert g["in_sha256"] == hashlib.sha256(stress.stream(seed_in + 1, IN_BYTES)).hexdigest()

    # the indices crossed 2^32 and ended exactly where the byte counts say
    in_cons, in_prod, out_cons, out_prod = ring.IDX.unpack_from(page.read_bytes(), ring.IDX_OFFSET)
    assert out_cons == out_prod == (start_out + OUT_BYTES) & ring.MASK32
    assert in_cons == in_prod == (start_in + IN_BYTES) & ring.MASK32
    assert out_prod < start_out and in_prod < start_in  # wrapped

    # wakeups came from event channel notifications, not from the poll fallback
    assert g["wakeups"] + back["wakeups"] > 100
    assert g["timeouts"] + back["timeouts"] <= 5, (g, back)
    # both ends unbound on exit (the names vanish with their owners)
    assert not port_bound(world_id, 1, 2)
    mb_s = (OUT_BYTES + IN_BYTES) / MB / took
    print(f"\nstress: {2 * 10} MB through one page in {took:.2f} s ({mb_s:.1f} MB/s total)")
    assert took < 60
