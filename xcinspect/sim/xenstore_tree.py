"""The sim xenstored's tree: nodes with values and permissions, transactions (snapshot,
replay on commit), and the protocol's errors as ``XsErr("ENOENT")`` and friends."""

from __future__ import annotations

from xcinspect.core.xs_wire import PAYLOAD_MAX

VALID_PATH_BYTES = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_@")


class XsErr(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# -- the tree ----------------------------------------------------------------------------------
class Store:
    """Nodes: path -> [value, perms, children-set]. Every mutator returns the watch firings
    it causes as (path, recurse) pairs."""

    def __init__(self) -> None:
        self.nodes: dict[str, list] = {"/": [b"", [b"n0"], set()]}
        self.gen = 0
        self.mod: dict[str, int] = {}
        self.kids: dict[str, int] = {}  # path -> generation of its last child added/removed

    def copy(self) -> Store:
        s = Store.__new__(Store)
        s.nodes = {p: [n[0], list(n[1]), set(n[2])] for p, n in self.nodes.items()}
        s.gen = self.gen
        s.mod = {}
        s.kids = dict(self.kids)
        return s

    @staticmethod
    def parent(path: str) -> str:
        if path == "/":
            return "/"
        head = path.rsplit("/", 1)[0]
        return head or "/"

    def _touch(self, path: str) -> None:
        self.gen += 1
        self.mod[path] = self.gen

    def _create(self, path: str, value: bytes) -> None:
        """Create ``path`` and any missing ancestors (empty values)."""
        missing = []
        p = path
        while p not in self.nodes:
            missing.append(p)
            p = self.parent(p)
        for p in reversed(missing):
            parent = self.parent(p)
            perms = list(self.nodes[parent][1])
            self.nodes[p] = [b"", perms, set()]
            self.nodes[parent][2].add(p.rsplit("/", 1)[1])
            self._touch(p)
            self.kids[parent] = self.gen
        self.nodes[path][0] = value

    def read(self, path: str) -> bytes:
        node = self.nodes.get(path)
        if node is None:
            raise XsErr("ENOENT")
        return node[0]

    def directory(self, path: str) -> list[str]:
        node = self.nodes.get(path)
        if node is None:
            raise XsErr("ENOENT")
        return sorted(node[2])

    def directory_part(self, path: str, offset: int) -> bytes:
        """XS_DIRECTORY_PART as xenstored_core.c's send_directory_part: the node's
        generation, then the children from byte ``offset`` of the NUL-separated list, as
        many whole names as fit one reply; an empty string after the last child."""
        names = self.directory(path)
        children = b"".join(n.encode() + b"\0" for n in names)
        gen = b"%d\0" % self.kids.get(path, 0)
        if offset >= len(children):
            return gen + b"\0"
        maxlen = PAYLOAD_MAX - len(gen) - 1
        end = offset
        while end < len(children):
            nxt = children.index(b"\0", end) + 1
            if nxt - offset > maxlen:
                break
            end = nxt
        if end == offset:  # (cannot happen: a name is at most 3072 bytes)
            raise XsErr("E2BIG")
        body = children[offset:end]
        if end == len(children):
            body += b"\0"
        return gen + body

    def write(self, path: str, value: bytes) -> list[tuple[str, bool]]:
        if path in self.nodes:
            self.nodes[path][0] = value
        else:
            self._create(path, value)
        self._touch(path)
        return [(path, False)]

    def mkdir(self, path: str) -> list[tuple[str, bool]]:
        if path in self.nodes:
            return []
        self._create(path, b"")
        return [(path, False)]

    def rm(self, path: str) -> list[tuple[str, bool]]:
        if path == "/":
            raise XsErr("EINVAL")
        if path not in self.nodes:
            if self.parent(path) not in self.nodes:
                raise XsErr("ENOENT")
            return []
        stack = [path]
        while stack:
            p = stack.pop()
            node = self.nodes.pop(p)
            self._touch(p)
            stack.extend(f"{p}/{c}" for c in node[2])
        parent = self.parent(path)
        self.nodes[parent][2].discard(path.rsplit("/", 1)[1])
        self._touch(parent)
        self.kids[parent] = self.gen
        return [(path, True)]

    def get_perms(self, path: str) -> list[bytes]:
        node = self.nodes.get(path)
        if node is None:
            raise XsErr("ENOENT")
        return node[1]

    def set_perms(self, path: str, perms: list[bytes]) -> list[tuple[str, bool]]:
        node = self.nodes.get(path)
        if node is None:
            raise XsErr("ENOENT")
        if not perms or any(len(p) < 2 or p[:1] not in b"wrbn" or not p[1:].isdigit() for p in perms):
            raise XsErr("EINVAL")
        node[1] = list(perms)
        self._touch(path)
        return [(path, False)]


class Transaction:
    def __init__(self, tid: int, store: Store) -> None:
        self.tid = tid
        self.view = store.copy()
        self.start_gen = store.gen
        self.touched: set[str] = set()
        self.ops: list[tuple[str, tuple]] = []


# -- connections -------------------------------------------------------------------------------
