"""A frozen world for deterministic tests: the sim's xenstored plus page files nobody
moves, behind a tiny Platform. No guests, no xenconsoled, no timeline -- every frame of
the app is a pure function of these pages and the injected clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from xcinspect.core import flags, ring
from xcinspect.platform.base import PageMapping, Platform, PlatformError
from xcinspect.platform.xenstore import XsClient

BOOT_LOG = (
    b"\x1b[0m[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)\r\n"
    b"[    0.000000] Command line: root=/dev/xvda1 ro console=hvc0\r\n"
    b"[    0.412345] \x1b[1;32mxen:\x1b[0m hvc0 console registered\r\n"
    b"[    1.100000] EXT4-fs (xvda1): mounted filesystem\r\n"
    b"[    2.000000] systemd[1]: \x1b]0;owned-title\x07Starting services\tok\r\n"
    b"[    2.500000] evil: \x1b]52;c;cm0gLXJmIC8K\x07 clipboard write\r\n"
    b"[    3.000000] random \x07\x08\x9b bytes \xe2\x80\xae reversed\r\n"
    b"Welcome to Debian GNU/Linux 12 (bookworm)!\r\n"
)


@dataclass
class Dom:
    domid: int
    name: str
    out_cons: int = 0
    out_prod: int = 0
    in_cons: int = 0
    in_prod: int = 0
    data: bytes = b""  # written into the out ring, ending at out_prod
    bound: bool = True
    layout: str = "none"
    flag: str | None = None
    keys: dict = field(default_factory=dict)  # overrides of console/* keys


def default_doms() -> list[Dom]:
    full = (BOOT_LOG * 20)[-ring.OUT_SIZE:]
    return [
        Dom(1, "web-01", 81920, 81920, 77, 77, data=BOOT_LOG),
        Dom(2, "db-primary", 4000, 4300, data=b"backup: 41% done\r\n" * 20),
        Dom(3, "legacy-stuck", 1_000_000, 1_000_000 + ring.OUT_SIZE, data=full, bound=False),
        Dom(4, "wrap-near-2^32", (2**32 - 700) & ring.MASK32, 800, data=b"tick tock wrap\r\n" * 100),
        Dom(5, "corrupt-idx", 10, 9000),
        Dom(6, "new-kernel", 5000, 5000, data=b"login: ", bound=False, layout="xen-4.21", flag="disconnected"),
        Dom(7, "hvm-qemu", 0, 0, keys={"type": "ioemu"}),
        Dom(8, "bad-keys", 0, 0, keys={"port": "not-a-port"}),
    ]


def page_for(d: Dom) -> bytearray:
    page = ring.blank_page(d.layout, d.flag, d.out_cons, d.out_prod, d.in_cons, d.in_prod)
    if d.data:
        # lay the data out so it ends at out_prod, wrapping like a real ring
        data = d.data[-ring.OUT_SIZE:]
        start = (d.out_prod - len(data)) & ring.MASK32
        for i, b in enumerate(data):
            page[ring.OUT_OFFSET + ((start + i) & (ring.OUT_SIZE - 1))] = b
    return page


class _Mapping(PageMapping):
    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            self.buf = bytearray(f.read())
        self.writable = False

    def close(self) -> None:
        pass


class StaticPlatform(Platform):
    kind = "sim"

    def __init__(self, directory: str, doms: list[Dom], consoled: bool = True) -> None:
        self.dir = directory
        self.doms = {d.domid: d for d in doms}
        self.consoled = consoled

    def check(self, *, need_write: bool = False) -> None:
        if not os.path.exists(self.xenstore_path()):
            raise PlatformError("static world: no xenstored socket")

    def xenstore_path(self) -> str:
        return os.path.join(self.dir, "xenstored", "socket")

    def xen_version(self) -> str:
        return "sim"

    def default_flag_layout(self) -> str:
        return flags.NONE

    def domain_flag_hint(self, domid: int):
        d = self.doms.get(domid)
        return d.layout if d else None

    def map_page(self, domid, ring_ref, *, writable=False):
        if writable:
            raise PlatformError("static world: read-only")
        path = os.path.join(self.dir, "pages", f"dom{domid}.page")
        if not os.path.exists(path):
            raise PlatformError(f"no page for dom {domid}")
        return _Mapping(path)

    def bind_evtchn(self, domid, remote_port):
        raise PlatformError("static world: no event channels")

    def port_bound(self, domid, port):
        d = self.doms.get(domid)
        return bool(d and d.bound)

    def consoled_pid(self):
        return 4242 if self.consoled else None

    def lock_dir(self) -> str:
        return os.path.join(self.dir, "lock")

    def state_dir(self) -> str:
        return os.path.join(self.dir, "state")

    def log_dir(self) -> str:
        return os.path.join(self.dir, "logs")

    def audit_log_path(self) -> str:
        return os.path.join(self.dir, "audit.log")


class StaticWorld:
    def __init__(self, directory: str, doms: list[Dom] | None = None) -> None:
        self.dir = directory
        self.doms = doms if doms is not None else default_doms()
        self.proc: subprocess.Popen | None = None

    def start(self) -> StaticWorld:
        for sub in ("pages", "lock", "state", "logs", "run", "xenstored"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        for d in self.doms:
            with open(os.path.join(self.dir, "pages", f"dom{d.domid}.page"), "wb") as f:
                f.write(page_for(d))
        sock = os.path.join(self.dir, "xenstored", "socket")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xcinspect.sim.xenstored", "--world", self.dir, "--parent-pid", str(os.getpid())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("sim xenstored did not start")
            time.sleep(0.02)
        xs = XsClient(sock)
        try:
            for d in self.doms:
                base = f"/local/domain/{d.domid}"
                xs.write(f"{base}/name", d.name)
                xs.write(f"{base}/domid", str(d.domid))
                keys = {"ring-ref": str(1000 + d.domid), "port": str(2 + d.domid % 5),
                        "type": "xenconsoled", "limit": "1048576"}
                if d.bound:
                    keys["tty"] = f"/dev/pts/{d.domid}"
                keys.update(d.keys)
                for k, v in keys.items():
                    xs.write(f"{base}/console/{k}", v)
                xs.introduce(d.domid, 0, 0)
        finally:
            xs.close()
        return self

    def platform(self, consoled: bool = True) -> StaticPlatform:
        return StaticPlatform(self.dir, self.doms, consoled)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
