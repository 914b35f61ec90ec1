"""Simulated guests: the frontend side of PV consoles, one or many per process.

``python -m xcinspect.sim.guest --world DIR --domid N [--domid M ...]``

Each guest maps its page file, binds its end of the console event channel, writes a
Linux-like boot log into ``out``, then behaves per its configuration in world.json
(``domains[N]``: name, port, kernel, behaviour, tick, consoled):

Kernel models (how ``domU_write_console`` treats the flag at offset 3088):

* ``legacy``   ignores the flag. When ``out`` is full it blocks (waits on its event
  channel, with a slow poll as fallback) and never drops output.
* ``rfc-v2``   reads the RFC v2 ``uint32 flag``: while it is 0 (disconnected), writes
  are dropped; once 1, it behaves like legacy.
* ``xen-4.21`` Linux >= 7.1 hvc_xen: while ``connection == 1`` (disconnected) writes are
  dropped (-ENOTCONN, lost); otherwise like legacy (blocks when full). The check is made
  only when a write starts: a write spinning on a full ring keeps spinning whatever the
  flag, and finishes once the ring drains (real-flag.md: a 1 written under a spinning
  Linux 7.2 guest did not free it).

Corrupt indices (fill > 2048) make every write fail (-EINVAL, output dropped), as in Linux.

Behaviours: ``normal`` (a log line every ``tick`` seconds), ``quiet`` (nothing after the
boot), ``chatty`` (writes as fast as the backend drains), ``corrupt`` (boots, then moves
``out_prod`` far beyond ``out_cons`` and stops).

Input: ``in`` is consumed like a tty in cooked mode (echo, CR -> CRLF, backspace, ^C, ^U);
a complete line runs a tiny shell (``echo`` with ``$((a*b))``, ``uname -a``, ``uptime``,
``hostname``; anything else -> ``sh: CMD: not found``), then the prompt ``~ # ``.

The process reports ``booted <domid>`` on stdout once a guest has handed over its boot
log (written, or dropped by the kernel model; for a guest no backend is set up for: or
blocked on a full ring). Commands on stdin: ``stop <domid>`` halts one guest (its
domain is being destroyed), ``set <domid> <key> <value>`` changes its configuration
(e.g. ``behaviour chatty``). EOF on stdin or SIGTERM ends the process cleanly.
"""

from __future__ import annotations

import argparse
import mmap
import os
import selectors
import signal
import struct
import sys
import time

from xcinspect.core.flags import FLAG_OFFSET
from xcinspect.core.ring import IDX, IDX_OFFSET, MASK32, OUT_PROD, OUT_SIZE, PAGE_SIZE, PageError, RingIO
from xcinspect.sim.common import Paths, die_with_parent, drain_wakeup, read_world, signal_wakeup, world_id_for
from xcinspect.sim.evtchn import GuestEventChannel
from xcinspect.sim.guest_shell import TICK_MESSAGES, boot_log, run_command, stamp

PROMPT = b"~ # "
POLL_FALLBACK = 0.5  # seconds between ring polls while blocked (hvc's poll, roughly)
INPUT_POLL = 1.0
_U32 = struct.Struct("<I")

