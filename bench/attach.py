"""Attach latency: one keystroke to its echo through the sim guest, p50 and p99 over 1,000
keystrokes, via both attach paths, against a bare pty echo measured in the same run.

Goal (issue 7): p99 <= 20 ms.

Set-up: a bench world with two quiet guests (the sim guest's tty discipline echoes each
typed character): dom 1 serviced by the sim xenconsoled, dom 2 by no one until the
benchmark runs ``Actions.connect`` (xcinspect's own backend daemon). Sessions come from
``Actions.attach`` exactly as the CLI and the TUI get them:

* pty:     TtySession on xenconsoled's pty (client -> pty -> xenconsoled -> ``in`` ->
           guest -> ``out`` -> xenconsoled -> pty -> client);
* backend: SocketSession on xcinspect's backend socket (client -> socket -> backend ->
           ``in`` -> guest -> ``out`` -> backend -> socket -> client).

Each keystroke: ``session.write(one byte)``, then wait on the session's fd and
``session.read()`` until that byte comes back; the time between is one sample. Keys are
paced (``--gap`` between an echo and the next key; about 45 keys/s by default, a fast
typist) because the sim xenconsoled, like the real one, rate-limits a console to 30
events per 200 ms; every 60 keys a ^U (line kill) keeps the guest's line short (not timed).

Baseline: the same 1,000 paced keystrokes on a bare pty whose other end is a minimal
Python process that echoes each byte back (the machine's cross-process wake-up latency
right now); ratios are against its p50 and p99.

Usage: python bench/attach.py [--keys 1000] [--gap 0.02]
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import time
import tty

import common  # noqa: F401  (sys.path)
from common import custom_world, machine, percentile, verdict

KILL_EVERY = 60
LETTERS = b"abcdefghijklmnopqrstuvwxyz0123456789"


def drain(session, quiet: float = 0.3, limit: float = 5.0) -> bytes:
    """Read until nothing arrived for ``quiet`` seconds."""
    fd = session.fileno()
    got = b""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], quiet)
        if not r:
            break
        got += session.read()
    return got


def wait_for(session, want: bytes, timeout: float = 5.0) -> None:
    fd = session.fileno()
    got = b""
    end = time.monotonic() + timeout
    while want not in got:
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no echo of {want!r} within {timeout:g} s (got {got[-80:]!r})")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            got += session.read()


def keystrokes(session, n: int, gap: float, guest: bool = True) -> list[float]:
    lat = []
    fd = session.fileno()
    typed = 0
    for i in range(n):
        if typed == KILL_EVERY:
            session.write(b"\x15")  # ^U: the guest erases the line (b"\b \b" per char)
            wait_for(session, b"\b \b" * typed if guest else b"\x15")
            drain(session, quiet=0.005)
            typed = 0
        ch = LETTERS[i % len(LETTERS): i % len(LETTERS) + 1]
        time.sleep(gap)
        t0 = time.perf_counter()
        session.write(ch)
        got = b""
        while ch not in got:
            r, _, _ = select.select([fd], [], [], 5.0)
            if not r:
                raise TimeoutError(f"no echo of key {i} ({ch!r})")
            got += session.read()
        lat.append(time.perf_counter() - t0)
        typed += 1
    session.write(b"\x15")
    drain(session, quiet=0.05)
    return lat


class PtyEcho:
    """The baseline: a bare pty and a minimal Python process echoing it."""

    CHILD = (
        "import os,sys\n"
        "fd=int(sys.argv[1])\n"
        "while True:\n"
        "    b=os.read(fd,64)\n"
        "    if not b: break\n"
        "    os.write(fd,b)\n"
    )

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(self.master)
        self.proc = subprocess.Popen([sys.executable, "-c", self.CHILD, str(self.master)], pass_fds=(self.master,))
        self.fd = slave
        os.set_blocking(slave, False)

    def fileno(self) -> int:
        return self.fd

    def read(self) -> bytes:
        try:
            return os.read(self.fd, 65536)
        except BlockingIOError:
            return b""

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.fd)
        os.close(self.master)


def stats(lat: list[float]) -> tuple[float, float, float]:
    return percentile(lat, 50), percentile(lat, 99), max(lat)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--gap", type=float, default=0.02, help="seconds between an echo and the next key")
    ap.add_argument("--paths", default="pty,backend", help="which attach paths to measure")
    a = ap.parse_args()
    from xcinspect.engine.actions import Actions
    from xcinspect.sim.platform import SimPlatform

    print(f"Attach, keystroke -> echo through the sim guest, {a.keys} keys, {a.gap * 1000:g} ms apart; {machine()}")
    domains = {1: {"name": "tty", "behaviour": "quiet"}, 2: {"name": "own", "behaviour": "quiet", "consoled": False}}
    results = {}
    with custom_world(domains) as w:
        plat = SimPlatform(w.dir)
        acts = Actions(plat, platform_args=["--sim", w.dir])
        try:
            acts.connect(2)
            base = PtyEcho()
            try:
                results["baseline"] = keystrokes(base, a.keys, a.gap, guest=False)
            finally:
                base.close()
            for path, domid in (("pty", 1), ("backend", 2)):
                if path not in a.paths.split(","):
                    continue
                with acts.attach(domid) as s:
                    drain(s)
                    s.write(b"\r")
                    wait_for(s, b"# ")
                    drain(s, quiet=0.1)
                    results[path] = keystrokes(s, a.keys, a.gap)
        finally:
            try:
                acts.disconnect(2)
            except Exception:
                pass
            acts.xs.close()
    b50, b99, _ = stats(results["baseline"])
    print(f"  {'path':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p50 ratio':>9} {'p99 ratio':>9}")
    labels = {"baseline": "baseline: bare pty + echo process", "pty": "xenconsoled pty (TtySession)",
              "backend": "xcinspect backend (SocketSession)"}
    ok = True
    for path in ("baseline", "pty", "backend"):
        if path not in results:
            continue
        p50, p99, mx = stats(results[path])
        print(f"  {labels[path]:<34} {p50 * 1e3:8.2f} {p99 * 1e3:8.2f} {mx * 1e3:8.2f} {p50 / b50:8.1f}x {p99 / b99:8.1f}x")
        if path != "baseline":
            ok &= p99 <= 0.020
    worst = max(stats(results[p])[1] for p in ("pty", "backend") if p in results)
    print(f"  p99 (worse path) {worst * 1e3:.2f} ms (goal <= 20 ms) {verdict(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
