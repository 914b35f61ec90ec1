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
import ast
import mmap
import operator
import os
import re
import selectors
import signal
import struct
import sys
import time

from xcinspect.core.flags import FLAG_OFFSET
from xcinspect.core.ring import IDX, IDX_OFFSET, MASK32, OUT_PROD, OUT_SIZE, PAGE_SIZE, PageError, RingIO
from xcinspect.sim.common import Paths, die_with_parent, drain_wakeup, read_world, signal_wakeup, world_id_for
from xcinspect.sim.evtchn import GuestEventChannel

PROMPT = b"~ # "
POLL_FALLBACK = 0.5  # seconds between ring polls while blocked (hvc's poll, roughly)
INPUT_POLL = 1.0
_U32 = struct.Struct("<I")

KERNELS = {
    "legacy": ("6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)", "Debian 12.0.0"),
    "rfc-v2": ("6.13.0-rc3-hyperlaunch", "#4 SMP PREEMPT_DYNAMIC Thu Dec 19 21:07:40 UTC 2024", "Debian 14.2.0"),
    "xen-4.21": ("7.1.0-1-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 7.1.2-1 (2026-06-20)", "Debian 15.1.0"),
}

TICK_MESSAGES = [
    "systemd[1]: Starting apt-daily.service - Daily apt download activities...",
    "systemd[1]: Finished apt-daily.service - Daily apt download activities.",
    "CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "sshd[{pid}]: Connection closed by 192.0.2.17 port 52214 [preauth]",
    "systemd[1]: Starting systemd-tmpfiles-clean.service - Cleanup of Temporary Directories...",
    "systemd[1]: systemd-tmpfiles-clean.service: Deactivated successfully.",
    "kernel: xen_netfront: xennet: eth0: rx queue 0 refill",
    "chronyd[{pid}]: Selected source 192.0.2.123 (2.debian.pool.ntp.org)",
    "systemd-journald[212]: Data hash table of /run/log/journal/system.journal has a fill level at 75.0",
    "dhclient[{pid}]: DHCPREQUEST for 10.0.3.{host} on eth0 to 10.0.3.1 port 67",
]


def boot_log(name: str, domid: int, kernel: str) -> list[tuple[float, str]]:
    """(kernel timestamp, text) lines of a plausible Linux PV/PVH boot on Xen."""
    ver, build, gcc = KERNELS.get(kernel, KERNELS["legacy"])
    mem = 1024 + 1024 * (domid % 4)
    lines = [
        (0.0, f"Linux version {ver} (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) {build}"),
        (0.0, f"Command line: root=/dev/xvda1 ro console=hvc0 earlyprintk=xen quiet=0 hostname={name}"),
        (0.0, "x86/fpu: Supporting XSAVE feature 0x001: 'x87 floating point registers'"),
        (0.0, "x86/fpu: Supporting XSAVE feature 0x002: 'SSE registers'"),
        (0.0, "x86/fpu: Enabled xstate features 0x7, context size is 832 bytes, using 'standard' format."),
        (0.0, "signal: max sigframe size: 1776"),
        (0.0, "BIOS-provided physical RAM map:"),
        (0.0, f"Xen: [mem 0x0000000000000000-0x{mem * 0x100000 - 1:016x}] usable"),
        (0.0, "NX (Execute Disable) protection: active"),
        (0.0, "Hypervisor detected: Xen PV"),
        (0.000012, "tsc: Detected 2394.454 MHz processor"),
        (0.001873, "e820: update [mem 0x00000000-0x00000fff] usable ==> reserved"),
        (0.004512, "Booting paravirtualized kernel on Xen"),
        (0.004514, "Xen version: 4.17.7 (preserve-AD)"),
        (0.011002, "setup_percpu: NR_CPUS:8192 nr_cpumask_bits:2 nr_cpu_ids:2 nr_node_ids:1"),
        (0.013377, f"Kernel command line: root=/dev/xvda1 ro console=hvc0 earlyprintk=xen hostname={name}"),
        (0.016854, f"Memory: {mem * 1024 - 80400}K/{mem * 1024}K available (14336K kernel code, 2488K rwdata)"),
        (0.021094, "SLUB: HWalign=64, Order=0-3, MinObjects=0, CPUs=2, Nodes=1"),
        (0.024301, "Using NULL legacy PIC"),
        (0.024488, "xen:events: Using FIFO-based ABI"),
        (0.031553, "Console: colour dummy device 80x25"),
        (0.031590, "printk: console [tty0] enabled"),
        (0.031611, "printk: console [hvc0] enabled"),
        (0.036480, "clocksource: xen: mask: 0xffffffffffffffff max_cycles: 0x1cd42e4dffb"),
        (0.049912, "Xen: using vcpuop timer interface"),
        (0.051174, "installing Xen timer for CPU 0"),
        (0.079350, "smp: Bringing up secondary CPUs ..."),
        (0.083006, "installing Xen timer for CPU 1"),
        (0.085441, "smp: Brought up 1 node, 2 CPUs"),
        (0.119866, "devtmpfs: initialized"),
        (0.131254, "NET: Registered PF_NETLINK/PF_ROUTE protocol family"),
        (0.151016, "xen:grant_table: Grant tables using version 1 layout"),
        (0.151099, "Grant table initialized"),
        (0.213881, "xen:balloon: Initialising balloon driver"),
        (0.341022, "Serial: 8250/16550 driver, 4 ports, IRQ sharing enabled"),
        (0.357129, "hvc0: console [hvc0] enabled (xencons)"),
        (0.401547, "xen_netfront: Initialising Xen virtual ethernet driver"),
        (0.433806, "blkfront: xvda: flush diskcache: enabled; persistent grants: enabled; indirect descriptors: enabled; bounce buffer: enabled"),
        (0.439245, " xvda: xvda1 xvda2 < xvda5 >"),
        (0.512004, "EXT4-fs (xvda1): mounted filesystem 5bd3c9f2-7d5f-4c55-9f0e-2b1a3d8c6e51 ro with ordered data mode. Quota mode: none."),
        (0.533117, "VFS: Mounted root (ext4 filesystem) readonly on device 202:1."),
        (0.611930, "Run /sbin/init as init process"),
        (0.902741, "systemd[1]: systemd 252.22-1~deb12u1 running in system mode (+PAM +AUDIT +SELINUX +APPARMOR +IMA +SMACK +SECCOMP +GCRYPT -GNUTLS +OPENSSL +ACL +BLKID +CURL +ELFUTILS +FIDO2 +IDN2 -IDN +IPTC +KMOD +LIBCRYPTSETUP +LIBFDISK +PCRE2 -PWQUALITY +P11KIT +QRENCODE +TPM2 +BZIP2 +LZ4 +XZ +ZLIB +ZSTD -BPF_FRAMEWORK -XKBCOMMON +UTMP +SYSVINIT default-hierarchy=unified)"),
        (0.903019, "systemd[1]: Detected virtualization xen."),
        (0.903052, "systemd[1]: Detected architecture x86-64."),
        (0.907218, f"systemd[1]: Hostname set to <{name}>."),
        (1.201544, "systemd[1]: Queued start job for default target graphical.target."),
        (1.241902, "systemd[1]: Created slice system-getty.slice - Slice /system/getty."),
        (1.242311, "systemd[1]: Created slice system-serial\\x2dgetty.slice - Slice /system/serial-getty."),
        (1.388412, "EXT4-fs (xvda1): re-mounted 5bd3c9f2-7d5f-4c55-9f0e-2b1a3d8c6e51 r/w. Quota mode: none."),
        (1.612778, "systemd-journald[212]: Received client request to flush runtime journal."),
        (1.834120, "xen_netfront: xennet: eth0: link up"),
        (2.103554, "systemd[1]: Started serial-getty@hvc0.service - Serial Getty on hvc0."),
        (2.103871, "systemd[1]: Reached target getty.target - Login Prompts."),
        (2.297015, "systemd[1]: Started ssh.service - OpenBSD Secure Shell server."),
        (2.411462, "systemd[1]: Reached target multi-user.target - Multi-User System."),
        (2.411988, "systemd[1]: Startup finished in 0.611s (kernel) + 1.800s (userspace) = 2.411s."),
    ]
    return lines


