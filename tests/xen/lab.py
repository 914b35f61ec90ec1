"""Xen lab: real Xen hosts under QEMU TCG for xcinspect's end-to-end tests.

    python -m tests.xen.lab build [--host H]              # build (or reuse) the cached images
    python -m tests.xen.lab run [--host H] [SCENARIO ...] # build if needed, boot H once, run them
    python -m tests.xen.lab list [--host H]               # scenario names (per host)

Hosts (one boot each; a scenario names its hosts in a `# xci-hosts:` header, default
xen417):
    xen417  Xen 4.17 + bookworm dom0 (6.1), two bookworm 6.1 guests      (Debian packages)
    xen420  Xen 4.20 + trixie dom0 (6.12); guests on sid's 7.2 and trixie's 6.12
    xen421  Xen 4.20.4 built from source with the 4.21 console-flag patches (xensrc.py),
            trixie dom0 without Debian's Xen packages; the same two guests
    xenarm  Xen 4.17 on Arm (bookworm arm64 packages) under qemu-system-aarch64, arm64
            dom0 (a dpkg-deb -x root) and two arm64 guests; by default run only when its
            inputs changed (arm_gate())

xen417's images are built from Debian bookworm packages into a cache outside the checkout
(``~/.cache/xcinspect/xen-lab``, or ``$XCINSPECT_LAB_CACHE``), one directory per stage,
each with a stamp that hashes the stage's inputs (scripts, package versions, mirror):

    boot/   xen.elf, vmlinuz, the kernel's Xen modules, busybox (from .debs)
    dom0/   dom0.cpio.gz: debootstrap minbase + xen-utils-4.17 & co  (images/build-dom0.sh)
    guest/  guest.cpio.gz: busybox PV guest                           (images/guest-init.sh)

Each run adds a small overlay archive (dom0 /init, runner, scenarios, the project's
wheels built on the host, the guest kernel + initramfs), concatenated to dom0.cpio.gz.
dom0 reports on its console with ``@@XCI:<token> ...`` markers; the serial log is parsed
for them and QEMU is killed at ``DONE`` or at the global timeout.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent
SCENARIO_DIR = HERE / "scenarios"
DOM0_DIR = HERE / "dom0"
IMAGES_DIR = HERE / "images"

XEN_PKG = "xen-hypervisor-4.17-amd64"
KERNEL_META = "linux-image-amd64"
BUSYBOX_PKG = "busybox-static"
BOOT_STAGE_VERSION = "1"

QEMU_ARGS = ["-accel", "tcg,thread=multi", "-cpu", "qemu64", "-m", "3072", "-smp", "2",
             "-display", "none", "-monitor", "none", "-no-reboot"]
XEN_CMDLINE = "console=com1 dom0_mem=2048M,max:2048M loglvl=warning guest_loglvl=none"
DOM0_CMDLINE = "console=hvc0 quiet"

X86_HOSTS = ("xen417", "xen420", "xen421")
ARM_HOST = "xenarm"
HOSTS = X86_HOSTS + (ARM_HOST,)
DEFAULT_SCENARIO_HOSTS = ("xen417",)

# xen420/xen421: trixie packages (hypervisor, dom0 + old-guest kernel) and sid's 7.2 kernel,
# fetched through a private apt configuration (never the host's /etc/apt).
TRIXIE_XEN_PKG = "xen-hypervisor-4.20-amd64"
TRIXIE_XEN_UTILS = "xen-utils-4.20"
KERNEL_NEW_PKG = "linux-binary-7.2.13+deb14-amd64"    # sid's 7.2.13: the kernel binary
KERNEL_NEW_VER = "7.2.13+deb14-amd64"
TRIXIE_STAGE_VERSION = "1"
APT_LISTS_MAX_AGE = 12 * 3600
QEMU_ARGS_NEW = ["-accel", "tcg,thread=multi", "-cpu", "qemu64", "-m", "4096", "-smp", "2",
                 "-display", "none", "-monitor", "none", "-no-reboot"]
XEN_CMDLINE_NEW = "console=com1 dom0_mem=2048M,max:2048M loglvl=warning guest_loglvl=none"

# xenarm: Xen 4.17/Arm (bookworm arm64 packages) under qemu-system-aarch64 TCG; the dom0
# root is the dependency closure of ARM_DOM0_PKGS unpacked with dpkg-deb -x (no chroot, no
# qemu-user on the build machine; ldconfig, depmod and busybox's links run at dom0 boot).
ARM_SUITE = "bookworm"
ARM_XEN_PKG = "xen-hypervisor-4.17-arm64"
ARM_KERNEL_META = "linux-image-arm64"
ARM_DOM0_PKGS = ("xen-utils-4.17", "xenstore-utils", "python3-cffi", "python3-pip", "jq",
                 "procps", "kmod", "util-linux", "mount", "busybox-static", "bash", "libc-bin",
                 "coreutils", "sed", "grep", "gawk", "findutils")
ARM_STAGE_VERSION = "2"
# arm64 under TCG runs dom0's Python about 3x slower than the x86 hosts (a python3 start
# of xcinspect: 10-30 s on a loaded 2-core machine): scenario timeouts, wait_for, the
# run's global timeout and connect's wait for its backend are scaled. x3 was too little
# at load 15-20 (02-stuck-boot timed out at 180 s with its checks half done): x5.
ARM_TIMEOUT_SCALE = 5
ARM_GLOBAL_TIMEOUT_CAP = 2400
QEMU_ARGS_ARM = ["-machine", "virt,virtualization=on,gic-version=3", "-cpu", "cortex-a57",
                 "-accel", "tcg,thread=multi", "-m", "2048", "-smp", "2",
                 "-display", "none", "-monitor", "none", "-no-reboot"]
XEN_CMDLINE_ARM = "console=dtuart dom0_mem=1024M,max:1024M loglvl=warning guest_loglvl=none"
# QEMU puts its DTB at RAM base + 128 MiB (0x48000000) for an AArch64 -kernel: the
# guest-loader modules stay clear of it (an initrd there -> Xen BUG in free_heap_pages).
ARM_DOM0_KERNEL_ADDR = "0x42000000"
ARM_DOM0_INITRD_ADDR = "0x50000000"

DEFAULT_SCENARIO_TIMEOUT = 120      # seconds, per scenario (a header can override)
BOOT_BUDGET = 240                   # seconds from QEMU start to the first scenario
GLOBAL_TIMEOUT_CAP = 1200           # a whole run of one host never takes longer (CI: 90 min in all)
EVIDENCE_ALLOWANCE = 30             # seconds per scenario for the runner's own work
                                    # (restore, evidence of a failure: slow under TCG)
KEEP_RUNS = 3


class LabError(RuntimeError):
    """A prerequisite or build step failed (never a scenario failure)."""


def cache_root() -> Path:
    return Path(os.environ.get("XCINSPECT_LAB_CACHE")
                or Path.home() / ".cache" / "xcinspect" / "xen-lab").expanduser()


_log_hook = None     # set by conftest.py: print past pytest's capture


def log(msg: str) -> None:
    if _log_hook:
        _log_hook(msg)
    else:
        print(f"[xen-lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, *, cwd=None, env=None, capture=False, check=True, quiet=False) -> str:
    """Run a command; on failure raise LabError with its output."""
    if not quiet:
        log("$ " + " ".join(str(c) for c in cmd))
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, text=True, check=False,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None)
    if check and p.returncode != 0:
        raise LabError(f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n"
                       f"{(p.stdout or '')[-3000:]}{(p.stderr or '')[-3000:]}")
    return p.stdout or ""


def sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


# --------------------------------------------------------------------------- host prereqs

def require_tools(host: str | None = None) -> None:
    tools = ["debootstrap", "cpio", "apt-get", "dpkg-deb", "unshare", "gzip"]
    tools.insert(0, "qemu-system-aarch64" if host == ARM_HOST else "qemu-system-x86_64")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        raise LabError(f"missing host tools: {' '.join(missing)} (run tests/xen/setup-host.sh)")
    if os.geteuid() != 0:
        raise LabError("the Xen lab build needs root (debootstrap, chroot)")


def apt_sources() -> list[Path]:
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    files += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    if Path("/etc/apt/sources.list").is_file():
        files.append(Path("/etc/apt/sources.list"))
    return [f for f in files if f.read_text(errors="replace").strip()]


def debian_mirror() -> str:
    """The Debian archive URI the host's apt uses for bookworm (not the security one)."""
    cands = []
    for f in apt_sources():
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                if re.search(r"^Enabled:\s*no", stanza, re.MULTILINE | re.IGNORECASE):
                    continue
                uris = re.findall(r"^URIs:\s*(.+)$", stanza, re.MULTILINE)
                suites = " ".join(re.findall(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)).split()
                for u in " ".join(uris).split():
                    cands.append((u, suites))
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    cands.append((m.group(1), [m.group(2)]))
    for uri, suites in cands:
        if "bookworm" in suites and "security" not in uri:
            return uri
    for uri, suites in cands:
        if "security" not in uri and not any("security" in s for s in suites):
            return uri
    raise LabError("no Debian mirror found in the host's apt configuration")


