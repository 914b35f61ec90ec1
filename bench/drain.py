"""Drain throughput: xcinspect as the backend of one sim console whose guest writes as fast
as it can, against a minimal C consumer over the same page, the same event channel and
the same producer, measured in the same run.

Goal (issue 7): >= 3 MiB/s (ten times xenconsoled's ceiling of 30 events per 200 ms, at
most one 2 KiB ring per event: 300 KiB/s) and >= 0.5x the C consumer, byte-exact.

Set-up: a bench world (``benchworld.py``) with one *external* domain: its console keys,
page and event channel are the sim's, but no sim guest runs for it and xenconsoled is not
set up for it. The benchmark's producer (``--producer``, a separate Python process)
plays the guest: it writes a seeded pseudo-random stream into ``out`` with ``RingIO``
and notifies through the guest's end of the sim event channel after every write; when
the ring is full it waits for the consumer's notification. It times from its first
write until ``out_cons`` has caught up with the last byte (the consumer had persisted
everything), so both consumers are timed by the same clock in the same process.

Consumers, each fed the same stream in turn (rounds interleaved, best round kept):

* C: ``drain_consumer.c`` (built here with ``cc -O2``): copy, write(2) to a file,
  [fdatasync,] publish out_cons, notify.
* xcinspect: ``python -m xcinspect --sim DIR _backend DOMID [--no-sync]``, the backend
  ``xcinspect connect`` starts, draining into its journal (console.DOMID.log).

Both modes are reported: with fdatasync (xcinspect's default: the bytes are on disk
before out_cons moves; the C consumer then fdatasyncs each chunk too) and --no-sync. The
goal is judged on --no-sync, the mode that compares with xenconsoled (which never syncs).
Byte-exactness: the C consumer's output file and xcinspect's log must equal the stream.

Usage: python bench/drain.py [--mib 24] [--sync-mib 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import common  # noqa: F401  (sys.path)
from common import custom_world, machine, verdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOMID = 1
MIB = 1 << 20


def stream(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


# -- the producer (the guest), in its own process ---------------------------------------------
def producer(page: str, world_id: str, domid: int, port: int, total: int, seed: int) -> int:
    from xcinspect.core.ring import IDX, IDX_OFFSET, OUT_SIZE, PAGE_SIZE, RingIO
    from xcinspect.sim.evtchn import GuestEventChannel

    fd = os.open(page, os.O_RDWR)
    mm = mmap.mmap(fd, PAGE_SIZE, access=mmap.ACCESS_WRITE)
    os.close(fd)
    ring = RingIO(mm)
    ev = GuestEventChannel(world_id, domid, port)
    data = memoryview(stream(seed, total))
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    write_out, notify, pending, evfd = ring.write_out, ev.notify, ev.pending, ev.fileno()
    sent = wakeups = fallbacks = 0
    t0 = time.perf_counter()
    while sent < total:
        n = write_out(data[sent: sent + OUT_SIZE])
        if n:
            sent += n
            notify()
            continue
        r, _, _ = select.select([evfd], [], [], 0.05)
        if r:
            wakeups += 1
        else:
            fallbacks += 1
        pending()
    while True:  # until the consumer has taken (and, for xcinspect, persisted) the last byte
        _, _, cons, prod = IDX.unpack_from(mm, IDX_OFFSET)
        if cons == prod:
            break
        r, _, _ = select.select([evfd], [], [], 0.05)
        if not r:
            fallbacks += 1
        pending()
    secs = time.perf_counter() - t0
    print(json.dumps({"bytes": sent, "seconds": secs, "wakeups": wakeups, "fallbacks": fallbacks}), flush=True)
    ev.close()
    return 0


class Producer:
    def __init__(self, page: str, world_id: str, port: int, total: int, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--producer", page, world_id, str(DOMID), str(port),
             str(total), str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"producer did not start: {line!r}")

    def run(self, timeout: float) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("the producer did not finish in time (consumer stalled?)") from None
        return json.loads(out.strip().splitlines()[-1])


# -- consumers -----------------------------------------------------------------------------------
def build_c(tmp: str) -> str:
    exe = os.path.join(tmp, "drain_consumer")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("drain: no C compiler (cc) for the baseline consumer")
    subprocess.run([cc, "-O2", "-Wall", "-o", exe, os.path.join(HERE, "drain_consumer.c")], check=True)
    return exe


def run_c(exe: str, w, port: int, total: int, seed: int, sync: bool, out: str) -> dict:
    from xcinspect.sim.evtchn import channel_name

    backend = channel_name(w.world_id, DOMID, port, "backend")[1:].decode()
    guest = channel_name(w.world_id, DOMID, port, "guest")[1:].decode()
    prod = Producer(w.paths.page(DOMID), w.world_id, port, total, seed)
    c = subprocess.Popen([exe, w.paths.page(DOMID), out, backend, guest, str(total), "1" if sync else "0"],
                         stdout=subprocess.PIPE, text=True)
    assert c.stdout.readline().strip() == "ready"
    res = prod.run(timeout=120)
    c_out, _ = c.communicate(timeout=30)
    res["consumer_cpu"] = float(c_out.split()[4])  # the consumer's own CPU time
    with open(out, "rb") as f:
        res["exact"] = f.read() == stream(seed, total)
    os.unlink(out)
    return res


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def run_xcinspect(w, port: int, total: int, seed: int, sync: bool) -> dict:
    log = os.path.join(w.paths.logs, f"console.{DOMID}.log")
    for p in (log, log + ".idx"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    prod = Producer(w.paths.page(DOMID), w.world_id, port, total, seed)
    r, wfd = os.pipe()
    cmd = [sys.executable, "-m", "xcinspect", "--sim", w.dir, "_backend", str(DOMID), "--status-fd", str(wfd)]
    if not sync:
        cmd.append("--no-sync")
    b = subprocess.Popen(cmd, pass_fds=(wfd,), cwd=ROOT, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(wfd)
    status = b""
    while b"\n" not in status:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        status += chunk
    os.close(r)
    if not status.startswith(b"OK"):
        b.kill()
        raise RuntimeError(f"xcinspect backend did not start: {status!r} {b.stderr.read()!r}")
    cpu0 = proc_cpu(b.pid)
    res = prod.run(timeout=300)
    res["consumer_cpu"] = proc_cpu(b.pid) - cpu0
    b.send_signal(signal.SIGTERM)
    _, err = b.communicate(timeout=15)
    with open(log, "rb") as f:
        res["exact"] = f.read() == stream(seed, total)
    res["stderr"] = err.decode(errors="replace").strip()
    return res


def rate(res: dict) -> float:
    return res["bytes"] / res["seconds"] / MIB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=float, default=24.0, help="stream size per --no-sync run (MiB)")
    ap.add_argument("--sync-mib", type=float, default=4.0, help="stream size per fdatasync run (MiB)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print(f"Drain, one sim console, Python producer (RingIO + sim event channel); {machine()}")
    domains = {DOMID: {"name": "drain", "consoled": False, "behaviour": "quiet"},
               2: {"name": "bystander", "behaviour": "quiet"}}
    tmp = tempfile.mkdtemp(prefix="xcinspect-drain-")
    try:
        exe = build_c(tmp)
        with custom_world(domains, external={DOMID}) as w:
            port = int(w.domains[DOMID]["port"])
            results: dict[tuple[str, bool], list[dict]] = {}
            for rnd in range(a.rounds):
                for sync in (False, True):
                    total = int((a.sync_mib if sync else a.mib) * MIB)
                    seed = 1000 * rnd + (7 if sync else 3)
                    results.setdefault(("c", sync), []).append(
                        run_c(exe, w, port, total, seed, sync, os.path.join(tmp, "c.out")))
                    results.setdefault(("xcinspect", sync), []).append(run_xcinspect(w, port, total, seed, sync))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def best(key):
        return max(results[key], key=rate)

    exact = all(r["exact"] for rs in results.values() for r in rs)
    print(f"  {'mode':<10} {'consumer':<10} {'MiB/s best':>10} {'all rounds':>24} {'CPU s/MiB':>9} {'fallbacks':>9}")
    rows = {}
    for sync in (False, True):
        for who in ("c", "xcinspect"):
            rs = results[(who, sync)]
            b = best((who, sync))
            rows[(who, sync)] = rate(b)
            cpu_per_mib = b["consumer_cpu"] / (b["bytes"] / MIB)
            rounds = " ".join(f"{rate(r):6.1f}" for r in rs)
            print(f"  {'fdatasync' if sync else '--no-sync':<10} {who:<10} {rate(b):10.2f} {rounds:>24} "
                  f"{cpu_per_mib:9.4f} {sum(r['fallbacks'] for r in rs):9d}")
    for who, sync in results:
        for r in results[(who, sync)]:
            if r.get("stderr"):
                print(f"  ({who} stderr: {r['stderr'][:200]})")
    ns = rows[("xcinspect", False)]
    ratio = ns / rows[("c", False)]
    sy = rows[("xcinspect", True)]
    print(f"  byte-exact (every run, both consumers): {'yes' if exact else 'NO'}")
    print(f"  --no-sync : xcinspect {ns:.2f} MiB/s (goal >= 3 MiB/s) {verdict(ns >= 3.0)}; "
          f"{ratio:.2f}x the C consumer (goal >= 0.5x) {verdict(ratio >= 0.5)}")
    print(f"  fdatasync : xcinspect {sy:.2f} MiB/s = {sy / rows[('c', True)]:.2f}x the C consumer syncing each "
          f"chunk too (>= 3 MiB/s: {verdict(sy >= 3.0)})")
    return 0 if exact else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--producer":
        page, world_id, domid, port, total, seed = sys.argv[2:8]
        sys.exit(producer(page, world_id, int(domid), int(port), int(total), int(seed)))
    sys.exit(main())
