"""A xenstore client with a timeout on every call, on top of pyxs.

pyxs 0.4.1 can hang its caller forever: replies are awaited on a condition with no
timeout, and an unexpected packet kills its router thread. Here every request is sent
through pyxs' router and awaited with a deadline; a timeout or a dead router marks the
connection broken, and the next call builds a fresh one. No worker threads are used for
requests, so nothing can keep the process from exiting.

Paths and values are ``str`` here (pyxs wants 7-bit ASCII bytes).
"""

from __future__ import annotations

import os
import queue
import threading
import time

from pyxs import Client
from pyxs._internal import NUL, Op, Packet, next_rq_id
from pyxs.exceptions import PyXSError

from xcinspect.platform.base import PlatformError

DEFAULT_TIMEOUT = 2.0
# What a read-only client may send: nothing here changes the store.
READ_OPS = frozenset({Op.READ, Op.DIRECTORY, Op.GET_PERMS, Op.WATCH, Op.UNWATCH, Op.GET_DOMAIN_PATH,
                      Op.IS_DOMAIN_INTRODUCED})


class XenstoreError(PlatformError):
    """xenstored is unreachable, hung, or closed the connection."""


class XenstoreTimeout(XenstoreError):
    pass


class NoEntry(KeyError):
    """ENOENT from xenstored."""


