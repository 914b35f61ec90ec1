"""Crash safety of the drain: SIGKILL the backend at random moments while it services a
console, restart it, 100 times; the drain log holds every byte the guest wrote exactly
once and in order.

The set-up is a world of one console: the sim xenstored, the console's keys, a page file
-- and the test as the guest: a producer thread writes a numbered, deterministic stream
into the out ring with ``RingIO`` (the guest side), blocks while the ring is full, and
kicks the backend over the guest's end of the event channel. The backend is the real
one, ``python -m xcinspect --sim DIR _backend DOMID`` (what ``connect`` spawns), with real
``fdatasync`` on the test's file system. Most kills land while it drains; some during its
start-up (before it reported ready), where it reads the log to find where it stopped.

Why this can hold (``journal.py``): bytes are appended to ``console.N.log`` (and
fdatasync'd) before ``out_cons`` moves past them, and ``console.N.log.idx`` maps log
offsets to ring indices, so a restarted backend knows the ring index of the last byte on
disk: bytes between ``out_cons`` and that index are already in the log and are skipped,
not written again. A gap (bytes lost to someone else draining the ring) would start a
new segment; here there must be exactly one.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
import zlib

from xcinspect.core.ring import IDX, IDX_OFFSET, PAGE_SIZE, RingIO, blank_page, parse_page
from xcinspect.engine.journal import Journal
from xcinspect.platform.xenstore import XsClient
from xcinspect.sim import xenstored
from xcinspect.sim.common import Paths, world_id_for, write_world
from xcinspect.sim.evtchn import GuestEventChannel

DOMID, PORT = 5, 2
TRIALS = int(os.environ.get("XCI_CRASH_TRIALS", "100"))


def record(n: int) -> bytes:
    """Record ``n`` of the guest's stream: numbered, self-checking, of varying length."""
    body = b"x" * (n * 7919 % 97)
    return b"%08d %08x %s\n" % (n, zlib.crc32(b"%d" % n + body), body)


class OneConsoleWorld:
    def __init__(self, directory: str) -> None:
        self.paths = Paths(directory)
        self.paths.makedirs()
        self.dir = self.paths.dir
        self.world_id = world_id_for(self.dir)
        write_world(self.dir, {"version": 1, "world_id": self.world_id, "xen_version": "sim",
                               "default_layout": "none", "controller_pid": None, "domains": {}})
        self.xenstored = xenstored.spawn(self.dir)
        with open(self.paths.page(DOMID), "wb") as f:
            f.write(blank_page())
        with open(self.paths.layout(DOMID), "w") as f:
            f.write("none\n")
        xs = XsClient(self.paths.socket)
        base = f"/local/domain/{DOMID}"
        for key, value in (("name", "crashy"), ("domid", str(DOMID)), ("console/port", str(PORT)),
                           ("console/ring-ref", "4242"), ("console/type", "xenconsoled"), ("console/tty", "")):
            xs.write(f"{base}/{key}", value)
        xs.close()

    def stop(self) -> None:
        self.xenstored.terminate()
        try:
            self.xenstored.wait(10)
        except subprocess.TimeoutExpired:
            self.xenstored.kill()
            self.xenstored.wait()


class Guest(threading.Thread):
    """The guest kernel's console writer: the stream into ``out``, blocking when full."""

    def __init__(self, world: OneConsoleWorld, rate: int = 400_000) -> None:
        super().__init__(daemon=True)
        import mmap

        fd = os.open(world.paths.page(DOMID), os.O_RDWR)
        self.mm = mmap.mmap(fd, PAGE_SIZE)
        os.close(fd)
        self.ring = RingIO(self.mm)
        self.ev = GuestEventChannel(world.world_id, DOMID, PORT)
        self.rate = rate  # bytes per second at most (keeps the log a few MiB)
        self.written = bytearray()
        self.stop = threading.Event()
        self.n = 0

    def run(self) -> None:
        pending = b""
        t0 = time.monotonic()
        while not self.stop.is_set():
            if not pending:
                self.n += 1
                pending = record(self.n)
            if len(self.written) > self.rate * (time.monotonic() - t0):
                time.sleep(0.002)
                continue
            k = self.ring.write_out(pending)
            if k:
                self.written += pending[:k]
                pending = pending[k:]
                self.ev.notify()
            else:  # full: like hvc_xen, wait for the backend (event or a poll)
                select.select([self.ev.sock], [], [], 0.01)
                self.ev.pending()
        # finish the record under way, so the stream ends on a record boundary
        while pending:
            k = self.ring.write_out(pending)
            self.written += pending[:k]
            pending = pending[k:]
            self.ev.notify()
            if not k:
                time.sleep(0.005)

    def close(self) -> None:
        self.ev.close()
        self.mm.close()