def apt_candidate(pkg: str) -> str:
    out = sh(["apt-cache", "policy", pkg], capture=True, quiet=True)
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        return ""
    return m.group(1)


def ensure_apt_lists() -> None:
    if not apt_candidate(XEN_PKG):
        log("apt lists lack the Xen packages: apt-get update")
        sh(["apt-get", "update", "-qq"])
        if not apt_candidate(XEN_PKG):
            raise LabError(f"{XEN_PKG} not available from the host's apt sources")


def kernel_pkg() -> str:
    out = sh(["apt-cache", "depends", KERNEL_META], capture=True, quiet=True)
    m = re.search(r"Depends:\s*(linux-image-\S+)", out)
    if not m:
        raise LabError(f"cannot resolve {KERNEL_META}")
    return m.group(1)


# --------------------------------------------------------------------------- stages

@contextlib.contextmanager
def cache_lock():
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def stage_ready(name: str, key: str) -> Path | None:
    d = cache_root() / name
    stamp = d / "STAMP"
    if stamp.is_file() and stamp.read_text().strip() == key:
        return d
    return None


@contextlib.contextmanager
def stage_build(name: str, key: str):
    """Yield a fresh temp dir; on success it replaces cache/NAME with a stamp."""
    root = cache_root()
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        yield tmp
        (tmp / "STAMP").write_text(key + "\n")
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclasses.dataclass
class Images:
    xen: Path
    vmlinuz: Path
    kver: str
    dom0: Path
    guest: Path
    host: str = "xen417"
    # Kernels for the guests, by their name in the overlay (/opt/xci/NAME); "vmlinuz" is
    # the dom0 kernel too. Guests: (name, kernel, memory MB, kind "new"|"old"|"").
    kernels: dict = dataclasses.field(default_factory=dict)
    guests: list = dataclasses.field(default_factory=lambda: [
        ("guest1", "vmlinuz", 128, ""), ("guest2", "vmlinuz", 128, "")])
    qemu_args: list = dataclasses.field(default_factory=lambda: list(QEMU_ARGS))
    xen_cmdline: str = XEN_CMDLINE
    arch: str = "x86_64"           # the QEMU system binary and its boot options
    guest_type: str = "pv"         # xl's type = (empty: none, as on Arm)
    timeout_scale: int = 1         # scenario timeouts x this (arm64 TCG is slower)
    python: str = "3.11"           # dom0's python3 (where the project is preinstalled)


def build_boot() -> tuple[Path, str]:
    ensure_apt_lists()
    kpkg = kernel_pkg()
    pkgs = [XEN_PKG, kpkg, BUSYBOX_PKG]
    vers = [apt_candidate(p) for p in pkgs]
    key = sha("boot", BOOT_STAGE_VERSION, *pkgs, *vers)
    d = stage_ready("boot", key)
    if d:
        return d, key
    log(f"building boot stage: {', '.join(f'{p}={v}' for p, v in zip(pkgs, vers))}")
    t0 = time.monotonic()
    with stage_build("boot", key) as tmp:
        debs = tmp / "debs"
        debs.mkdir()
        os.chmod(debs, 0o777)    # apt-get download runs as _apt where it can
        sh(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *[f"{p}={v}" for p, v in zip(pkgs, vers)]], cwd=debs)
        x = tmp / "x"
        for deb in sorted(debs.glob("*.deb")):
            sh(["dpkg-deb", "-x", deb, x], quiet=True)
        (tmp / "xen.elf").write_bytes(gzip.decompress((x / "boot/xen-4.17-amd64.gz").read_bytes()))
        vmlinuz = min((x / "boot").glob("vmlinuz-*"))
        kver = vmlinuz.name[len("vmlinuz-"):]
        shutil.copy(vmlinuz, tmp / "vmlinuz")
        (tmp / "kver").write_text(kver + "\n")
        mods = tmp / "modules" / kver
        (mods / "kernel/drivers").mkdir(parents=True)
        src = x / "lib/modules" / kver
        shutil.copytree(src / "kernel/drivers/xen", mods / "kernel/drivers/xen", symlinks=True)
        for f in src.glob("modules.*"):
            if f.name.startswith(("modules.order", "modules.builtin")):
                shutil.copy(f, mods / f.name)
        shutil.copy(x / "bin/busybox", tmp / "busybox")
        (tmp / "versions").write_text("".join(f"{p} {v}\n" for p, v in zip(pkgs, vers)))
        shutil.rmtree(x)
        shutil.rmtree(debs)
    log(f"boot stage built in {time.monotonic() - t0:.0f} s")
    return cache_root() / "boot", key


def build_dom0(boot: Path, boot_key: str) -> Path:
    script = IMAGES_DIR / "build-dom0.sh"
    mirror = debian_mirror()
    sources = apt_sources()
    kver = (boot / "kver").read_text().strip()
    key = sha("dom0", script.read_bytes(), mirror, kver, boot_key,
              *[s.read_bytes() for s in sources])
    d = stage_ready("dom0", key)
    if d:
        return d / "dom0.cpio.gz"
    log("building dom0 root (debootstrap + xen-utils-4.17, about a minute)")
    t0 = time.monotonic()
    with stage_build("dom0", key) as tmp:
        srcdir = tmp / "apt-sources"
        srcdir.mkdir()
        for s in sources:
            name = s.name if s.parent.name == "sources.list.d" else "host.list"
            shutil.copy(s, srcdir / name)
        sh(["bash", script, tmp / "dom0.cpio.gz", mirror, boot / "modules" / kver, kver, srcdir])
        shutil.rmtree(srcdir)
    log(f"dom0 root built in {time.monotonic() - t0:.0f} s")
    return cache_root() / "dom0" / "dom0.cpio.gz"


