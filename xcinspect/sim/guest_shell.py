"""What a sim guest says and answers: its kernel banner and boot log, the periodic log
lines, and the tiny shell behind its prompt (echo, arithmetic, a few commands)."""

from __future__ import annotations

import ast
import operator
import re
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xcinspect.sim.guest import Guest

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