def start_backend(world: OneConsoleWorld) -> tuple[subprocess.Popen, int]:
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "xcinspect", "--sim", world.dir, "_backend", str(DOMID),
                             "--status-fd", str(w)], pass_fds=(w,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(w)
    return proc, r


def wait_ready(r: int, timeout: float = 20.0) -> str:
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        assert left > 0, "the backend did not report"
        rr, _, _ = select.select([r], [], [], left)
        if rr:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode()


def persisted_ahead(world: OneConsoleWorld, mm) -> int:
    """Bytes on disk past the ring's out_cons: a kill landed between append and commit."""
    log = os.path.join(world.paths.logs, f"console.{DOMID}.log")
    if not os.path.exists(log + ".idx"):
        return 0
    j = Journal(log, sync=False)
    try:
        end = j.end_index
    finally:
        j.close()
    _, _, cons, prod = IDX.unpack_from(mm, IDX_OFFSET)
    ahead = (end - cons) % 2**32 if end is not None else 0
    return ahead if ahead <= (prod - cons) % 2**32 else 0


def test_kill_9_at_random_moments_loses_and_repeats_nothing(tmp_path):
    world = OneConsoleWorld(str(tmp_path / "world"))
    guest = Guest(world)
    rng = random.Random(int(os.environ.get("XCI_CRASH_SEED", "6")))
    proc = None
    stats = {"killed_while_serving": 0, "killed_starting": 0, "resumed_past_persisted": 0}
    t0 = time.monotonic()
    try:
        guest.start()
        for _ in range(TRIALS):
            stats["resumed_past_persisted"] += persisted_ahead(world, guest.mm) > 0
            proc, r = start_backend(world)
            try:
                if rng.random() < 0.2:  # a kill during start-up (resume, segment, flag)
                    time.sleep(rng.uniform(0.0, 0.15))
                    stats["killed_starting"] += 1
                else:
                    status = wait_ready(r)
                    assert status.startswith("OK"), (status, proc.stderr.read().decode() if proc.poll() else "")
                    time.sleep(rng.uniform(0.0, 0.08))
                    stats["killed_while_serving"] += 1
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                stderr = proc.stderr.read().decode()
                assert "Traceback" not in stderr, stderr
            finally:
                os.close(r)
                proc.stderr.close()
        # one last backend; the guest stops (finishing the record under way, which needs
        # the backend when the ring is full: stopping it first let that tail land in the
        # ring after the drain below had seen it empty); the backend drains everything
        stats["resumed_past_persisted"] += persisted_ahead(world, guest.mm) > 0
        proc, r = start_backend(world)
        try:
            assert wait_ready(r).startswith("OK")
            guest.stop.set()
            guest.join(30)
            assert not guest.is_alive(), "the guest did not finish its last record"
            deadline = time.monotonic() + 30
            while parse_page(guest.mm).out.fill:
                assert time.monotonic() < deadline, "the last backend did not drain the ring"
                guest.ev.notify()
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            os.close(r)
            proc.stderr.close()
        elapsed = time.monotonic() - t0
        log_path = os.path.join(world.paths.logs, f"console.{DOMID}.log")
        with open(log_path, "rb") as f:
            log = f.read()
        written = bytes(guest.written)
        if log != written:
            at = next((i for i, (a, b) in enumerate(zip(log, written)) if a != b), min(len(log), len(written)))
            raise AssertionError(f"log ({len(log)} bytes) differs from what the guest wrote ({len(written)} "
                                 f"bytes) at {at}: log {log[at - 40: at + 40]!r} vs {written[at - 40: at + 40]!r}")
        # every record, once, in order, intact
        lines = log.split(b"\n")[:-1]
        assert len(lines) == guest.n
        for n, line in enumerate(lines, 1):
            assert line + b"\n" == record(n), (n, line[:40])
        with open(log_path + ".idx") as f:
            segments = [json.loads(x) for x in f]
        assert [s["reason"] for s in segments] == ["start"] and segments[0]["offset"] == 0
        print(f"\n{TRIALS} kills in {elapsed:.1f} s: {stats}, {len(log)} bytes, {guest.n} records")
        if TRIALS >= 100:
            assert stats["resumed_past_persisted"] >= 1, stats  # the interesting crash point was hit
    finally:
        guest.stop.set()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        guest.join(5)
        guest.close()
        world.stop()
