"""The sim xenstored's requests: what each operation of the wire protocol does to the tree
(``xenstore_tree``), its transactions and the introduced domains, and the watches it fires
(``xenstore_watches``). ``Requests.dispatch`` answers one request of a connection; the
server (``xenstored``) does the sockets and XS_CONTROL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from xcinspect.core.xs_wire import Op
from xcinspect.sim.xenstore_tree import VALID_PATH_BYTES, Store, Transaction, XsErr
from xcinspect.sim.xenstore_watches import SPECIAL, Watches, event

if TYPE_CHECKING:
    from xcinspect.sim.xenstored import Conn


def args(payload: bytes, n: int | None = None) -> list[bytes]:
    """The NUL-separated arguments of a payload; EINVAL if there are fewer than ``n``."""
    parts = payload.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    if n is not None and len(parts) < n:
        raise XsErr("EINVAL")
    return parts


def node_path(raw: bytes, *, watch: bool = False) -> str:
    """A path argument as an absolute node path (relative ones are under /local/domain/0);
    with ``watch``, a special @name too. EINVAL (ENAMETOOLONG) for a bad one."""
    if watch and raw.decode("ascii", "replace") in SPECIAL:
        return raw.decode()
    if not raw or any(b not in VALID_PATH_BYTES for b in raw) or b"//" in raw:
        raise XsErr("EINVAL")
    p = raw.decode("ascii")
    if "@" in p:
        raise XsErr("EINVAL")
    if not p.startswith("/"):
        p = "/local/domain/0/" + p
    if len(p) > 1 and p.endswith("/"):
        raise XsErr("EINVAL")
    if len(p) > 3072:
        raise XsErr("ENAMETOOLONG")
    return p


class Requests:
    """The daemon's state behind the sockets: the tree, the introduced domains (domid ->
    (mfn, port)), the watches, the next transaction id."""

    def __init__(self) -> None:
        self.store = Store()
        for p in ("/local/domain/0", "/tool", "/vm"):
            self.store.mkdir(p)
        self.store.write("/local/domain/0/name", b"Domain-0")
        self.store.write("/local/domain/0/domid", b"0")
        self.introduced: dict[int, tuple[int, int]] = {0: (0, 0)}
        self.watches = Watches()
        self.next_tid = 1

    def _store_for(self, conn: Conn, tid: int) -> tuple[Store, Transaction | None]:
        if tid == 0:
            return self.store, None
        tx = conn.txs.get(tid)
        if tx is None:
            raise XsErr("ENOENT")
        return tx.view, tx

    def _mutate(self, conn: Conn, tid: int, name: str, *a) -> None:
        store, tx = self._store_for(conn, tid)
        firings = getattr(store, name)(*a)
        if tx is None:
            for path, recurse in firings:
                self.watches.fire(path, recurse)
        else:
            tx.touched.add(a[0])
            tx.ops.append((name, a))

    def dispatch(self, conn: Conn, op: int, tid: int, payload: bytes):
        """The reply to a request other than XS_CONTROL: (op, payload, what to do once it is
        queued or None); XsErr for an error reply."""
        OK = b"OK\0"
        if op == Op.READ:
            p = node_path(args(payload, 1)[0])
            store, tx = self._store_for(conn, tid)
            if tx:
                tx.touched.add(p)
            return Op.READ, store.read(p), None
        if op == Op.DIRECTORY:
            p = node_path(args(payload, 1)[0])
            store, tx = self._store_for(conn, tid)
            if tx:
                tx.touched.add(p)
            names = store.directory(p)
            return Op.DIRECTORY, b"".join(n.encode() + b"\0" for n in names), None
        if op == Op.DIRECTORY_PART:
            raw = args(payload)
            if len(raw) != 2 or not raw[1].isdigit():
                raise XsErr("EINVAL")
            p = node_path(raw[0])
            store, tx = self._store_for(conn, tid)
            if tx:
                tx.touched.add(p)
            return Op.DIRECTORY_PART, store.directory_part(p, int(raw[1])), None
        if op == Op.WRITE:
            i = payload.find(b"\0")
            if i < 0:
                raise XsErr("EINVAL")
            p = node_path(payload[:i])
            self._mutate(conn, tid, "write", p, payload[i + 1:])
            return Op.WRITE, OK, None
        if op == Op.MKDIR:
            self._mutate(conn, tid, "mkdir", node_path(args(payload, 1)[0]))
            return Op.MKDIR, OK, None
        if op == Op.RM:
            self._mutate(conn, tid, "rm", node_path(args(payload, 1)[0]))
            return Op.RM, OK, None
        if op == Op.GET_PERMS:
            p = node_path(args(payload, 1)[0])
            store, _ = self._store_for(conn, tid)
            return Op.GET_PERMS, b"".join(x + b"\0" for x in store.get_perms(p)), None
        if op == Op.SET_PERMS:
            parts = args(payload, 2)
            self._mutate(conn, tid, "set_perms", node_path(parts[0]), parts[1:])
            return Op.SET_PERMS, OK, None
        if op == Op.WATCH:
            parts = args(payload, 2)
            given = parts[0].decode("ascii")
            wpath = node_path(parts[0], watch=True)
            token = parts[1].decode("ascii")
            if (wpath, token) in conn.watches:
                raise XsErr("EEXIST")
            self.watches.add(conn, wpath, token, given)
            return Op.WATCH, OK, lambda: event(conn, given, token)
        if op == Op.UNWATCH:
            parts = args(payload, 2)
            wpath = node_path(parts[0], watch=True)
            token = parts[1].decode("ascii")
            if (wpath, token) not in conn.watches:
                raise XsErr("ENOENT")
            self.watches.remove(conn, wpath, token)
            return Op.UNWATCH, OK, None
        if op == Op.RESET_WATCHES:
            self.watches.remove_all(conn)
            return Op.RESET_WATCHES, OK, None
        if op == Op.TRANSACTION_START:
            if tid != 0:
                raise XsErr("EBUSY")
            t = self.next_tid
            self.next_tid = self.next_tid % 0xFFFFFFF0 + 1
            conn.txs[t] = Transaction(t, self.store)
            return Op.TRANSACTION_START, str(t).encode() + b"\0", None
        if op == Op.TRANSACTION_END:
            arg = args(payload, 1)[0]
            tx = conn.txs.pop(tid, None)
            if tx is None:
                raise XsErr("ENOENT")
            if arg == b"F":
                return Op.TRANSACTION_END, OK, None
            if arg != b"T":
                raise XsErr("EINVAL")
            if any(self.store.mod.get(p, 0) > tx.start_gen for p in tx.touched):
                raise XsErr("EAGAIN")
            for name, a in tx.ops:
                try:
                    for path, recurse in getattr(self.store, name)(*a):
                        self.watches.fire(path, recurse)
                except XsErr:
                    pass
            return Op.TRANSACTION_END, OK, None
        if op == Op.INTRODUCE:
            parts = args(payload, 3)
            domid, mfn, port = int(parts[0]), int(parts[1]), int(parts[2])
            if domid <= 0 or domid >= 0x7FF0:
                raise XsErr("EINVAL")
            self.introduced[domid] = (mfn, port)
            return Op.INTRODUCE, OK, lambda: self.watches.fire_special("@introduceDomain")
        if op == Op.RELEASE:
            domid = int(args(payload, 1)[0])
            if domid == 0:
                raise XsErr("EINVAL")
            if domid not in self.introduced:
                raise XsErr("ENOENT")
            del self.introduced[domid]
            return Op.RELEASE, OK, lambda: self.watches.fire_special("@releaseDomain")
        if op == Op.GET_DOMAIN_PATH:
            domid = int(args(payload, 1)[0])
            return Op.GET_DOMAIN_PATH, f"/local/domain/{domid}".encode() + b"\0", None
        if op == Op.IS_DOMAIN_INTRODUCED:
            domid = int(args(payload, 1)[0])
            return Op.IS_DOMAIN_INTRODUCED, (b"T\0" if domid in self.introduced else b"F\0"), None
        if op == Op.RESUME:
            domid = int(args(payload, 1)[0])
            if domid not in self.introduced:
                raise XsErr("ENOENT")
            return Op.RESUME, OK, None
        raise XsErr("EINVAL")