class XsClient:
    """One connection to xenstored (unix socket), rebuilt after a failure."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT, *, read_only: bool = False) -> None:
        self.path = path
        self.timeout = timeout
        self.read_only = read_only  # refuse every request that could change the store
        self._client: Client | None = None
        self._monitor = None
        self._watches: set[tuple[str, str]] = set()
        self._lock = threading.RLock()  # _connect re-registers watches from inside a request
        self.reconnects = 0

    # -- connection management -----------------------------------------------------------
    def _connect(self) -> Client:
        if self._client is not None and self._client.router.thread.is_alive():
            return self._client
        if self._client is not None:
            self._drop()
            self.reconnects += 1
        if not os.path.exists(self.path):
            raise XenstoreError(f"xenstored socket {self.path} does not exist (is xenstored running?)")
        client = Client(unix_socket_path=self.path)
        router = client.router

        def route() -> None:
            # pyxs' router thread ends by raising when the connection dies (xenstored
            # killed, a reply cut off, or our own _drop closing it under a stalled read);
            # the default excepthook would print that traceback on the operator's
            # terminal. A dead router is how this class notices a dead connection.
            try:
                router()
            except Exception:
                pass

        router.thread = threading.Thread(target=route, daemon=True, name="xs-router")
        box: queue.Queue = queue.Queue(maxsize=1)

        def start() -> None:
            try:
                client.connect()
                box.put(None)
            except Exception as exc:  # pyxs ConnectionError, OSError
                box.put(exc)

        threading.Thread(target=start, daemon=True, name="xs-connect").start()
        try:
            err = box.get(timeout=self.timeout)
        except queue.Empty:
            raise XenstoreTimeout(f"connecting to xenstored at {self.path} timed out") from None
        if err is not None:
            raise XenstoreError(f"cannot connect to xenstored at {self.path}: {err}")
        self._client = client
        self._monitor = client.monitor()
        # Re-establish watches after a reconnect (they fire once on registration).
        # Not through _request: _connect runs under self._lock (from _send), and that lock is
        # not reentrant. Subscribe first so the registration firing is not lost.
        for wpath, token in list(self._watches):
            self._monitor.client.router.subscribe(token.encode(), self._monitor)
            packet = Packet(Op.WATCH, wpath.encode() + NUL + token.encode() + NUL,
                            rq_id=next_rq_id() & 0xFFFFFFFF, tx_id=0)
            try:
                rvar = client.router.send(packet)
            except (PyXSError, OSError) as exc:
                self._drop()
                raise XenstoreError(f"xenstored connection lost: {exc}") from None
            self._wait(rvar, Op.WATCH, time.monotonic() + self.timeout)
        return client

    def _drop(self) -> None:
        client, self._client, self._monitor = self._client, None, None
        if client is None:
            return
        router = client.router
        # Never join a router that may be stuck: ask it to stop and close the socket.
        try:
            if router.is_connected:
                router.w_terminator.sendall(NUL)
        except OSError:
            pass
        try:
            router.connection.close()
        except Exception:
            pass

    def close(self) -> None:
        self._drop()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.router.thread.is_alive()

    # -- requests ------------------------------------------------------------------------
    def _send(self, op: int, payload: bytes):
        if self.read_only and op not in READ_OPS:
            raise XenstoreError(f"read-only mode: refusing xenstore request type {op}")
        client = self._connect()
        try:
            packet = Packet(op, payload, rq_id=next_rq_id() & 0xFFFFFFFF, tx_id=0)
            return client.router.send(packet)
        except (PyXSError, OSError) as exc:
            self._drop()
            raise XenstoreError(f"xenstored connection lost: {exc}") from None

    def _wait(self, rvar, op: int, deadline: float) -> bytes:
        cond = rvar.condition
        with cond:
            while rvar.target is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._drop()
                    raise XenstoreTimeout(f"xenstored did not answer within {self.timeout:g} s")
                alive = self._client is not None and self._client.router.thread.is_alive()
                if not alive:
                    self._drop()
                    raise XenstoreError("xenstored connection lost")
                cond.wait(min(left, 0.1))
        packet = rvar.target
        if packet.op == Op.ERROR:
            code = packet.payload.rstrip(NUL).decode("ascii", "replace")
            if code == "ENOENT":
                raise NoEntry(code)
            raise XenstoreError(f"xenstored error {code}")
        if packet.op != op:
            self._drop()
            raise XenstoreError(f"unexpected xenstore reply type {packet.op} to {op}")
        return packet.payload

    def _request(self, op: int, payload: bytes) -> bytes:
        with self._lock:
            rvar = self._send(op, payload)
            return self._wait(rvar, op, time.monotonic() + self.timeout)

    @staticmethod
    def _p(path: str) -> bytes:
        return path.encode("ascii") + NUL

    def read(self, path: str, default: str | None = None) -> str | None:
        try:
            raw = self._request(Op.READ, self._p(path))
        except NoEntry:
            return default
        return raw.decode("ascii", "replace")

    def read_many(self, paths: list[str]) -> list[str | None]:
        """Read many keys with the requests pipelined (one round trip's latency)."""
        out: list[str | None] = []
        with self._lock:
            pending = [self._send(Op.READ, self._p(p)) for p in paths]
            deadline = time.monotonic() + self.timeout + 0.001 * len(paths)
            for rvar in pending:
                try:
                    out.append(self._wait(rvar, Op.READ, deadline).decode("ascii", "replace"))
                except NoEntry:
                    out.append(None)
        return out

    def list(self, path: str) -> list[str]:
        try:
            raw = self._request(Op.DIRECTORY, self._p(path))
        except NoEntry:
            return []
        return [p.decode("ascii", "replace") for p in raw.split(NUL) if p]

    def write(self, path: str, value: str) -> None:
        self._request(Op.WRITE, path.encode("ascii") + NUL + value.encode("ascii"))

    def mkdir(self, path: str) -> None:
        self._request(Op.MKDIR, self._p(path))

    def rm(self, path: str) -> None:
        try:
            self._request(Op.RM, self._p(path))
        except NoEntry:
            pass

    def introduce(self, domid: int, mfn: int, port: int) -> None:
        self._request(Op.INTRODUCE, b"%d\x00%d\x00%d\x00" % (domid, mfn, port))

    def release(self, domid: int) -> None:
        self._request(Op.RELEASE, b"%d\x00" % domid)

    def control(self, *words: str) -> bytes:
        """XS_CONTROL (debug) command; the sim xenstored uses it for fault injection."""
        return self._request(Op.DEBUG, b"".join(w.encode() + NUL for w in words))

    # -- watches -------------------------------------------------------------------------
    def watch(self, path: str, token: str) -> None:
        if (path, token) in self._watches and self.connected:
            return  # xenstored refuses a duplicate watch (EEXIST)
        self._connect()
        assert self._monitor is not None
        self._monitor.client.router.subscribe(token.encode(), self._monitor)
        self._watches.add((path, token))
        self._request(Op.WATCH, path.encode() + NUL + token.encode() + NUL)

    def unwatch(self, path: str, token: str) -> None:
        self._watches.discard((path, token))
        if self._monitor is None:
            return
        try:
            self._request(Op.UNWATCH, path.encode() + NUL + token.encode() + NUL)
        except (NoEntry, XenstoreError):
            pass
        try:
            self._monitor.client.router.unsubscribe(token.encode(), self._monitor)
        except ValueError:
            pass

    def events(self, timeout: float = 0.0) -> list[tuple[str, str]]:
        """Watch events received so far, waiting up to ``timeout`` for the first one.

        Raises XenstoreError when the connection died (watches are re-registered on the
        next successful call, and each fires once then).
        """
        mon = self._monitor
        if timeout <= 0 and mon is not None and not mon.events.queue:
            # Hot path (called every tick): nothing queued. Only check the router lives.
            if self._client is not None and self._client.router.thread.is_alive():
                return []
        self._connect()
        assert self._monitor is not None
        q = self._monitor.events
        out = []
        try:
            ev = q.get(timeout=timeout) if timeout > 0 else q.get_nowait()
            out.append(ev)
            while True:
                out.append(q.get_nowait())
        except queue.Empty:
            pass
        if not out and not self.connected:
            self._drop()
            raise XenstoreError("xenstored connection lost")
        return [(p.decode("ascii", "replace"), t.decode("ascii", "replace")) for p, t in out]
