"""The sim xenstored's watches: who watches which path with which token, and the events a
change fires (at the path and above it; on a recursive change, also the watches below).
Relative watch paths get relative event paths, as from a real xenstored; the special
``@introduceDomain`` and ``@releaseDomain`` fire on their own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from xcinspect.core.xs_wire import HEADER, Op
from xcinspect.sim.xenstore_tree import Store

if TYPE_CHECKING:
    from xcinspect.sim.xenstored import Conn

SPECIAL = ("@introduceDomain", "@releaseDomain")


def event(conn: Conn, path: str, token: str) -> None:
    """Queue a WATCH_EVENT (req_id 0, tx_id 0) for ``conn``."""
    payload = path.encode() + b"\0" + token.encode() + b"\0"
    conn.queue(HEADER.pack(Op.WATCH_EVENT, 0, 0, len(payload)) + payload)


class Watches:
    def __init__(self) -> None:
        # watch path (absolute, or a special @name) -> list of (conn, token, path as given)
        self.by_path: dict[str, list[tuple[Conn, str, str]]] = {}

    def add(self, conn: Conn, wpath: str, token: str, given: str) -> None:
        conn.watches.add((wpath, token))
        self.by_path.setdefault(wpath, []).append((conn, token, given))

    def remove(self, conn: Conn, wpath: str, token: str) -> None:
        conn.watches.discard((wpath, token))
        lst = self.by_path.get(wpath)
        if lst:
            lst[:] = [w for w in lst if not (w[0] is conn and w[1] == token)]
            if not lst:
                del self.by_path[wpath]

    def remove_all(self, conn: Conn) -> None:
        for wpath, token in list(conn.watches):
            self.remove(conn, wpath, token)

    def fire(self, path: str, recurse: bool) -> None:
        seen: set[tuple[int, str]] = set()

        def emit(conn: Conn, token: str, given: str, epath: str) -> None:
            key = (id(conn), token)
            if key in seen or conn.closed:
                return
            seen.add(key)
            if not given.startswith("/") and not given.startswith("@"):
                rel = "/local/domain/0/"
                epath = epath[len(rel):] if epath.startswith(rel) else epath
            event(conn, epath, token)

        p = path
        while True:
            for conn, token, given in self.by_path.get(p, ()):
                emit(conn, token, given, path)
            if p == "/":
                break
            p = Store.parent(p)
        if recurse:
            prefix = path + "/"
            for wpath, lst in self.by_path.items():
                if wpath.startswith(prefix):
                    for conn, token, given in lst:
                        emit(conn, token, given, wpath)

    def fire_special(self, name: str) -> None:
        for conn, token, _given in list(self.by_path.get(name, ())):
            event(conn, name, token)
