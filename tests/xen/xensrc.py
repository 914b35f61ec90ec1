"""Cached lab stage: a Xen host whose toolstack writes the Xen >= 4.21 console flag.

    python tests/xen/xensrc.py            # build (or reuse) cache/xensrc/
    build_xensrc(cache_root, log=print)   # the same from Python; returns the stage dir

Built by ``images/build-xen-src.sh`` from Debian's own xen source package (fetched with
apt through a private deb-src index; the host's apt configuration is only read) plus the
lab's own patches in ``images/xen-flag-patches/``. The stage directory holds:

    xen.elf              the hypervisor (32-bit multiboot ELF), reporting 4.21-flagport
                         when built from a pre-4.21 source
    dist-install.tar.gz  the tools' dist/install tree (xl, xenconsoled, xenstored, libs)
    version              what the hypervisor reports (/sys/hypervisor/version)
    source               suite, source package version, orig tarball sha256
    timings              seconds per build step
    STAMP                sha of the script, the patches, the deps list, the source versions

The stamp's source versions come from the private index in ``cache/xensrc-apt/``, which
is refreshed when it is missing or older than a day (``XCI_XENSRC_REFRESH=1``: now), so a
cached re-check needs no network (0.3 s; 6 s with a refresh). The build takes 4-7 minutes
on 2 cores (240 s idle, 414 s beside QEMU runs), with no network (unshare --net).

Which source: the script takes a xen source >= 4.21 first if any suite has one (none does
as of 2026-12-01: trixie and trixie-security 4.20.4+63, sid 4.20.4+39, nothing in
experimental), then trixie-security, trixie, sid, experimental, bookworm-security,
bookworm, the first whose files the mirror serves. On 2026-12-01 this registry's mirror
answered 404 for every file of the trixie, sid and bookworm-security xen source packages
(their binaries download), so the stage is built from bookworm's xen 4.17.5+72: tools
with 4.17 sonames (libxenguest.so.4.17, libxenlight.so.4.17), hypervisor 4.17.5 code
reporting 4.21-flagport. ``source`` says which one was used.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGES_DIR = HERE / "images"
SCRIPT = IMAGES_DIR / "build-xen-src.sh"
PATCH_DIR = IMAGES_DIR / "xen-flag-patches"
DEPS_LIST = IMAGES_DIR / "xen-src-build-deps.txt"
STAGE = "xensrc"
STAGE_VERSION = "1"
INDEX_MAX_AGE = 24 * 3600       # seconds


class XenSrcError(RuntimeError):
    """The source stage could not be built."""


def default_cache_root() -> Path:
    return Path(os.environ.get("XCINSPECT_LAB_CACHE")
                or Path.home() / ".cache" / "xcinspect" / "xen-lab").expanduser()


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _run(cmd, log, **kw) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], text=True, check=False, **kw)


def build_deps() -> list[str]:
    """The Debian packages the build needs (images/xen-src-build-deps.txt)."""
    return [ln.split("#", 1)[0].strip() for ln in DEPS_LIST.read_text().splitlines()
            if ln.split("#", 1)[0].strip()]


def missing_deps() -> list[str]:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n",
                          *build_deps()], text=True, capture_output=True).stdout
    have = {ln.split()[0] for ln in out.splitlines() if ln.endswith(" installed")}
    return [p for p in build_deps() if p not in have]


def source_versions(cache_root: Path, log=print) -> list[str]:
    """'SUITE VERSION' lines of the xen source packages in the private index."""
    apt_dir = cache_root / "xensrc-apt"
    stamp = apt_dir / "INDEXED"
    fresh = (stamp.is_file() and time.time() - stamp.stat().st_mtime < INDEX_MAX_AGE
             and os.environ.get("XCI_XENSRC_REFRESH") != "1")
    if fresh:
        lines = stamp.read_text().split("\n")
    else:
        apt_dir.mkdir(parents=True, exist_ok=True)
        p = _run(["bash", SCRIPT, "--index", apt_dir], log, capture_output=True)
        if p.returncode != 0:
            raise XenSrcError(f"private apt index failed:\n{p.stderr[-2000:]}")
        lines = p.stdout.split("\n")
        stamp.write_text("\n".join(sorted(ln for ln in lines if ln.strip())) + "\n")
    lines = sorted(ln.strip() for ln in lines if ln.strip())
    if not lines:
        raise XenSrcError("no xen source package in the private apt index")
    return lines


def stage_key(cache_root: Path, log=print) -> str:
    patches = sorted(PATCH_DIR.glob("*.patch"))
    return _sha(STAGE, STAGE_VERSION, SCRIPT.read_bytes(), DEPS_LIST.read_bytes(),
                *[p.name.encode() + b"\0" + p.read_bytes() for p in patches],
                *source_versions(cache_root, log),
                os.environ.get("XENSRC_SUITES", ""))


def stage_ready(cache_root: Path, key: str) -> Path | None:
    d = cache_root / STAGE
    stamp = d / "STAMP"
    if stamp.is_file() and stamp.read_text().strip() == key:
        return d
    return None


@contextlib.contextmanager
def stage_build(cache_root: Path, key: str):
    """Yield a fresh temp dir; on success it replaces cache_root/xensrc with a stamp."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{STAGE}-", dir=cache_root))
    try:
        yield tmp
        (tmp / "STAMP").write_text(key + "\n")
        final = cache_root / STAGE
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _lock(cache_root: Path):
    # Its own lock file: lab.py may hold cache_root/.lock while it calls us.
    with open(cache_root / ".xensrc.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_xensrc(cache_root: Path, log=print) -> Path:
    """Return cache_root/xensrc, (re)building it only when its inputs changed."""
    cache_root = Path(cache_root).expanduser()
    cache_root.mkdir(parents=True, exist_ok=True)
    with _lock(cache_root):
        key = stage_key(cache_root, log)
        d = stage_ready(cache_root, key)
        if d:
            return d
        if os.geteuid() != 0:
            raise XenSrcError("building the xensrc stage needs root (mount namespace, tmpfs)")
        missing = missing_deps()
        if missing:
            raise XenSrcError(f"missing build dependencies: {' '.join(missing)} (apt-get "
                              f"install --no-install-recommends $(cat {DEPS_LIST}))")
        log("building xensrc stage (Xen from Debian's source + flag patches, ~6 min)")
        t0 = time.monotonic()
        with stage_build(cache_root, key) as tmp, \
                tempfile.TemporaryDirectory(prefix=".xensrc-inputs-", dir=cache_root) as inp:
            # Run a copy: bash reads a script as it goes, so an edit of the checkout's
            # copy during the build would derail it (and the stamp would lie).
            script = Path(inp) / SCRIPT.name
            shutil.copy(SCRIPT, script)
            shutil.copytree(PATCH_DIR, Path(inp) / PATCH_DIR.name)
            env = dict(os.environ, XENSRC_APT_DIR=str(cache_root / "xensrc-apt"))
            p = _run(["bash", script, tmp], log, env=env)
            if p.returncode != 0:
                tail = tmp / "build.log"
                keep = cache_root / "xensrc-failed.log"
                if tail.is_file():
                    shutil.copy(tail, keep)
                raise XenSrcError(f"build-xen-src.sh failed ({p.returncode}); build log tail: "
                                  f"{keep if tail.is_file() else 'none'}")
            for f in ("xen.elf", "dist-install.tar.gz", "version", "source"):
                if not (tmp / f).is_file():
                    raise XenSrcError(f"build-xen-src.sh left no {f}")
        log(f"xensrc stage built in {time.monotonic() - t0:.0f} s "
            f"(hypervisor {(cache_root / STAGE / 'version').read_text().strip()})")
        return cache_root / STAGE


def main() -> int:
    t0 = time.monotonic()

    def log(msg: str) -> None:
        print(f"[xensrc {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    try:
        d = build_xensrc(default_cache_root(), log)
    except XenSrcError as e:
        log(f"error: {e}")
        return 1
    log(f"ready in {time.monotonic() - t0:.1f} s: {d}")
    for f in ("version", "source"):
        log(f"{f}: " + " | ".join((d / f).read_text().split("\n")).strip(" |"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
