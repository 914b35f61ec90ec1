"""Cross-process ring stress: the guest half (``python -m xcinspect.sim.stress ...``) and a
backend half (``run_backend``), talking through one page file and the sim event channels.

Both directions run at once: the guest produces a seeded pseudo-random stream into
``out`` and consumes ``in``; the backend drains ``out`` and produces another seeded stream
into ``in``. Each side hashes what it receives; chunk sizes are random so every offset and
the 2^32 index wrap get exercised. Wakeups come from event channel notifications; a
slow poll is only the fallback (and counted, so a test can check it was not needed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import random
import select
import sys
import time

from xcinspect.core.ring import OUT_SIZE, PAGE_SIZE, RingIO

FALLBACK = 0.05


def stream(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _map(path: str) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, PAGE_SIZE, access=mmap.ACCESS_WRITE)
    finally:
        os.close(fd)


def _wait(ev) -> bool:
    """Wait for the other side's notification (or the fallback timeout) and consume it;
    True when it woke us."""
    r, _, _ = select.select([ev.fileno()], [], [], FALLBACK)
    ev.pending()
    return bool(r)


def run_guest(page: str, world_id: str, domid: int, port: int, out_bytes: int, in_bytes: int,
              seed: int, ready_fd: int | None = None) -> dict:
    from xcinspect.sim.evtchn import GuestEventChannel

    mm = _map(page)
    ring = RingIO(mm)
    ev = GuestEventChannel(world_id, domid, port)
    if ready_fd is not None:
        os.write(ready_fd, b"r")
        os.close(ready_fd)
    data = stream(seed, out_bytes)
    rnd = random.Random(seed ^ 0x5A5A)
    sent = 0
    got = 0
    h = hashlib.sha256()
    timeouts = wakeups = 0
    t0 = time.monotonic()
    while sent < out_bytes or got < in_bytes:
        progress = False
        if sent < out_bytes:
            n = ring.write_out(data[sent: sent + rnd.randint(1, OUT_SIZE + 500)])
            if n:
                sent += n
                progress = True
        chunk = ring.read_in()
        if chunk:
            h.update(chunk)
            got += len(chunk)
            progress = True
        if progress:
            ev.notify()
            continue
        if _wait(ev):
            wakeups += 1
        else:
            timeouts += 1
    ev.notify()
    result = {"in_len": got, "in_sha256": h.hexdigest(), "sent": sent, "wakeups": wakeups,
              "timeouts": timeouts, "seconds": time.monotonic() - t0}
    ev.close()
    mm.close()
    return result


def run_backend(page: str, world_id: str, domid: int, port: int, out_bytes: int, in_bytes: int,
                seed: int, deadline: float) -> dict:
    """Drain ``out_bytes`` from ``out`` and feed ``in_bytes`` into ``in`` (the backend half)."""
    from xcinspect.sim.evtchn import SimEventChannel

    mm = _map(page)
    ring = RingIO(mm)
    ev = SimEventChannel(world_id, domid, port)
    data = stream(seed, in_bytes)
    rnd = random.Random(seed ^ 0xA5A5)
    fed = 0
    got = 0
    h = hashlib.sha256()
    timeouts = wakeups = 0
    t0 = time.monotonic()
    try:
        while got < out_bytes or fed < in_bytes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"stress stalled: drained {got}/{out_bytes}, fed {fed}/{in_bytes}")
            progress = False
            limit = rnd.choice((None, rnd.randint(1, OUT_SIZE)))
            chunk, new_cons = ring.peek_out(limit)
            if chunk:
                h.update(chunk)  # "persist" first ...
                ring.commit_out(new_cons)  # ... then release the space
                got += len(chunk)
                progress = True
            if fed < in_bytes:
                n = ring.write_in(data[fed: fed + rnd.randint(1, 1500)])
                if n:
                    fed += n
                    progress = True
            if progress:
                ev.notify()
                continue
            if _wait(ev):
                wakeups += 1
            else:
                timeouts += 1
            ev.unmask()
    finally:
        ev.close()
    result = {"out_len": got, "out_sha256": h.hexdigest(), "fed": fed, "wakeups": wakeups,
              "timeouts": timeouts, "seconds": time.monotonic() - t0}
    mm.close()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xcinspect.sim.stress")
    ap.add_argument("--page", required=True)
    ap.add_argument("--world-id", required=True)
    ap.add_argument("--domid", type=int, default=1)
    ap.add_argument("--port", type=int, default=2)
    ap.add_argument("--out-bytes", type=int, required=True)
    ap.add_argument("--in-bytes", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ready-fd", type=int)
    a = ap.parse_args(argv)
    res = run_guest(a.page, a.world_id, a.domid, a.port, a.out_bytes, a.in_bytes, a.seed, a.ready_fd)
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