def newc_archive(entries: list[tuple[str, int, bytes | None]]) -> bytes:
    """A newc cpio archive from (path, mode, data-or-None-for-dir) entries."""
    out = io.BytesIO()
    ino = 1000

    def put(name: str, mode: int, data: bytes) -> None:
        nonlocal ino
        ino += 1
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.write(hdr.encode() + nb)
        out.write(b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
        out.write(data)
        out.write(b"\0" * ((4 - len(data) % 4) % 4))

    seen = set()
    for path, mode, data in entries:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in seen:
                seen.add(d)
                put(d, 0o040755, b"")
        if data is None:
            if path.strip("/") not in seen:
                seen.add(path.strip("/"))
                put(path.strip("/"), 0o040000 | mode, b"")
        else:
            put(path.strip("/"), 0o100000 | mode, data)
    put("TRAILER!!!", 0, b"")
    return out.getvalue()


def build_guest(boot: Path, boot_key: str, name: str = "guest") -> Path:
    init = IMAGES_DIR / "guest-init.sh"
    key = sha("guest", init.read_bytes(), boot_key)
    d = stage_ready(name, key)
    if d:
        return d / "guest.cpio.gz"
    with stage_build(name, key) as tmp:
        arc = newc_archive([
            ("init", 0o755, init.read_bytes()),
            ("bin/busybox", 0o755, (boot / "busybox").read_bytes()),
            ("bin/sh", 0o755, b"#!/bin/busybox sh\nexec /bin/busybox sh \"$@\"\n"),
            ("dev", 0o755, None), ("proc", 0o755, None), ("sys", 0o755, None),
            ("tmp", 0o1777, None),
        ])
        (tmp / "guest.cpio.gz").write_bytes(gzip.compress(arc, 6))
    log(f"guest initramfs built ({name})")
    return cache_root() / name / "guest.cpio.gz"


def build(host: str = "xen417") -> Images:
    """Build (or reuse) the images of one host."""
    if host not in HOSTS:
        raise LabError(f"unknown host {host!r}; known: {' '.join(HOSTS)}")
    if host == ARM_HOST:
        return build_arm_host()
    if host != "xen417":
        return build_new_host(host)
    require_tools()
    with cache_lock():
        t0 = time.monotonic()
        boot, bkey = build_boot()
        dom0 = build_dom0(boot, bkey)
        guest = build_guest(boot, bkey)
        log(f"images ready in {time.monotonic() - t0:.1f} s ({cache_root()})")
        return Images(xen=boot / "xen.elf", vmlinuz=boot / "vmlinuz",
                      kver=(boot / "kver").read_text().strip(), dom0=dom0, guest=guest)


# --------------------------------------------------------------------------- xen420 / xen421

class PrivateApt:
    """apt for one Debian suite with its own sources list and lists dir (the host's
    /etc/apt is never changed): the mirror is the host's (debian_mirror())."""

    def __init__(self, suite: str, arch: str | None = None):
        self.suite = suite
        self.arch = arch            # a foreign architecture (arm64): its own lists
        self.dir = cache_root() / "apt" / (f"{suite}-{arch}" if arch else suite)
        self.mirror = debian_mirror()

    def opts(self) -> list[str]:
        d = self.dir
        return ["-o", f"Dir::Etc::SourceList={d / 'sources.list'}",
                "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State::Lists={d / 'lists'}",
                "-o", f"Dir::Cache={d / 'cache'}",
                "-o", "Dir::State::status=/dev/null",
                "-o", "APT::Sandbox::User=root"] + (
                ["-o", f"APT::Architecture={self.arch}", "-o", f"APT::Architectures={self.arch}"]
                if self.arch else [])

    def sources(self) -> str:
        arch = f"arch={self.arch} " if self.arch else ""
        return (f"deb [{arch}signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                f"{self.mirror} {self.suite} main\n")

    def update(self, force: bool = False) -> None:
        src = self.dir / "sources.list"
        lists = self.dir / "lists"
        stamp = self.dir / "updated"
        fresh = (src.is_file() and src.read_text() == self.sources() and stamp.is_file()
                 and time.time() - stamp.stat().st_mtime < APT_LISTS_MAX_AGE)
        if fresh and not force:
            return
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.dir / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        src.write_text(self.sources())
        log(f"apt lists for {self.suite} (private apt configuration)")
        sh(["apt-get", *self.opts(), "update", "-qq"])
        stamp.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))

    def candidate(self, pkg: str) -> str:
        out = sh(["apt-cache", *self.opts(), "policy", pkg], capture=True, quiet=True)
        m = re.search(r"Candidate:\s*(\S+)", out)
        return "" if not m or m.group(1) == "(none)" else m.group(1)

    def need(self, pkg: str) -> str:
        v = self.candidate(pkg)
        if not v:
            self.update(force=True)
            v = self.candidate(pkg)
        if not v:
            raise LabError(f"{pkg} is not in Debian {self.suite} ({self.mirror})")
        return v

    def depends_image(self, meta: str) -> str:
        out = sh(["apt-cache", *self.opts(), "depends", meta], capture=True, quiet=True)
        m = re.search(r"Depends:\s*(linux-image-\S+)", out)
        if not m:
            raise LabError(f"cannot resolve {meta} in {self.suite}")
        return m.group(1)

    def download(self, specs: list[str], dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        os.chmod(dest, 0o777)
        sh(["apt-get", *self.opts(), "download", "-q", *specs], cwd=dest)


def build_trixie_boot() -> tuple[Path, str]:
    """trixie's Xen 4.20 hypervisor, trixie's 6.12 kernel (dom0 and the old guest) with
    its Xen modules, trixie's static busybox, and sid's 7.2 kernel (the new guest)."""
    tx, sid = PrivateApt("trixie"), PrivateApt("sid")
    tx.update()
    sid.update()
    kpkg = tx.depends_image(KERNEL_META)
    pkgs = [TRIXIE_XEN_PKG, TRIXIE_XEN_UTILS, kpkg, BUSYBOX_PKG]
    vers = [tx.need(p) for p in pkgs]
    newver = sid.need(KERNEL_NEW_PKG)
    key = sha("trixie-boot", TRIXIE_STAGE_VERSION, *pkgs, *vers, KERNEL_NEW_PKG, newver)
    d = stage_ready("trixie-boot", key)
    if d:
        return d, key
    log(f"building trixie boot stage: {', '.join(f'{p}={v}' for p, v in zip(pkgs, vers))}, "
        f"sid {KERNEL_NEW_PKG}={newver}")
    t0 = time.monotonic()
    with stage_build("trixie-boot", key) as tmp:
        debs = tmp / "debs"
        tx.download([f"{p}={v}" for p, v in zip(pkgs, vers) if p != TRIXIE_XEN_UTILS], debs)
        sid.download([f"{KERNEL_NEW_PKG}={newver}"], debs / "sid")
        x = tmp / "x"
        for deb in sorted(debs.glob("*.deb")):
            sh(["dpkg-deb", "-x", deb, x], quiet=True)
        xz = next((x / "boot").glob("xen-4.20-amd64.gz"), None)
        if not xz:
            raise LabError("no boot/xen-4.20-amd64.gz in " + TRIXIE_XEN_PKG)
        (tmp / "xen.elf").write_bytes(gzip.decompress(xz.read_bytes()))
        vmlinuz = min((x / "boot").glob("vmlinuz-*"))
        kver = vmlinuz.name[len("vmlinuz-"):]
        shutil.copy(vmlinuz, tmp / "vmlinuz")
        (tmp / "kver").write_text(kver + "\n")
        src = x / "usr/lib/modules" / kver
        if not src.is_dir():
            src = x / "lib/modules" / kver
        mods = tmp / "modules" / kver
        (mods / "kernel/drivers").mkdir(parents=True)
        shutil.copytree(src / "kernel/drivers/xen", mods / "kernel/drivers/xen", symlinks=True)
        for f in src.glob("modules.*"):
            if f.name.startswith(("modules.order", "modules.builtin")):
                shutil.copy(f, mods / f.name)
        bb = x / "bin/busybox" if (x / "bin/busybox").exists() else x / "usr/bin/busybox"
        shutil.copy(bb, tmp / "busybox")
        xs = tmp / "x-sid"
        for deb in sorted((debs / "sid").glob("*.deb")):
            sh(["dpkg-deb", "-x", deb, xs], quiet=True)
        newk = next(iter(sorted(xs.glob("usr/lib/modules/*/vmlinuz")) + sorted(xs.glob("boot/vmlinuz-*"))), None)
        if not newk:
            raise LabError(f"no kernel image in {KERNEL_NEW_PKG}")
        shutil.copy(newk, tmp / "vmlinuz-new")
        (tmp / "versions").write_text("".join(f"{p} {v}\n" for p, v in zip(pkgs, vers))
                                      + f"{KERNEL_NEW_PKG} {newver}\n")
        (tmp / "xen-utils-version").write_text(vers[1] + "\n")
        shutil.rmtree(x)
        shutil.rmtree(xs)
        shutil.rmtree(debs)
    log(f"trixie boot stage built in {time.monotonic() - t0:.0f} s")
    return cache_root() / "trixie-boot", key


def load_xensrc():
    path = HERE / "xensrc.py"
    if not path.is_file():
        raise LabError("xen421 needs tests/xen/xensrc.py (the Xen source build), not here yet")
    import importlib.util
    name = "xcinspect_xen_lab_xensrc"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def xensrc_stage() -> Path:
    mod = load_xensrc()
    t0 = time.monotonic()
    try:
        d = Path(mod.build_xensrc(cache_root(), log=log))
    except Exception as e:          # XenSrcError and whatever the build raised
        if isinstance(e, LabError):
            raise
        raise LabError(f"xen421's Xen source build: {e}") from e
    for f in ("xen.elf", "dist-install.tar.gz", "version"):
        if not (d / f).is_file():
            raise LabError(f"xensrc stage {d} lacks {f}")
    log(f"xen source stage ready in {time.monotonic() - t0:.1f} s: {(d / 'version').read_text().strip()}")
    return d


def xensrc_key(d: Path) -> str:
    stamp = d / "STAMP"
    if stamp.is_file():
        return sha("xensrc", stamp.read_text(), (d / "version").read_text())
    h = hashlib.sha256()
    with open(d / "dist-install.tar.gz", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return sha("xensrc", h.hexdigest(), (d / "version").read_text())


def build_trixie_dom0(host: str, boot: Path, boot_key: str, xsrc: Path | None) -> Path:
    script = IMAGES_DIR / "build-dom0-trixie.sh"
    mirror = debian_mirror()
    kver = (boot / "kver").read_text().strip()
    if host == "xen420":
        mode, arg = "debian", (boot / "xen-utils-version").read_text().strip()
        extra = arg
    else:
        mode, arg = "xensrc", str(xsrc / "dist-install.tar.gz")
        extra = xensrc_key(xsrc)
    name = f"{host}-dom0"
    key = sha(name, script.read_bytes(), mirror, kver, boot_key, mode, extra)
    d = stage_ready(name, key)
    if d:
        return d / "dom0.cpio.gz"
    log(f"building {host} dom0 root (debootstrap trixie, {mode})")
    t0 = time.monotonic()
    with stage_build(name, key) as tmp:
        sh(["bash", script, tmp / "dom0.cpio.gz", mirror, boot / "modules" / kver, kver, mode, arg])
    log(f"{host} dom0 root built in {time.monotonic() - t0:.0f} s")
    return cache_root() / name / "dom0.cpio.gz"


def build_new_host(host: str) -> Images:
    require_tools()
    t0 = time.monotonic()
    xsrc = xensrc_stage() if host == "xen421" else None    # its own lock and cache
    with cache_lock():
        boot, bkey = build_trixie_boot()
        dom0 = build_trixie_dom0(host, boot, bkey, xsrc)
        guest = build_guest(boot, bkey, "trixie-guest")
        log(f"{host} images ready in {time.monotonic() - t0:.1f} s ({cache_root()})")
        return Images(
            xen=(xsrc / "xen.elf") if xsrc else boot / "xen.elf",
            vmlinuz=boot / "vmlinuz", kver=(boot / "kver").read_text().strip(),
            dom0=dom0, guest=guest, host=host,
            kernels={"vmlinuz-new": boot / "vmlinuz-new"},
            guests=[("guest1", "vmlinuz-new", 256, "new"), ("guest2", "vmlinuz", 256, "old")],
            qemu_args=list(QEMU_ARGS_NEW), xen_cmdline=XEN_CMDLINE_NEW, python="3.13")


# --------------------------------------------------------------------------- xenarm

def arm_apt() -> PrivateApt:
    apt = PrivateApt(ARM_SUITE, "arm64")
    apt.update()
    return apt


def _unpack(debs: Path, dest: Path) -> None:
    for deb in sorted(debs.glob("*.deb")):
        sh(["dpkg-deb", "-x", deb, dest], quiet=True)


def build_arm_boot(apt: PrivateApt) -> tuple[Path, str]:
    """bookworm arm64: Xen 4.17's arm64 Image, the 6.1 kernel Image (dom0 and guests) with
    its Xen modules, static busybox."""
    kpkg = apt.depends_image(ARM_KERNEL_META)
    pkgs = [ARM_XEN_PKG, kpkg, BUSYBOX_PKG]
    vers = [apt.need(p) for p in pkgs]
    key = sha("xenarm-boot", ARM_STAGE_VERSION, *pkgs, *vers)
    d = stage_ready("xenarm-boot", key)
    if d:
        return d, key
    log(f"building xenarm boot stage: {', '.join(f'{p}={v}' for p, v in zip(pkgs, vers))}")
    t0 = time.monotonic()
    with stage_build("xenarm-boot", key) as tmp:
        debs = tmp / "debs"
        apt.download([f"{p}={v}" for p, v in zip(pkgs, vers)], debs)
        x = tmp / "x"
        _unpack(debs, x)
        xen = next(iter(sorted((x / "boot").glob("xen-4.17-arm64*"))), None)
        if not xen:
            raise LabError(f"no boot/xen-4.17-arm64 in {ARM_XEN_PKG}")
        data = xen.read_bytes()
        (tmp / "xen").write_bytes(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
        vmlinuz = min((x / "boot").glob("vmlinuz-*"))
        kver = vmlinuz.name[len("vmlinuz-"):]
        data = vmlinuz.read_bytes()     # an uncompressed arm64 Image (guest-loader, xl)
        (tmp / "Image").write_bytes(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
        (tmp / "kver").write_text(kver + "\n")
        src = x / "lib/modules" / kver
        if not src.is_dir():
            src = x / "usr/lib/modules" / kver
        mods = tmp / "modules" / kver
        (mods / "kernel/drivers").mkdir(parents=True)
        shutil.copytree(src / "kernel/drivers/xen", mods / "kernel/drivers/xen", symlinks=True)
        for f in src.glob("modules.*"):
            if f.name.startswith(("modules.order", "modules.builtin")):
                shutil.copy(f, mods / f.name)
        bb = x / "bin/busybox" if (x / "bin/busybox").exists() else x / "usr/bin/busybox"
        shutil.copy(bb, tmp / "busybox")
        (tmp / "versions").write_text("".join(f"{p} {v}\n" for p, v in zip(pkgs, vers)))
        shutil.rmtree(x)
        shutil.rmtree(debs)
    log(f"xenarm boot stage built in {time.monotonic() - t0:.0f} s")
    return cache_root() / "xenarm-boot", key


ARM_PASSWD = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
ARM_GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"


def build_arm_dom0(apt: PrivateApt, boot: Path, boot_key: str) -> Path:
    """dom0 root: the Depends closure of ARM_DOM0_PKGS (Essential packages named in the
    list), unpacked with dpkg-deb -x, bin/sbin/lib merged into usr/, the kernel's Xen
    modules; /etc/xci-unpacked-root tells dom0's /init to run ldconfig, depmod and
    busybox --install (no maintainer scripts ever ran)."""
    out = sh(["apt-get", *apt.opts(), "install", "-s", "-q", "--no-install-recommends", *ARM_DOM0_PKGS], capture=True, quiet=True)
    specs = sorted(f"{m.group(1)}={m.group(2)}" for m in re.finditer(r"^Inst (\S+) \((\S+)", out, re.MULTILINE))
    if not specs:
        raise LabError(f"cannot resolve the xenarm dom0 packages:\n{out[-2000:]}")
    kver = (boot / "kver").read_text().strip()
    key = sha("xenarm-dom0", ARM_STAGE_VERSION, boot_key, *specs)
    d = stage_ready("xenarm-dom0", key)
    if d:
        return d / "dom0.cpio.gz"
    log(f"building xenarm dom0 root ({len(specs)} arm64 packages, dpkg-deb -x)")
    t0 = time.monotonic()
    with stage_build("xenarm-dom0", key) as tmp:
        debs = tmp / "debs"
        apt.download(specs, debs)
        r = tmp / "root"
        for sub in ("usr/bin", "usr/sbin", "usr/lib"):
            (r / sub).mkdir(parents=True)
        _unpack(debs, r)
        # dpkg-deb -x replaces the bin/sbin/lib -> usr/* symlinks by directories: merge.
        for sub in ("bin", "sbin", "lib"):
            p = r / sub
            if p.is_dir() and not p.is_symlink():
                sh(["cp", "-a", f"{p}/.", r / "usr" / sub], quiet=True)
                shutil.rmtree(p)
            if not p.is_symlink():
                p.symlink_to(f"usr/{sub}")
        if not (r / "usr/bin/sh").exists():
            (r / "usr/bin/sh").symlink_to("bash")
        mods = r / "usr/lib/modules" / kver
        mods.mkdir(parents=True, exist_ok=True)
        shutil.copytree(boot / "modules" / kver, mods, symlinks=True, dirs_exist_ok=True)
        for sub in ("proc", "sys", "dev", "run", "tmp", "root", "etc/xen", "var/log", "var/lib/xen"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "tmp", 0o1777)
        for sub in ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info"):
            shutil.rmtree(r / sub, ignore_errors=True)
        (r / "etc/passwd").write_text(ARM_PASSWD)
        (r / "etc/group").write_text(ARM_GROUP)
        (r / "etc/hostname").write_text("xcidom0\n")
        (r / "etc/xci-unpacked-root").write_text("ldconfig depmod busybox\n")
        if not (r / "usr/lib/xen-4.17/bin/oxenstored").exists():
            raise LabError("xenarm dom0 root lacks /usr/lib/xen-4.17/bin/oxenstored")
        # No maintainer script ran, so no py3compile either: Debian's Python ships .py only.
        # Compiled under TCG at first import, the stdlib made every first python3 start in
        # dom0 take minutes. Compile here with the host's 3.11 (same bytecode as dom0's
        # 3.11; unchecked-hash: never revalidated against the sources' mtimes).
        compile_tree(r, ["usr/lib/python3.11", "usr/lib/python3/dist-packages"])
        (tmp / "packages").write_text("\n".join(specs) + "\n")
        sh(["bash", "-c", "set -o pipefail; cd root && find . | cpio -H newc -o --quiet | gzip -1 > ../dom0.cpio.gz"],
           cwd=tmp, quiet=True)
        shutil.rmtree(r)
        shutil.rmtree(debs)
    log(f"xenarm dom0 root built in {time.monotonic() - t0:.0f} s")
    return cache_root() / "xenarm-dom0" / "dom0.cpio.gz"


def compile_tree(root: Path, subdirs: list[str]) -> None:
    """Byte-compile ROOT/SUBDIR/** for dom0's Python 3.11 (``root`` stripped from the
    recorded file names), unchecked-hash pycs."""
    if sys.version_info[:2] != (3, 11):
        log(f"warning: host Python {sys.version.split()[0]} cannot byte-compile for dom0's 3.11; skipped")
        return
    dirs = [root / d for d in subdirs if (root / d).is_dir()]
    sh([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
        "-s", root, "-p", "/", *dirs], quiet=True, check=False)


def build_arm_host() -> Images:
    require_tools(ARM_HOST)
    t0 = time.monotonic()
    with cache_lock():
        apt = arm_apt()
        boot, bkey = build_arm_boot(apt)
        dom0 = build_arm_dom0(apt, boot, bkey)
        guest = build_guest(boot, bkey, "xenarm-guest")
        log(f"xenarm images ready in {time.monotonic() - t0:.1f} s ({cache_root()})")
        return Images(xen=boot / "xen", vmlinuz=boot / "Image", kver=(boot / "kver").read_text().strip(),
                      dom0=dom0, guest=guest, host=ARM_HOST, qemu_args=list(QEMU_ARGS_ARM),
                      xen_cmdline=XEN_CMDLINE_ARM, arch="aarch64", guest_type="",
                      timeout_scale=ARM_TIMEOUT_SCALE)


# --------------------------------------------------------------------------- xenarm gate

# `pytest tests/xen -m xen` without XCINSPECT_LAB_HOSTS runs the x86 hosts every time and
# xenarm only when what it exercises changed since its last complete passing run (the
# .ci/run time budget has no room for a fourth host every time). The inputs: its recipe
# (this file, the dom0 runner, the guest init), the scenarios that name xenarm, the pytest
# glue, the project's dependencies, and the code whose behaviour depends on the
# architecture or that the Arm scenarios drive below the CLI (xcinspect/platform/, the
# ring, the backend and its journal). XCINSPECT_LAB_ARM=always|never overrides.
# The record of the last passing run is kept in the checkout (tests/xen/xenarm-passed.json,
# committed with the change it covers) so that a clean clone on a fresh CI machine knows it
# too; a passing run also writes it. A copy in the lab cache covers local runs.
ARM_GATE_FILE = "xenarm-gate.json"
ARM_GATE_RECORD = HERE / "xenarm-passed.json"
ARM_GATE_INPUTS = ("tests/xen/lab.py", "tests/xen/conftest.py", "tests/xen/test_xen_e2e.py",
                   "tests/xen/setup-host.sh", "tests/xen/dom0", "tests/xen/images/guest-init.sh",
                   "xcinspect/platform", "xcinspect/core/ring.py", "xcinspect/engine/service.py",
                   "xcinspect/engine/journal.py", "pyproject.toml")


def arm_gate_files() -> list[Path]:
    files: list[Path] = []
    for rel in ARM_GATE_INPUTS:
        p = CHECKOUT / rel
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
        elif p.is_file():
            files.append(p)
    files += [SCENARIO_DIR / f"{n}.sh" for n in scenario_names(ARM_HOST)]
    return files


def arm_inputs_hash() -> str:
    h = hashlib.sha256()
    for f in arm_gate_files():
        h.update(str(f.relative_to(CHECKOUT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def arm_gate() -> tuple[bool, str]:
    """(run xenarm?, why) for a default run of the suite."""
    mode = os.environ.get("XCINSPECT_LAB_ARM", "auto").strip().lower()
    if mode in ("always", "1", "yes"):
        return True, "XCINSPECT_LAB_ARM=always"
    if mode in ("never", "0", "no"):
        return False, "XCINSPECT_LAB_ARM=never"
    key = arm_inputs_hash()
    records = []
    for where in (ARM_GATE_RECORD, cache_root() / ARM_GATE_FILE):
        try:
            records.append(json.loads(where.read_text()))
        except (OSError, ValueError):
            continue
    for last in records:
        if last.get("inputs") == key:
            return False, (f"its inputs ({key}) are unchanged since the passing run of "
                           f"{last.get('when', '?')} ({last.get('wall_s', '?')} s)")
    if not records:
        return True, f"no passing xenarm run recorded ({ARM_GATE_RECORD.name})"
    return True, f"its inputs changed ({records[0].get('inputs')} -> {key})"


def record_arm_pass(key: str, report) -> None:
    text = json.dumps({
        "inputs": key, "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "wall_s": round(report.wall), "scenarios": sorted(report.results)}, indent=1) + "\n"
    (cache_root() / ARM_GATE_FILE).write_text(text)
    with contextlib.suppress(OSError):
        ARM_GATE_RECORD.write_text(text)
    log(f"xenarm: passing run recorded (inputs {key}) in {ARM_GATE_RECORD} (commit it); "
        "the next default run skips xenarm until they change")


# --------------------------------------------------------------------------- wheels

def project_deps_key() -> str:
    import tomllib
    data = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())
    return sha("deps", sys.version_info[:2], json.dumps(data["project"].get("dependencies", [])))


def build_wheels(dest: Path) -> list[Path]:
    """The project's wheel (fresh) + its dependencies' wheels (cached by pyproject deps)."""
    if sys.version_info[:2] != (3, 11):
        log(f"warning: host Python is {sys.version.split()[0]}; dom0 has 3.11 "
            "(compiled wheels may not fit)")
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check"]
    deps = cache_root() / "wheels" / project_deps_key()
    if not (deps / "OK").is_file():
        tmp = deps.with_name(deps.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        sh(pip + ["-w", tmp, CHECKOUT])
        for w in tmp.glob("xcinspect-*.whl"):
            w.unlink()
        (tmp / "OK").write_text("")
        shutil.rmtree(deps, ignore_errors=True)
        tmp.rename(deps)
    for w in deps.glob("*.whl"):
        shutil.copy(w, dest / w.name)
    with tempfile.TemporaryDirectory() as td:
        sh(pip + ["--no-deps", "-w", td, CHECKOUT])
        for w in Path(td).glob("*.whl"):
            shutil.copy(w, dest / w.name)
    return sorted(dest.glob("*.whl"))


# --------------------------------------------------------------------------- runs

def scenario_names(host: str | None = None) -> list[str]:
    """Every scenario, or those that run on HOST (its `# xci-hosts:` header)."""
    names = sorted(p.stem for p in SCENARIO_DIR.glob("[0-9][0-9]-*.sh"))
    return names if host is None else [n for n in names if host in scenario_hosts(n)]


def scenario_hosts(name: str) -> tuple[str, ...]:
    m = re.search(r"^# xci-hosts:\s*(.+)$", (SCENARIO_DIR / f"{name}.sh").read_text(), re.MULTILINE)
    if not m:
        return DEFAULT_SCENARIO_HOSTS
    hosts = tuple(m.group(1).split())
    bad = [h for h in hosts if h not in HOSTS]
    if bad:
        raise LabError(f"{name}: unknown host(s) in xci-hosts: {' '.join(bad)}")
    return hosts


def select_scenarios(wanted: list[str] | None, host: str = "xen417") -> list[str]:
    names = scenario_names(host)
    if not wanted:
        return names
    everything = scenario_names()
    out = []
    for w in wanted:
        w = Path(w).stem
        hit = [n for n in everything if n == w or n.split("-", 1)[0] == w or n.split("-", 1)[-1] == w]
        if not hit:
            raise LabError(f"unknown scenario {w!r}; known: {' '.join(everything)}")
        off = [h for h in hit if h not in names]
        if off:
            raise LabError(f"{' '.join(off)} does not run on {host} (xci-hosts: "
                           f"{' '.join(scenario_hosts(off[0]))})")
        out += [h for h in hit if h not in out]
    return sorted(out)


def scenario_timeout(name: str) -> int:
    m = re.search(r"^# xci-timeout:\s*(\d+)", (SCENARIO_DIR / f"{name}.sh").read_text(), re.MULTILINE)
    return int(m.group(1)) if m else DEFAULT_SCENARIO_TIMEOUT


def build_overlay(run: Path, images: Images, wheels: list[Path], scenarios: list[str],
                  token: str) -> Path:
    specs = " ".join(f"{n}:{k}:{m}:{kind or '-'}" for n, k, m, kind in images.guests)
    conf = (f"XCI_TOKEN={token}\nXCI_SCENARIOS='{' '.join(scenarios)}'\n"
            f"XCI_HOST={images.host}\nXCI_GUEST_SPECS='{specs}'\n"
            f"XCI_DEFAULT_TIMEOUT={DEFAULT_SCENARIO_TIMEOUT}\n"
            f"XCI_GUEST_TYPE='{images.guest_type}'\n"
            f"XCI_TIMEOUT_SCALE={images.timeout_scale}\n")
    entries = [
        ("init", 0o755, (DOM0_DIR / "init").read_bytes()),
        ("opt/xci/lab.conf", 0o644, conf.encode()),
        ("opt/xci/run-lab.sh", 0o755, (DOM0_DIR / "run-lab.sh").read_bytes()),
        ("opt/xci/lib.sh", 0o644, (DOM0_DIR / "lib.sh").read_bytes()),
        ("opt/xci/ring.py", 0o755, (DOM0_DIR / "ring.py").read_bytes()),
        ("opt/xci/vmlinuz", 0o644, images.vmlinuz.read_bytes()),
        ("opt/xci/guest.cpio.gz", 0o644, images.guest.read_bytes()),
    ]
    for name, path in images.kernels.items():
        entries.append((f"opt/xci/{name}", 0o644, path.read_bytes()))
    for s in scenario_names():
        entries.append((f"opt/xci/scenarios/{s}.sh", 0o755, (SCENARIO_DIR / f"{s}.sh").read_bytes()))
    entries += preinstalled_site(run, wheels, images.python, images.dom0)
    path = run / "overlay.cpio.gz"
    path.write_bytes(gzip.compress(newc_archive(entries), 1))
    return path


CONSOLE_SCRIPT = "#!/usr/bin/python3\nimport sys\nfrom xcinspect.cli import main\nsys.exit(main())\n"


def dom0_python_root(dom0: Path) -> Path | None:
    """dom0's root tree unpacked beside its cached cpio (once per dom0 stage), to run dom0's
    own Python in a chroot on the build host; None when that cannot be done here."""
    root = dom0.parent / "python-root"
    if (root / ".done").exists():
        return root
    if os.geteuid() != 0 or not shutil.which("cpio") or not shutil.which("chroot"):
        return None
    tmp = dom0.parent / "python-root.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with open(dom0, "rb") as f:
        unzip = subprocess.Popen(["gzip", "-dc"], stdin=f, stdout=subprocess.PIPE)
        r = subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], stdin=unzip.stdout,
                           cwd=tmp, stderr=subprocess.PIPE)
        unzip.stdout.close()
        unzip.wait()
    if r.returncode or unzip.returncode:
        log(f"warning: unpacking {dom0} for its Python failed: {r.stderr.decode(errors='replace')[-300:]}")
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    (tmp / ".done").touch()
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def compile_in_dom0_root(site: Path, dest: str, python: str, dom0: Path | None) -> bool:
    """Byte-compile SITE with dom0's own python (python3.13 in a trixie dom0; chroot into its
    unpacked root), recording the file names dom0 sees. Without it every boot compiled
    textual and rich from source at the first TUI start: 30-70 s in a TCG dom0 (xen421's
    scenario 11 then saw a blank TUI for 90 s)."""
    root = dom0_python_root(dom0) if dom0 is not None else None
    exe = f"/usr/bin/python{python}"
    if root is None or not (root / exe.lstrip("/")).exists():
        log(f"warning: no python{python} to byte-compile dom0's packages with; dom0 compiles them at first import")
        return False
    inside = Path("tmp") / f"xci-site-{os.getpid()}"
    work = root / inside
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(site, work)
    try:
        r = subprocess.run(["chroot", str(root), exe, "-m", "compileall", "-q", "-j", "1",
                            "--invalidation-mode", "unchecked-hash", "-s", "/" + str(inside), "-p", "/" + dest,
                            "/" + str(inside)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode:
            log(f"warning: python{python} in dom0's root could not compile: {r.stdout.decode(errors='replace')[-300:]}")
            return False
        shutil.rmtree(site)
        shutil.copytree(work, site)
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def preinstalled_site(run: Path, wheels: list[Path], python: str = "3.11",
                      dom0: Path | None = None) -> list[tuple[str, int, bytes | None]]:
    """The project and its pure-Python dependencies installed on the build host (``pip
    install --target``) into dom0's /usr/local/lib/pythonX.Y/dist-packages, plus the
    console script. pip inside the TCG dom0 took 5-6 minutes on arm64 and 1-2 on x86, on
    every boot; the wheels are the same py3-none-any files either way."""
    # cffi and its pycparser stay Debian's (python3-cffi is in every dom0 image; pip left
    # it alone too, Debian's cffi satisfying the requirement)
    pure = [w for w in wheels if w.name.endswith("-none-any.whl")
            and not w.name.startswith(("cffi-", "pycparser-"))]
    site = run / "site"
    sh([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
        "--disable-pip-version-check", "--target", site, *pure], quiet=True)
    shutil.rmtree(site / "bin", ignore_errors=True)
    dest = f"usr/local/lib/python{python}/dist-packages"
    # byte-compiled here, with the file names dom0 sees: by the host's Python when it is
    # dom0's (see compile_tree), else by dom0's own in a chroot of its root
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == python:
        sh([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
            "unchecked-hash", "-s", site, "-p", "/" + dest, site], quiet=True, check=False)
    else:
        compile_in_dom0_root(site, dest, python, dom0)
    entries: list[tuple[str, int, bytes | None]] = []
    for f in sorted(site.rglob("*")):
        rel = f.relative_to(site)
        if not f.is_file() or f.is_symlink():
            continue
        entries.append((f"{dest}/{rel}", 0o644, f.read_bytes()))
    entries.append(("usr/local/bin/xcinspect", 0o755, CONSOLE_SCRIPT.encode()))
    entries.append(("opt/xci/preinstalled", 0o644,
                    "".join(f"{w.name}\n" for w in pure).encode()))
    shutil.rmtree(site)
    return entries


@dataclasses.dataclass
class Result:
    name: str
    status: str = "NOT RUN"        # PASS, FAIL, NOT RUN
    rc: int | None = None
    ms: int | None = None
    output: str = ""
    evidence: str = ""
    leftovers: list[str] = dataclasses.field(default_factory=list)   # what restore() reset

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def report(self) -> str:
        parts = [f"=== {self.name}: {self.status}"
                 + (f" (rc {self.rc}, {self.ms / 1000:.1f} s)" if self.ms is not None else ""),
                 "--- scenario output", self.output.rstrip() or "(none)"]
        if self.leftovers:
            parts += ["--- left behind (reset before the next scenario): " + " ".join(self.leftovers)]
        if self.evidence:
            parts += ["--- dom0 evidence", self.evidence.rstrip()]
        return "\n".join(parts)


@dataclasses.dataclass
class RunReport:
    results: dict[str, Result]
    setup_errors: list[str]
    stages: dict[str, float]
    done: bool
    wall: float
    run_dir: Path
    serial_log: Path
    setup_text: str = ""
    host: str = "xen417"
    build_s: float = 0.0

    def summary(self) -> str:
        lines = [f"Xen lab run ({self.host}): {self.run_dir}",
                 f"build/cache check {self.build_s:.0f} s",
                 "stages (dom0 uptime s): " + ", ".join(f"{k} {v:.1f}" for k, v in self.stages.items()),
                 f"wall time {self.wall:.0f} s, {'completed' if self.done else 'INCOMPLETE'}"]
        lines += [f"SETUP FAIL: {e}" for e in self.setup_errors]
        for r in self.results.values():
            lines.append(f"  {r.status:7} {r.name}" + (f"  ({r.ms / 1000:.1f} s)" if r.ms else "")
                         + (f"  left: {' '.join(r.leftovers)}" if r.leftovers else ""))
        return "\n".join(lines)


_CLEAN = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


class SerialParser:
    """Incremental parser of the serial log: markers may share a line with Xen output."""

    def __init__(self, token: str, scenarios: list[str]):
        self.mark = re.compile(r"@@XCI:" + re.escape(token) + r" (\S+)(.*)")
        self.results = {s: Result(s) for s in scenarios}
        self.setup_errors: list[str] = []
        self.stages: dict[str, float] = {}
        self.done = False
        self.current: str | None = None
        self.capture: tuple[str, str] | None = None      # (scenario, "output"|"evidence")
        self.buf: list[str] = []
        self.setup_lines: list[str] = []
        self.pending = ""

    def feed(self, data: str, echo=None) -> None:
        self.pending += data
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.line(_CLEAN.sub("", line), echo)

    def line(self, line: str, echo) -> None:
        m = self.mark.search(line)
        if not m:
            if self.capture:
                self.buf.append(line)
            elif self.setup_errors:
                self.setup_lines.append(line)
            return
        word, rest = m.group(1), m.group(2).split()
        if word == "STAGE" and rest:
            with contextlib.suppress(ValueError, IndexError):
                self.stages[rest[0]] = float(rest[1])
            if echo:
                echo(f"dom0: {' '.join(rest)}")
        elif word == "SETUP":
            self.setup_errors.append(" ".join(rest))
            if echo:
                echo(f"dom0 SETUP {' '.join(rest)}")
        elif word == "BEGIN" and rest:
            self.current = rest[0]
            if echo:
                echo(f"scenario {rest[0]} ...")
        elif word in ("OUTPUT-BEGIN", "EVIDENCE-BEGIN") and rest:
            self.capture = (rest[0], "output" if word == "OUTPUT-BEGIN" else "evidence")
            self.buf = []
        elif word in ("OUTPUT-END", "EVIDENCE-END") and self.capture:
            r = self.results.setdefault(self.capture[0], Result(self.capture[0]))
            setattr(r, self.capture[1], "\n".join(self.buf).strip("\n") + "\n")
            self.capture = None
        elif word == "END" and len(rest) >= 2:
            r = self.results.setdefault(rest[0], Result(rest[0]))
            r.status = rest[1]
            for kv in rest[2:]:
                k, _, v = kv.partition("=")
                if k in ("rc", "ms") and v.lstrip("-").isdigit():
                    setattr(r, k, int(v))
            self.current = None
            if echo:
                echo(f"scenario {rest[0]}: {rest[1]}" + (f" ({r.ms / 1000:.1f} s)" if r.ms else ""))
        elif word == "LEFTOVER" and rest:
            self.results.setdefault(rest[0], Result(rest[0])).leftovers = rest[1:]
        elif word == "DONE":
            self.done = True


def prune_runs(root: Path) -> None:
    runs = sorted(root.glob("run-*"), key=lambda p: p.stat().st_mtime)
    for old in runs[:-KEEP_RUNS * len(HOSTS)]:
        shutil.rmtree(old, ignore_errors=True)


def _boot(cmd, run_dir: Path, serial: Path, token: str, names: list[str], echo, timeout: float,
          tq: float):
    """Start QEMU, feed the serial log to a parser until DONE, QEMU's exit or the timeout."""
    parser = SerialParser(token, names)
    pos = 0
    with open(run_dir / "qemu.out", "ab") as qout:
        qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qout,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            if serial.exists():
                with open(serial, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos += len(chunk)
                parser.feed(chunk.decode("utf-8", "replace"), echo)
            if parser.done:
                break
            if qemu.poll() is not None:
                echo(f"QEMU exited ({qemu.returncode}) before DONE")
                break
            if time.monotonic() - tq > timeout:
                echo(f"global timeout ({timeout:.0f} s): killing QEMU")
                break
            time.sleep(0.25)
    finally:
        if qemu.poll() is None:
            qemu.terminate()
            try:
                qemu.wait(5)
            except subprocess.TimeoutExpired:
                qemu.kill()
                qemu.wait()
    return parser, pos


def run(scenarios: list[str] | None = None, *, echo=None, timeout: float | None = None,
        host: str = "xen417") -> RunReport:
    """Build HOST if needed, boot it once, run the scenarios in order; return their results."""
    echo = echo or (lambda s: log(s))
    names = select_scenarios(scenarios, host)
    arm_key = arm_inputs_hash() if host == ARM_HOST else ""
    t_build = time.monotonic()
    images = build(host)
    build_s = time.monotonic() - t_build
    qemu_bin = f"qemu-system-{images.arch}"
    if not shutil.which(qemu_bin):
        raise LabError(f"{qemu_bin} missing (run tests/xen/setup-host.sh)")
    runs = cache_root() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    prune_runs(runs)
    run_dir = Path(tempfile.mkdtemp(prefix=time.strftime(f"run-%Y%m%d-%H%M%S-{host}-"), dir=runs))
    t0 = time.monotonic()
    wheels = build_wheels(run_dir / "wheels")
    log(f"{len(wheels)} wheels ready in {time.monotonic() - t0:.1f} s")
    token = secrets.token_hex(6)
    overlay = build_overlay(run_dir, images, wheels, names, token)
    initrd = run_dir / "initrd.cpio.gz"
    with open(initrd, "wb") as out:
        for part in (images.dom0, overlay):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    serial = run_dir / "serial.log"
    if timeout is None:
        k = images.timeout_scale
        timeout = min(GLOBAL_TIMEOUT_CAP if k == 1 else ARM_GLOBAL_TIMEOUT_CAP,
                      k * (BOOT_BUDGET + sum(scenario_timeout(n) + EVIDENCE_ALLOWANCE for n in names)))
    if images.arch == "aarch64":
        # Xen/Arm boots from QEMU's -kernel at EL2; dom0's kernel and initramfs are
        # multiboot,module nodes in the device tree (guest-loader).
        cmd = [qemu_bin, *images.qemu_args, "-serial", f"file:{serial}",
               "-kernel", str(images.xen), "-append", images.xen_cmdline,
               "-device", f"guest-loader,addr={ARM_DOM0_KERNEL_ADDR},kernel={images.vmlinuz},"
                          f"bootargs={DOM0_CMDLINE}",
               "-device", f"guest-loader,addr={ARM_DOM0_INITRD_ADDR},initrd={initrd}"]
    else:
        cmd = ["qemu-system-x86_64", *images.qemu_args, "-serial", f"file:{serial}",
               "-kernel", str(images.xen), "-append", images.xen_cmdline,
               "-initrd", f"{images.vmlinuz} {DOM0_CMDLINE},{initrd}"]
    nice = os.environ.get("XCINSPECT_LAB_NICE", "").strip()
    if nice:
        cmd = ["nice", "-n", nice, *cmd]
    (run_dir / "qemu.cmd").write_text(" ".join(cmd) + "\n")
    log(f"booting {host} under QEMU TCG: {len(names)} scenario(s), timeout {timeout:.0f} s, log {serial}")
    tq = time.monotonic()
    for attempt in (1, 2):
        parser, pos = _boot(cmd, run_dir, serial, token, names, echo, timeout, tq)
        if parser.stages or attempt == 2:
            break
        # dom0's kernel died before userspace (seen once: an int3 oops in a timer softirq
        # under TCG on a loaded machine): boot once more, keep the first log.
        echo(f"{host}: dom0 died before userspace; booting once more (first log: serial-1.log)")
        if serial.exists():
            serial.rename(run_dir / "serial-1.log")
    with open(serial, "rb") as f:
        f.seek(pos)
        parser.feed(f.read().decode("utf-8", "replace") + "\n")
    wall = time.monotonic() - tq
    report = RunReport(parser.results, parser.setup_errors, parser.stages, parser.done, wall,
                       run_dir, serial, "\n".join(parser.setup_lines[:200]), host=host,
                       build_s=build_s)
    if parser.current and parser.current in report.results:
        r = report.results[parser.current]
        r.status = "FAIL"
        r.output = (r.output or "") + "(the run ended during this scenario)\n"
    (run_dir / "results.json").write_text(json.dumps(
        {n: dataclasses.asdict(r) for n, r in report.results.items()}, indent=1))
    for f in (initrd, overlay):
        f.unlink(missing_ok=True)
    if (arm_key and names == scenario_names(ARM_HOST) and report.done and not report.setup_errors
            and all(r.passed for r in report.results.values())):
        record_arm_pass(arm_key, report)
    return report


def serial_tail(report: RunReport, n: int = 60) -> str:
    try:
        lines = _CLEAN.sub("", report.serial_log.read_text(errors="replace")).splitlines()
    except OSError:
        return "(no serial log)"
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.xen.lab", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the cached images")
    b.add_argument("--host", choices=HOSTS + ("all",), default="xen417")
    r = sub.add_parser("run", help="boot one host once and run scenarios (all of that host's by default)")
    r.add_argument("--host", choices=HOSTS, default="xen417")
    r.add_argument("scenarios", nargs="*", help="names, numbers (01) or short names (discovery)")
    r.add_argument("--timeout", type=float, default=None, help="global timeout in seconds")
    ls = sub.add_parser("list", help="list scenarios (with their hosts)")
    ls.add_argument("--host", choices=HOSTS, default=None)
    a = ap.parse_args(argv)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))    # run the finally blocks: QEMU dies too
    try:
        if a.cmd == "list":
            for n in scenario_names(a.host):
                print(f"{n:32} {' '.join(scenario_hosts(n))}")
            return 0
        if a.cmd == "build":
            for h in (HOSTS if a.host == "all" else (a.host,)):
                imgs = build(h)
                for k, v in dataclasses.asdict(imgs).items():
                    print(f"{h} {k}: {v}")
            return 0
        report = run(a.scenarios, timeout=a.timeout, host=a.host)
    except LabError as e:
        print(f"xen-lab: {e}", file=sys.stderr)
        return 2
    for res in report.results.values():
        if not res.passed:
            print(res.report())
            print()
    if report.setup_errors:
        print("--- dom0 set-up errors\n" + report.setup_text)
    if not report.done:
        print("--- serial log (tail)\n" + serial_tail(report))
    print(report.summary())
    ok = report.done and all(r.passed for r in report.results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
