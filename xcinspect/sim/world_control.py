"""The world controller's control socket, ``DIR/run/world.sock``: ``ControlSocket`` is the
socket (accept, read lines, reply), ``answer`` carries a command out on the controller and
says how it went.

One line in, one line out::

    ping                                   -> ok
    status                                 -> ok {json}
    destroy DOMID                          -> ok           (the domain dies)
    create NAME [key=value ...]            -> ok DOMID     (kernel=, layout=, behaviour=,
                                                            consoled=0|1, tick=, flag=)
    guest DOMID set KEY VALUE              -> ok           (e.g. behaviour chatty)
    xenstored stall|stall-mid SECONDS | drop   -> ok       (fault injection via XS_CONTROL)
"""

from __future__ import annotations

import json
import selectors
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from xcinspect.sim import scenarios

if TYPE_CHECKING:
    from xcinspect.sim.world import Controller


class ControlSocket:
    """The listening socket and its clients, on the controller's selector: the listener is
    registered as ``"listen"``, each client as ``"client"``."""

    def __init__(self, path: str, sel: selectors.BaseSelector) -> None:
        self.path = path
        self.sel = sel
        self.listener: socket.socket | None = None
        self.clients: dict[int, tuple[socket.socket, bytes]] = {}

    def open(self) -> None:
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        ls.bind(self.path)
        ls.listen(16)
        ls.setblocking(False)
        self.listener = ls
        self.sel.register(ls, selectors.EVENT_READ, "listen")

    def accept(self) -> None:
        assert self.listener is not None
        try:
            s, _ = self.listener.accept()
            s.setblocking(False)
            self.clients[s.fileno()] = (s, b"")
            self.sel.register(s, selectors.EVENT_READ, "client")
        except OSError:
            pass

    def on_readable(self, s: socket.socket, answer: Callable[[str], str]) -> None:
        """Read what client ``s`` sent; every whole line gets ``answer(line)`` back."""
        fd = s.fileno()
        sock, buf = self.clients[fd]
        try:
            chunk = s.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.sel.unregister(s)
            del self.clients[fd]
            s.close()
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            reply = answer(line.decode(errors="replace"))
            try:
                s.setblocking(True)
                s.sendall(reply.encode() + b"\n")
                s.setblocking(False)
            except OSError:
                pass
        self.clients[fd] = (sock, buf)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


def answer(ctl: Controller, line: str) -> str:
    """Carry out one control command on the controller: ``ok ...`` or ``err ...``."""
    words = line.split()
    if not words:
        return "err empty command"
    cmd = words[0]
    try:
        if cmd == "ping":
            return "ok"
        if cmd == "status":
            return "ok " + json.dumps({
                "ready": ctl.ready, "domains": sorted(ctl.domains), "booted": sorted(ctl.booted),
                "pids": ctl.pid_map(),
            })
        if cmd == "destroy" and len(words) == 2:
            ctl.destroy_domain(int(words[1]))
            return "ok"
        if cmd == "create" and len(words) >= 2:
            cfg = scenarios.domain_spec(words[1])
            for kv in words[2:]:
                k, _, v = kv.partition("=")
                if k == "consoled":
                    cfg[k] = v not in ("0", "false", "no")
                elif k == "tick":
                    cfg[k] = float(v)
                elif k == "domid":
                    continue
                elif k in cfg:
                    cfg[k] = v
                else:
                    return f"err unknown key {k}"
            want = next((int(kv[6:]) for kv in words[2:] if kv.startswith("domid=")), None)
            return f"ok {ctl.create_domain(want, cfg)}"
        if cmd == "guest" and len(words) >= 5 and words[2] == "set":
            d = int(words[1])
            for g in ctl.guests:
                if d in g.domids:
                    g.tell("set " + " ".join(words[1:2] + words[3:]))
                    if words[3] in ("behaviour", "kernel", "tick"):
                        ctl.domains[d][words[3]] = float(words[4]) if words[3] == "tick" else words[4]
                        ctl.save()
                    return "ok"
            return f"err no guest {d}"
        if cmd == "xenstored" and len(words) >= 2:
            reply = ctl.xs("control", *words[1:])
            return "ok " + reply.rstrip(b"\0").decode()
    except Exception as exc:  # a bad command must not take the world down
        return f"err {exc}"
    return f"err unknown command {line.strip()!r}"