class Guest:
    def __init__(self, paths: Paths, world_id: str, domid: int, cfg: dict, report) -> None:
        self.paths = paths
        self.domid = domid
        self.name = str(cfg.get("name") or f"dom{domid}")
        self.kernel = str(cfg.get("kernel") or "legacy")
        self.behaviour = str(cfg.get("behaviour") or "normal")
        self.tick = float(cfg.get("tick") or 2.0)
        self.served = bool(cfg.get("consoled", True))
        self.port = int(cfg.get("port") or 1)
        self.report = report
        self.t0 = time.monotonic()
        self.boot_end = 2.5
        fd = os.open(paths.page(domid), os.O_RDWR | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size != PAGE_SIZE:
                raise ValueError(f"page file of domain {domid} is not {PAGE_SIZE} bytes")
            self.mm = mmap.mmap(fd, PAGE_SIZE, access=mmap.ACCESS_WRITE)
        finally:
            os.close(fd)
        self.ring = RingIO(self.mm)
        self.ev = GuestEventChannel(world_id, domid, self.port)
        self.obuf = bytearray()
        self.line = bytearray()
        self.boot_bytes_left = 0
        self.booted = False
        self.blocked = False
        self.next_tick = 0.0
        self.next_poll = 0.0
        self.next_input_poll = 0.0
        self.ticks = 0
        self.written = 0
        self.dropped = 0
        self.halted = False
        self.chatty_n = 0
        self.hold_until = 0.0  # a chatty writer whose output is being dropped backs off a little

    # -- clock ---------------------------------------------------------------------------------
    def uptime(self) -> float:
        return self.boot_end + (time.monotonic() - self.t0)

    # -- the kernel side of the console ------------------------------------------------------
    def connected(self) -> bool:
        """What this kernel model makes of the flag (read raw, as the kernel does)."""
        if self.kernel == "rfc-v2":
            return _U32.unpack_from(self.mm, FLAG_OFFSET)[0] == 1
        if self.kernel == "xen-4.21":
            return self.mm[FLAG_OFFSET] != 1
        return True

    def emit(self, text: str | bytes) -> None:
        self.obuf += text.encode() if isinstance(text, str) else text

    def flush(self) -> None:
        """hvc_xen's write path: hand ``obuf`` to the ring per the kernel model."""
        if not self.obuf or self.halted:
            self.blocked = False
            return
        # hvc_xen checks the flag only when a write starts: a write already spinning on a
        # full ring goes on whatever the flag says (and finishes once the ring drains).
        if not self.blocked and not self.connected():
            self._dropped(len(self.obuf))  # -ENOTCONN: dropped, lost for good
            return
        try:
            n = self.ring.write_out(bytes(self.obuf[:OUT_SIZE]))
        except PageError:
            self._dropped(len(self.obuf))  # "xencons: Illegal ring page indices": -EINVAL
            return
        if n:
            del self.obuf[:n]
            self.written += n
            self._account(n)
            self.ev.notify()
        self.blocked = bool(self.obuf)
        if self.blocked and not self.booted and not self.served:
            self._booted()  # nothing will ever drain it: the boot hangs here

    def _dropped(self, n: int) -> None:
        self.dropped += n
        self.obuf.clear()
        self._account(n)
        self.blocked = False
        self.hold_until = time.monotonic() + 0.05

    def _account(self, n: int) -> None:
        if self.boot_bytes_left > 0:
            self.boot_bytes_left -= n
            if self.boot_bytes_left <= 0 and not self.booted:
                self._booted()

    def _booted(self) -> None:
        self.booted = True
        if self.behaviour == "corrupt":
            self.corrupt()  # right after the boot, so a ready world already shows it
        self.report(f"booted {self.domid}")

    def read_input(self) -> None:
        try:
            data = self.ring.read_in()
        except PageError:
            return
        if not data:
            return
        self.ev.notify()  # hvc_xen notifies after consuming input
        for b in data:
            if b in (0x0D, 0x0A):
                self.emit(b"\r\n")
                cmd = self.line.decode("ascii", "replace")
                self.line.clear()
                self.emit(run_command(cmd, self))
                self.emit(PROMPT)
            elif b in (0x7F, 0x08):
                if self.line:
                    self.line.pop()
                    self.emit(b"\b \b")
            elif b == 0x03:
                self.line.clear()
                self.emit(b"^C\r\n" + PROMPT)
            elif b == 0x15:
                self.emit(b"\b \b" * len(self.line))
                self.line.clear()
            elif b >= 0x20 or b == 0x09:
                if len(self.line) < 1024:
                    self.line.append(b)
                    self.emit(bytes([b]))
            else:
                self.emit(b"^" + bytes([b + 0x40]))

    # -- life cycle -------------------------------------------------------------------------------
    def boot(self) -> None:
        text = "".join(stamp(t) + line + "\r\n" for t, line in boot_log(self.name, self.domid, self.kernel))
        os_name = {"legacy": "Debian GNU/Linux 12", "xen-4.21": "Debian GNU/Linux 14", "rfc-v2": "Debian GNU/Linux 13"}
        text += (
            f"\r\n{os_name.get(self.kernel, 'Debian GNU/Linux 12')} {self.name} hvc0\r\n\r\n"
            f"{self.name} login: root (automatic login)\r\n\r\n"
        )
        data = text.encode() + PROMPT
        self.boot_bytes_left = len(data)
        self.emit(data)
        now = time.monotonic()
        self.next_tick = now + self.tick
        self.next_input_poll = now + INPUT_POLL
        self.flush()

    def corrupt(self) -> None:
        """Move out_prod far beyond out_cons (fill > 2048), as a buggy or hostile guest would."""
        _, _, cons, _ = IDX.unpack_from(self.mm, IDX_OFFSET)
        self.mm[OUT_PROD: OUT_PROD + 4] = _U32.pack((cons + 5 * OUT_SIZE + 123) & MASK32)
        self.ev.notify()
        self.behaviour = "quiet"

    def step(self, now: float) -> None:
        """Timers: ticks, chatty refills, corruption, poll fallbacks."""
        if self.halted:
            return
        if now >= self.next_input_poll:
            self.next_input_poll = now + INPUT_POLL
            self.read_input()
        if self.blocked:
            if now >= self.next_poll:
                self.next_poll = now + POLL_FALLBACK
                self.flush()
            return
        if not self.booted:
            self.flush()
            return
        if self.behaviour == "chatty":
            if now >= self.hold_until:
                self.refill_chatty()
                self.flush()
            return
        if self.behaviour == "normal" and now >= self.next_tick:
            self.ticks += 1
            self.next_tick = max(self.next_tick + self.tick, now + 0.01)
            msg = TICK_MESSAGES[self.ticks % len(TICK_MESSAGES)].format(
                pid=1000 + (self.ticks * 37) % 9000, host=10 + self.domid % 200)
            self.emit(f"{stamp(self.uptime())}tick {self.ticks}: {msg}\r\n")
            self.flush()

    def refill_chatty(self) -> None:
        while len(self.obuf) < 2 * OUT_SIZE:
            self.chatty_n += 1
            self.emit(f"{stamp(self.uptime())}chatty: flood {self.chatty_n} "
                      f"the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz\r\n")

    def on_event(self) -> None:
        self.ev.pending()
        if self.halted:
            return
        self.read_input()
        if self.booted and self.behaviour == "chatty" and not self.obuf:
            self.refill_chatty()
        self.flush()
        self.next_poll = time.monotonic() + POLL_FALLBACK

    def deadline(self) -> float:
        if self.halted:
            return float("inf")
        d = self.next_input_poll
        if self.blocked:
            return min(d, self.next_poll)
        if not self.booted:
            return time.monotonic()
        if self.behaviour == "normal":
            return min(d, self.next_tick)
        if self.behaviour == "chatty":
            # Due when the hold ends (now if there is none). Not max(monotonic(), ...): that is
            # always later than the loop's `now`, so the guest was never stepped (and the loop
            # spun on a zero timeout): a guest switched to chatty never started writing.
            return self.hold_until if not self.obuf else min(d, self.next_poll)
        return d

    def halt(self) -> None:
        """The domain is being destroyed: the vCPUs stop."""
        self.halted = True
        self.ev.close()
        try:
            self.mm.close()
        except (BufferError, ValueError):
            pass


# -- the process --------------------------------------------------------------------------------
class GuestProcess:
    def __init__(self, world: str, domids: list[int]) -> None:
        self.paths = Paths(world)
        data = read_world(world)
        self.world_id = data.get("world_id") or world_id_for(world)
        self.cfgs = data.get("domains", {})
        self.domids = domids
        self.guests: dict[int, Guest] = {}
        self.sel = selectors.DefaultSelector()
        self.stop = False
        self.stdin_buf = b""

    def report(self, line: str) -> None:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            pass

    def start(self) -> None:
        for d in self.domids:
            g = Guest(self.paths, self.world_id, d, self.cfgs.get(str(d), {}), self.report)
            self.guests[d] = g
            self.sel.register(g.ev.sock, selectors.EVENT_READ, g)
        for g in self.guests.values():
            g.boot()

    def command(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        if words[0] == "stop" and len(words) == 2:
            g = self.guests.pop(int(words[1]), None)
            if g is not None:
                try:
                    self.sel.unregister(g.ev.sock)
                except Exception:
                    pass
                g.halt()
            self.report(f"stopped {words[1]}")
        elif words[0] == "set" and len(words) >= 4:
            g = self.guests.get(int(words[1]))
            if g is not None:
                key, value = words[2], " ".join(words[3:])
                if key in ("behaviour", "kernel", "name"):
                    setattr(g, key, value)
                elif key == "tick":
                    g.tick = float(value)
                    g.next_tick = time.monotonic() + g.tick
                g.flush()
        elif words[0] == "ping":
            self.report("pong")

    def _request_stop(self) -> None:
        self.stop = True

    def run(self) -> int:
        # SIGINT: the controller decides (Ctrl-C hits the group)
        r, w = signal_wakeup(self._request_stop, stop=(signal.SIGTERM, signal.SIGHUP), ignore=(signal.SIGINT,))
        self.sel.register(r, selectors.EVENT_READ, "wake")
        os.set_blocking(0, False)
        try:
            self.sel.register(0, selectors.EVENT_READ, "stdin")
        except (ValueError, PermissionError, OSError):
            pass  # stdin is not pollable (a file): no commands
        self.start()
        while not self.stop:
            now = time.monotonic()
            nxt = min((g.deadline() for g in self.guests.values()), default=now + 1.0)
            timeout = min(max(0.0, nxt - now), 1.0)
            for key, _ in self.sel.select(timeout):
                if key.data == "wake":
                    drain_wakeup(r)
                elif key.data == "stdin":
                    try:
                        chunk = os.read(0, 4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        self.stop = True  # the controller is gone
                        break
                    self.stdin_buf += chunk
                    while b"\n" in self.stdin_buf:
                        line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
                        try:
                            self.command(line.decode())
                        except (ValueError, OSError):
                            pass
                else:
                    g: Guest = key.data
                    if not g.halted:
                        g.on_event()
            now = time.monotonic()
            for g in list(self.guests.values()):
                if g.deadline() <= now:
                    g.step(now)
        for g in self.guests.values():
            g.halt()
        return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xcinspect.sim.guest")
    ap.add_argument("--world", required=True)
    ap.add_argument("--domid", type=int, action="append", required=True)
    ap.add_argument("--parent-pid", type=int)
    args = ap.parse_args(argv)
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    return GuestProcess(args.world, args.domid).run()


if __name__ == "__main__":
    sys.exit(main())