def stamp(t: float) -> str:
    return f"[{t:12.6f}] "


# -- a tiny shell -------------------------------------------------------------------------------
_ARITH = re.compile(r"\$\(\((.*?)\)\)")
_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Div: operator.floordiv, ast.Mod: operator.mod,
}


def _arith(expr: str) -> str:
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, (ast.FloorDiv, ast.Div, ast.Mod)) and b == 0:
                raise ZeroDivisionError
            if isinstance(node.op, ast.Mult) and abs(a) * abs(b) > 1 << 128:
                raise OverflowError
            return _OPS[type(node.op)](a, b)
        raise ValueError(expr)

    if len(expr) > 200:
        raise ValueError(expr)
    return str(ev(ast.parse(expr.strip(), mode="eval")))


def run_command(line: str, guest: Guest) -> str:
    """Output of one shell command line (without the prompt)."""
    line = line.strip()
    if not line:
        return ""
    cmd, _, rest = line.partition(" ")
    if cmd == "echo":
        try:
            text = _ARITH.sub(lambda m: _arith(m.group(1)), rest)
        except (ValueError, SyntaxError, ZeroDivisionError, OverflowError):
            return "sh: arithmetic syntax error\r\n"
        out = []
        for word in re.findall(r'"[^"]*"|\'[^\']*\'|\S+', text):
            out.append(word[1:-1] if word[:1] in "\"'" and len(word) >= 2 else word)
        return " ".join(out) + "\r\n"
    if cmd == "uname":
        ver, build, _ = KERNELS.get(guest.kernel, KERNELS["legacy"])
        if rest.strip() == "-a":
            return f"Linux {guest.name} {ver} {build} x86_64 GNU/Linux\r\n"
        if rest.strip() == "-r":
            return ver + "\r\n"
        return "Linux\r\n"
    if cmd == "uptime":
        up = int(guest.uptime())
        tm = time.strftime("%H:%M:%S")
        return f" {tm} up {up // 60} min,  0 users,  load average: 0.00, 0.01, 0.00\r\n"
    if cmd == "hostname":
        return guest.name + "\r\n"
    if cmd == "help":
        return "commands: echo ARGS, uname -a, uptime, hostname\r\n"
    return f"sh: {cmd}: not found\r\n"


# -- one guest ----------------------------------------------------------------------------------
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
