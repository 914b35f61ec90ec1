"""xcinspect's xenstore client: the wire protocol over xenstored's unix socket.

Why its own client (it used pyxs 0.4.1 until the benchmarks of issue 7):

* pyxs can hang its caller forever (replies are awaited with no timeout) and an
  unexpected packet kills its router thread; here every call has a deadline, and a
  timeout or a dead connection marks it broken: the next call builds a fresh one.
* pyxs has no ``XS_DIRECTORY_PART`` (its packet class rejects op 22, in requests and in
  replies). Once ``/local/domain`` has more children than fit one 4096-byte reply
  (~1,040 domains) C xenstored answers ``DIRECTORY`` with ``E2BIG`` and discovery saw
  nothing. ``list`` falls back to ``DIRECTORY_PART`` on ``E2BIG``, as libxenstore's
  ``xs_directory`` does; oxenstored instead sends the whole list in one longer reply,
  which is accepted (libxenstore refuses it).
* Pipelining: ``read_many``, ``watch_many`` and ``unwatch_many`` put every request on the
  socket in one ``sendall`` and wait once for the lot (pyxs took two syscalls and a
  condition per request, and watches went one round trip at a time).
* The per-tick watch check is a few attribute reads (pyxs needed ``Thread.is_alive``).

One reader thread per connection parses every packet: replies are matched to their
request by ``req_id``, watch events queue up for ``events()``. Requests are serialised by
a lock (one batch in flight per client). Closing a connection shuts the socket down,
which wakes the reader out of ``recv``; nothing can keep the process from exiting.

Paths and values are ``str`` (7-bit ASCII on the wire).
"""

from __future__ import annotations

import builtins
import os
import threading
import time
import weakref
from typing import Any

from xcinspect.core.xs_wire import HEADER, NUL, PAYLOAD_MAX, Op
from xcinspect.platform.xenstore_connection import (
    Batch,
    Connection,
    NoEntry,
    XenstoreError,
    XenstoreReplyError,
    XenstoreTimeout,
    shut_box,
)


def _default_timeout() -> float:
    """2 s, or ``$XCINSPECT_XS_TIMEOUT`` (an emulated dom0 under load can need more)."""
    try:
        return float(os.environ.get("XCINSPECT_XS_TIMEOUT", "") or 2.0)
    except ValueError:
        return 2.0


DEFAULT_TIMEOUT = _default_timeout()

# What a read-only client may send: nothing here changes the store.
READ_OPS = frozenset({Op.READ, Op.DIRECTORY, Op.DIRECTORY_PART, Op.GET_PERMS, Op.WATCH, Op.UNWATCH,
                      Op.GET_DOMAIN_PATH, Op.IS_DOMAIN_INTRODUCED})


