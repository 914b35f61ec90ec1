"""xcinspect as the console backend of one domain (``xcinspect connect`` starts this).

It does what xenconsoled does for a console, following its barrier order: bind the
guest's event channel, drain ``out`` into the drain log (on disk before ``out_cons``
moves; see ``journal``), feed ``in`` from attached clients, set the flag per layout. It
serves attach clients on a unix socket (``state_dir/backend.<domid>.sock``) and holds a
lock on ``state_dir/backend.<domid>.pid`` while it runs. On SIGTERM (``disconnect``) or
when the domain goes away it releases everything, so xenconsoled can bind again, and
re-fires xenconsoled's console watch.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

from xcinspect.core import flags
from xcinspect.core.ring import IDX, IDX_OFFSET, MASK32, Fence, PageError, RingIO
from xcinspect.engine import facts
from xcinspect.engine.discovery import Discovery
from xcinspect.platform.base import BindError, EventChannel, Platform, PlatformError
from xcinspect.platform.xenstore import XenstoreError, XsClient

if TYPE_CHECKING:
    from xcinspect.engine.journal import Journal

MAX_CLIENT_BACKLOG = 1 << 20  # bytes queued per attach client before it is dropped


def log_path(platform: Platform, domid: int) -> str:
    return os.path.join(platform.log_dir(), f"console.{domid}.log")


def ring_fence() -> Fence | None:
    """The full memory fence a backend puts between reading and releasing ring space."""
    try:
        from xcinspect.platform.fence import full_fence

        return full_fence
    except Exception:  # pragma: no cover - fence module missing
        return None


class Backend:
    def __init__(
        self,
        platform: Platform,
        domid: int,
        *,
        flag_override: str = flags.AUTO,
        sync: bool = True,
        status_fd: int | None = None,
    ) -> None:
        self.platform = platform
        self.domid = domid
        self.flag_override = flag_override
        self.sync = sync
        self.status_fd = status_fd
        self.stop = False
        self.clients: dict[int, tuple[socket.socket, bytearray]] = {}
        self.inbuf = bytearray()
        self.drained = 0

    # -- status to the `connect` that started us --------------------------------------------
    def _status(self, line: str) -> None:
        if self.status_fd is None:
            return
        try:
            os.write(self.status_fd, (line + "\n").encode())
            os.close(self.status_fd)
        except OSError:
            pass
        self.status_fd = None

    def fail(self, message: str) -> int:
        self._status("ERR " + message)
        print(f"xcinspect backend: {message}", file=sys.stderr)
        return 2

    # -- main ---------------------------------------------------------------------------------
    def run(self) -> int:
        p = self.platform
        try:
            p.check(need_write=True)
            os.makedirs(p.state_dir(), exist_ok=True)
        except PlatformError as exc:
            return self.fail(exc.message)
        pidfile = facts.backend_pidfile(p, self.domid)
        pfd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(pfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return self.fail(f"an xcinspect backend already services domain {self.domid}")
        os.ftruncate(pfd, 0)
        os.write(pfd, f"{os.getpid()}\n".encode())

        xs = XsClient(p.xenstore_path())
        try:
            disc = Discovery(xs)
            info = disc.read_domains([self.domid])[self.domid]
        except XenstoreError as exc:
            return self.fail(exc.message)
        if info.console is None or info.console.port is None:
            return self.fail(f"domain {self.domid} has no usable console in xenstore ({info.error or 'no console keys'})")
        if info.console.served_by_qemu:
            return self.fail(f"console of domain {self.domid} is type {info.console.type!r} (QEMU's); not acting")
        layout = flags.resolve_layout(self.flag_override, p.domain_flag_hint(self.domid), p.default_flag_layout())

        try:
            mapping = p.map_page(self.domid, info.console.ring_ref, writable=True)
        except PlatformError as exc:
            return self.fail(exc.message)
        try:
            evtchn = p.bind_evtchn(self.domid, info.console.port)
        except BindError as exc:
            mapping.close()
            return self.fail(exc.message)
        except PlatformError as exc:
            mapping.close()
            return self.fail(exc.message)

        from xcinspect.engine.journal import Journal

        ring = RingIO(mapping.buf, ring_fence())
        journal = Journal(log_path(p, self.domid), sync=self.sync)
        sock_path = facts.backend_socket(p, self.domid)
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        os.chmod(sock_path, 0o600)
        listener.listen(8)
        listener.setblocking(False)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_signal)

        try:
            _, _, cons, prod = IDX.unpack_from(mapping.buf, IDX_OFFSET)
            if ((prod - cons) & MASK32) > 2048:
                return self.fail(f"console page of domain {self.domid} has corrupt out indices (cons {cons}, prod {prod}); not draining")
            resume = journal.resume_point(cons, prod)
            if resume != cons:
                ring.commit_out(resume)  # those bytes are already in the log
            self.expected_cons = resume
            ring.set_flag(layout, flags.CONNECTED)
            xs.watch("@releaseDomain", "release")
            self._status(f"OK pid={os.getpid()} log={journal.path}")
            evtchn.notify()
            rc = self.loop(ring, evtchn, journal, listener, xs)
        finally:
            # Release in xenconsoled's teardown order. The flag is left alone, as
            # xenconsoled leaves it: writing "disconnected" here would make a Linux >= 7.1
            # guest throw its output away until some backend connects again.
            for s, _ in list(self.clients.values()):
                s.close()
            listener.close()
            try:
                os.unlink(sock_path)
            except OSError:
                pass
            evtchn.close()
            mapping.close()
            journal.close()
            try:
                # Re-fire xenconsoled's console watch so it binds the port again.
                tty = xs.read(f"/local/domain/{self.domid}/console/tty")
                if tty is not None:
                    xs.write(f"/local/domain/{self.domid}/console/tty", tty)
            except Exception:
                pass
            xs.close()
            try:
                os.unlink(pidfile)
            except OSError:
                pass
            os.close(pfd)
        return rc

    def drain(self, ring: RingIO, journal: Journal) -> int:
        """Persist and consume everything in ``out``; returns the byte count."""
        total = 0
        while True:
            _, _, cons, _ = IDX.unpack_from(ring.buf, IDX_OFFSET)
            if cons != self.expected_cons:
                # Someone else moved out_cons: record the gap honestly.
                journal.start_segment(cons, "ring moved without us")
            data, new_cons = ring.peek_out()
            if not data:
                self.expected_cons = cons
                return total
            journal.append(data)  # on disk first ...
            ring.commit_out(new_cons)  # ... then the space is released
            self.expected_cons = new_cons
            total += len(data)
            self.drained += len(data)
            self.broadcast(data)

    def broadcast(self, data: bytes) -> None:
        for fd, (s, buf) in list(self.clients.items()):
            buf += data
            if len(buf) > MAX_CLIENT_BACKLOG:
                s.close()
                del self.clients[fd]

    def loop(self, ring: RingIO, evtchn: EventChannel, journal: Journal, listener: socket.socket, xs: XsClient) -> int:
        domain_path = f"/local/domain/{self.domid}"
        next_check = 0.0
        xs_down_since: float | None = None
        while not self.stop:
            rlist = [evtchn.fileno(), listener.fileno()] + list(self.clients)
            wlist = [fd for fd, (_, buf) in self.clients.items() if buf]
            try:
                r, w, _ = select.select(rlist, wlist, [], 0.2)
            except InterruptedError:
                continue
            if evtchn.fileno() in r:
                evtchn.pending()
            if listener.fileno() in r:
                try:
                    s, _ = listener.accept()
                    s.setblocking(False)
                    self.clients[s.fileno()] = (s, bytearray())
                except OSError:
                    pass
            # Client input first, so a keystroke reaches the ring in this round, not after
            # the next select (which could wait its whole timeout).
            for fd in r:
                if fd in self.clients:
                    s, _ = self.clients[fd]
                    try:
                        chunk = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        s.close()
                        del self.clients[fd]
                    else:
                        self.inbuf += chunk
            try:
                n = self.drain(ring, journal)
                fed = self.feed(ring)
            except PageError as exc:
                print(f"xcinspect backend: {exc}; stopping", file=sys.stderr)
                return 3
            try:
                if n or fed:
                    evtchn.notify()
                evtchn.unmask()
            except PlatformError as exc:  # the guest died under us (XenCallError on dom0)
                print(f"xcinspect backend: event channel failed ({exc.message}); releasing", file=sys.stderr)
                return 0
            # Output to clients now (non-blocking; what does not fit waits for writability).
            for fd, (s, buf) in list(self.clients.items()):
                if not buf:
                    continue
                try:
                    sent = s.send(buf)
                    del buf[:sent]
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    del self.clients[fd]
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 1.0
                try:
                    events = xs.events(0)
                    if events and xs.read(f"{domain_path}/domid") is None:
                        print(f"xcinspect backend: domain {self.domid} is gone; releasing", file=sys.stderr)
                        return 0
                    xs_down_since = None
                except XenstoreError:
                    # A xenstored hiccup: keep servicing the ring. But when it has been gone
                    # for a while and the platform itself is gone too (a sim world that was
                    # stopped), there is nothing left to service.
                    xs_down_since = xs_down_since or now
                    if now - xs_down_since >= XS_GONE_AFTER:
                        try:
                            self.platform.check()
                        except PlatformError as exc:
                            print(f"xcinspect backend: {exc.message}; releasing", file=sys.stderr)
                            return 0
        return 0

    def feed(self, ring: RingIO) -> int:
        if not self.inbuf:
            return 0
        n = ring.write_in(bytes(self.inbuf[:1024]))
        del self.inbuf[:n]
        return n


XS_GONE_AFTER = 3.0  # seconds without xenstored before the backend asks whether its world is gone


def spawn(platform_args: list[str], domid: int, *, flag_override: str, sync: bool, timeout: float | None = None) -> tuple[bool, str]:
    """Start a detached backend daemon; wait for its first status line (30 s, or
    ``$XCINSPECT_BACKEND_TIMEOUT`` seconds: an emulated dom0 can need more)."""
    import subprocess

    if timeout is None:
        try:
            timeout = float(os.environ.get("XCINSPECT_BACKEND_TIMEOUT", "") or 30.0)
        except ValueError:
            timeout = 30.0

    r, w = os.pipe()
    cmd = [sys.executable, "-m", "xcinspect", *platform_args, "_backend", str(domid), "--status-fd", str(w),
           "--flag-layout", flag_override]
    if not sync:
        cmd.append("--no-sync")
    proc = subprocess.Popen(
        cmd, pass_fds=(w,), start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
    )
    os.close(w)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                return False, "the backend did not report within the timeout"
            rr, _, _ = select.select([r], [], [], left)
            if not rr:
                continue
            chunk = os.read(r, 4096)
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(r)
    line = buf.decode(errors="replace").strip()
    if line.startswith("OK"):
        return True, line[3:]
    if line.startswith("ERR "):
        proc.wait(timeout=5)
        return False, line[4:]
    rc = proc.wait(timeout=5)
    return False, f"the backend exited (status {rc}) without a report"


def stop_backend(platform: Platform, domid: int, timeout: float = 5.0) -> int | None:
    """SIGTERM our backend daemon for ``domid`` and wait for it to release. Returns its pid."""
    pid = facts.backend_pid(platform, domid)
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if facts.backend_pid(platform, domid) is None:
            return pid
        time.sleep(0.05)
    raise PlatformError(f"backend pid {pid} did not stop within {timeout:g} s")