class XsClient:
    """One connection to xenstored (unix socket), rebuilt after a failure."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT, *, read_only: bool = False) -> None:
        self.path = path
        self.timeout = timeout
        self.read_only = read_only  # refuse every request that could change the store
        self._conn: Connection | None = None
        self._watches: dict[tuple[str, str], None] = {}  # ordered set
        self._lock = threading.RLock()
        self._next_id = 1
        self.reconnects = 0
        # A client dropped without close() must not leave its reader thread (and socket)
        # behind: the thread holds the connection, not the client, so a finalizer on the
        # client shuts whatever connection it had down.
        self._box: list[Any] = [None]
        weakref.finalize(self, shut_box, self._box)

    # -- connection management -----------------------------------------------------------
    def _connect(self) -> Connection:
        conn = self._conn
        if conn is not None and conn.alive:
            return conn
        if conn is not None:
            self._drop()
            self.reconnects += 1
        if not os.path.exists(self.path):
            raise XenstoreError(f"xenstored socket {self.path} does not exist (is xenstored running?)")
        conn = Connection(self.path, self.timeout)
        self._conn = self._box[0] = conn
        # Re-establish watches after a reconnect (each fires once on registration).
        if self._watches:
            self._exchange(conn, [(Op.WATCH, self._wpayload(p, t)) for p, t in self._watches])
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._box[0] = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def idle(self) -> bool:
        """Connected, and no watch event waiting: the per-tick check, kept cheap."""
        c = self._conn
        return c is not None and c.alive and not c.events

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.alive

    # -- requests ------------------------------------------------------------------------
    def _exchange(self, conn: Connection, reqs: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """Send every request in one write, wait for all replies (matched by req_id)."""
        for op, payload in reqs:  # refuse before any of the batch is registered or sent
            if self.read_only and op not in READ_OPS:
                raise XenstoreError(f"read-only mode: refusing xenstore request type {op}")
            if len(payload) > PAYLOAD_MAX:
                raise XenstoreError(f"xenstore request of {len(payload)} bytes (the limit is {PAYLOAD_MAX})")
        batch = Batch(len(reqs))
        out = bytearray()
        pack = HEADER.pack
        for i, (op, payload) in enumerate(reqs):
            rid = self._next_id
            self._next_id = (rid + 1) & 0xFFFFFFFF or 1
            conn.pending[rid] = (batch, i)  # before sending: the reply may come at once
            out += pack(op, rid, 0, len(payload))
            out += payload
        try:
            conn.sock.sendall(out)
        except TimeoutError:
            self._drop()
            raise XenstoreTimeout(f"xenstored did not take a request within {self.timeout:g} s") from None
        except OSError as exc:
            self._drop()
            raise XenstoreError(f"xenstored connection lost: {exc.strerror or exc}") from None
        # The timeout bounds silence, not the batch: a live xenstored that answers a
        # thousand reads slowly (a loaded dom0) keeps making progress and is waited for;
        # one that sends nothing for a whole timeout is stuck.
        left = batch.left
        while not batch.done.wait(self.timeout):
            if batch.left == left:
                self._drop()
                raise XenstoreTimeout(f"xenstored did not answer within {self.timeout:g} s")
            left = batch.left
        if batch.left:
            why = conn.error or "connection closed"
            self._drop()
            raise XenstoreError(f"xenstored connection lost ({why})")
        for (op, _p), (rop, _rp) in zip(reqs, batch.replies):
            if rop != op and rop != Op.ERROR:
                self._drop()
                raise XenstoreError(f"unexpected xenstore reply type {rop} to {op}")
        return batch.replies

    def _pipeline(self, reqs: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        with self._lock:
            conn = self._connect()
            return self._exchange(conn, reqs)

    @staticmethod
    def _check(reply: tuple[int, bytes]) -> bytes:
        op, payload = reply
        if op == Op.ERROR:
            code = payload.rstrip(NUL).decode("ascii", "replace")
            if code == "ENOENT":
                raise NoEntry(code)
            raise XenstoreReplyError(code)
        return payload

    def _request(self, op: int, payload: bytes) -> bytes:
        return self._check(self._pipeline([(op, payload)])[0])

    @staticmethod
    def _p(path: str) -> bytes:
        return path.encode("ascii") + NUL

    @staticmethod
    def _wpayload(path: str, token: str) -> bytes:
        return path.encode("ascii") + NUL + token.encode("ascii") + NUL

    def read(self, path: str, default: str | None = None) -> str | None:
        try:
            raw = self._request(Op.READ, self._p(path))
        except NoEntry:
            return default
        return raw.decode("ascii", "replace")

    def read_many(self, paths: list[str]) -> list[str | None]:
        """Read many keys with the requests pipelined (one round trip's latency).
        A missing key gives None; any other error raises."""
        if not paths:
            return []
        replies = self._pipeline([(Op.READ, self._p(p)) for p in paths])
        out: list[str | None] = []
        for reply in replies:
            try:
                out.append(self._check(reply).decode("ascii", "replace"))
            except NoEntry:
                out.append(None)
        return out

    def list(self, path: str) -> list[str]:
        """Children of ``path`` ([] if it does not exist). Falls back to DIRECTORY_PART
        when the listing does not fit one reply (E2BIG)."""
        try:
            raw = self._request(Op.DIRECTORY, self._p(path))
        except NoEntry:
            return []
        except XenstoreReplyError as exc:
            if exc.code != "E2BIG":
                raise
            return self._list_parts(path)
        return [p.decode("ascii", "replace") for p in raw.split(NUL) if p]

    def _list_parts(self, path: str) -> builtins.list[str]:
        """XS_DIRECTORY_PART: ``<path>|<offset>`` → ``<gencnt>|<child>|*`` (+ an empty
        string after the last child). Restarts if the node changed between parts."""
        for _attempt in range(16):
            names: list[str] = []
            offset = 0
            gen = None
            while True:
                try:
                    raw = self._request(Op.DIRECTORY_PART, self._p(path) + b"%d\x00" % offset)
                except NoEntry:
                    return []
                g, sep, body = raw.partition(NUL)
                if not sep:
                    raise XenstoreError("malformed DIRECTORY_PART reply")
                if gen is None:
                    gen = g
                elif g != gen:
                    break  # the node changed under us: start over
                last = body == NUL or body.endswith(NUL + NUL)
                if last:
                    body = body[:-1]
                if body:
                    names.extend(p.decode("ascii", "replace") for p in body.split(NUL)[:-1])
                    offset += len(body)
                if last or not body:
                    return names
        raise XenstoreError(f"{path} kept changing while it was listed")

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
        """XS_CONTROL command; the sim xenstored uses it for fault injection."""
        return self._request(Op.CONTROL, b"".join(w.encode() + NUL for w in words))

    # -- watches -------------------------------------------------------------------------
    def watch(self, path: str, token: str) -> None:
        self.watch_many([(path, token)])

    def watch_many(self, pairs: builtins.list[tuple[str, str]]) -> None:
        """Register watches, pipelined. Each fires once on registration."""
        with self._lock:
            conn = self._connect()  # (re-registers the known ones if it reconnected)
            new = [pt for pt in dict.fromkeys(pairs) if pt not in self._watches]
            if not new:
                return
            for pt in new:
                self._watches[pt] = None
            replies = self._exchange(conn, [(Op.WATCH, self._wpayload(p, t)) for p, t in new])
            for pt, reply in zip(new, replies):
                try:
                    self._check(reply)
                except XenstoreReplyError as exc:
                    if exc.code != "EEXIST":
                        self._watches.pop(pt, None)
                        raise
                except NoEntry:
                    self._watches.pop(pt, None)
                    raise XenstoreReplyError("ENOENT") from None

    def unwatch(self, path: str, token: str) -> None:
        self.unwatch_many([(path, token)])

    def unwatch_many(self, pairs: builtins.list[tuple[str, str]]) -> None:
        with self._lock:
            for pt in pairs:
                self._watches.pop(pt, None)
            conn = self._conn
            if conn is None or not conn.alive or not pairs:
                return  # a new connection will not register them
            try:
                self._exchange(conn, [(Op.UNWATCH, self._wpayload(p, t)) for p, t in pairs])
            except XenstoreError:
                pass  # replies (ENOENT for an unknown watch) do not matter; a dead link drops them all

    def events(self, timeout: float = 0.0) -> builtins.list[tuple[str, str]]:
        """Watch events received so far, waiting up to ``timeout`` for the first one.

        Raises XenstoreError when the connection died (watches are re-registered on the
        next successful call, and each fires once then).
        """
        if timeout <= 0 and self.idle():
            return []
        conn = self._conn
        if conn is None:
            with self._lock:
                conn = self._connect()
        if not conn.events and timeout > 0:
            deadline = time.monotonic() + timeout
            while not conn.events and conn.alive:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                conn.have_events.clear()
                if conn.events or not conn.alive:
                    break
                conn.have_events.wait(left)
        out = []
        q = conn.events
        while q:
            out.append(q.popleft())
        if not out and not conn.alive:
            with self._lock:
                if conn is self._conn:
                    self._drop()
            raise XenstoreError(f"xenstored connection lost ({conn.error or 'connection closed'})")
        return out


__all__ = ["DEFAULT_TIMEOUT", "READ_OPS", "NoEntry", "Op", "XenstoreError", "XenstoreReplyError", "XenstoreTimeout", "XsClient"]
