"""The sim xenstored: a unix-socket server speaking the real xenstore wire protocol.

``python -m xcinspect.sim.xenstored --world DIR`` serves ``DIR/xenstored/socket``.

Here: the sockets (framing, replies, the oversized-payload drop), the main loop and
XS_CONTROL. What each request does is ``xenstore_requests`` (on the tree of
``xenstore_tree``, firing the watches of ``xenstore_watches``).

Wire format (xs_wire.h): a 16-byte header ``<IIII`` (type, req_id, tx_id, len) and a
payload of at most 4096 bytes. Replies echo req_id and tx_id; watch events carry
req_id 0 and tx_id 0. A client that sends an oversized payload is dropped.

Supported: DIRECTORY (E2BIG when the list exceeds 4096 bytes), DIRECTORY_PART, READ,
WRITE, MKDIR, RM (recursive), GET_PERMS, SET_PERMS, WATCH
(fires once on registration, then on any change at or below the path; on RM also for
watches below the removed node), UNWATCH, TRANSACTION_START/END (snapshot + replay on
commit, EAGAIN on conflict), INTRODUCE (@introduceDomain), RELEASE (@releaseDomain),
GET_DOMAIN_PATH, IS_DOMAIN_INTRODUCED, RESET_WATCHES; anything else gets EINVAL.

XS_CONTROL (op 0) commands, for fault injection and for the world:

* ``stall\\0SECONDS\\0``      hold every reply (process nothing) for SECONDS
* ``stall-mid\\0SECONDS\\0``  the next reply is sent as header + part of its payload, then
  everything stalls SECONDS before the rest
* ``drop\\0``                 close every client connection
* ``ping\\0``                 -> ``OK``
* ``long-replies\\0on|off\\0`` send replies longer than 4096 bytes whole, as oxenstored does
  on its socket (default off: E2BIG, as C xenstored)
* ``introduced\\0[FIRST\\0]`` -> space-separated introduced domids from FIRST on, at most
  500 (the sim's "hypervisor domain list", read in batches by the sim xenconsoled the way
  xenconsoled calls xc_domain_getinfo)
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import sys
import time

from xcinspect.core.xs_wire import HEADER, PAYLOAD_MAX, Op
from xcinspect.sim.common import Paths, die_with_parent, drain_wakeup, remove_pidfile, signal_wakeup, write_pidfile
from xcinspect.sim.xenstore_requests import Requests, args
from xcinspect.sim.xenstore_tree import Transaction, XsErr

INTRODUCED_BATCH = 500


class Conn:
    """One client connection: its buffers, its watches and its open transactions."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.held = bytearray()  # the rest of a stall-mid reply, and whatever follows it
        self.watches: set[tuple[str, str]] = set()
        self.txs: dict[int, Transaction] = {}
        self.closed = False
        self.writing = False

    def queue(self, data: bytes) -> None:
        if self.held:
            self.held += data
        else:
            self.outbuf += data


class Server:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.requests = Requests()
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self.stall_until = 0.0
        self.mid_stall: float | None = None
        self.long_replies = False  # oxenstored's way: replies over PAYLOAD_MAX are sent whole
        self.stop = False
        self.listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self.managed = False  # run by a world controller: Ctrl-C is the controller's business

    # -- set-up -------------------------------------------------------------------------------
    def listen(self) -> None:
        d = os.path.dirname(self.socket_path)
        os.makedirs(d, exist_ok=True)
        if os.path.exists(self.socket_path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.socket_path)
                raise SystemExit(f"sim xenstored: another xenstored serves {self.socket_path}")
            except OSError:
                os.unlink(self.socket_path)
            finally:
                probe.close()
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        tmp = self.socket_path + f".{os.getpid()}"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        ls.bind(tmp)
        ls.listen(256)
        os.replace(tmp, self.socket_path)  # appears only once it accepts connections
        ls.setblocking(False)
        self.listener = ls
        self.sel.register(ls, selectors.EVENT_READ, None)

    def _request_stop(self) -> None:
        self.stop = True

    def install_signals(self) -> None:
        # SIGINT: a world controller's business when it runs us (managed)
        stop = (signal.SIGTERM, signal.SIGHUP) + (() if self.managed else (signal.SIGINT,))
        ignore = (signal.SIGINT,) if self.managed else ()
        self._wake_r, self._wake_w = signal_wakeup(self._request_stop, stop=stop, ignore=ignore)
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")

    def close(self) -> None:
        for c in list(self.conns.values()):
            self.drop(c)
        if self.listener is not None:
            try:
                self.sel.unregister(self.listener)
            except Exception:
                pass
            self.listener.close()
            self.listener = None
        try:
            os.unlink(self.socket_path)
        except OSError:
            pass

    # -- main loop ------------------------------------------------------------------------------
    def stalled(self) -> bool:
        return time.monotonic() < self.stall_until

    def run(self) -> None:
        while not self.stop:
            now = time.monotonic()
            if self.stall_until and now >= self.stall_until:
                self.end_stall()
            if not self.stalled():
                self.process_all()
            for conn in list(self.conns.values()):
                self.update_interest(conn)
            timeout = None
            if self.stall_until:
                timeout = max(0.0, self.stall_until - time.monotonic())
            for key, mask in self.sel.select(timeout):
                if key.data == "wake":
                    drain_wakeup(key.fileobj)
                    continue
                if key.data is None:
                    self.accept()
                    continue
                conn: Conn = key.data
                if conn.closed:
                    continue
                if mask & selectors.EVENT_READ:
                    self.on_readable(conn)
                if not conn.closed and mask & selectors.EVENT_WRITE:
                    self.flush(conn)

    def end_stall(self) -> None:
        self.stall_until = 0.0
        for conn in self.conns.values():
            if conn.held:
                conn.outbuf += conn.held
                conn.held = bytearray()

    def accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                s, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            s.setblocking(False)
            conn = Conn(s)
            self.conns[s.fileno()] = conn
            self.sel.register(s, selectors.EVENT_READ, conn)

    def on_readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)  # a client gone mid-request: its partial request is discarded
            return
        conn.inbuf += data
        if len(conn.inbuf) >= HEADER.size:
            length = HEADER.unpack_from(conn.inbuf, 0)[3]
            if length > PAYLOAD_MAX:
                self.drop(conn)  # "Violating this is very bad": xenstored drops the client

    def flush(self, conn: Conn) -> None:
        while conn.outbuf:
            try:
                n = conn.sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.drop(conn)
                return
            del conn.outbuf[:n]

    def update_interest(self, conn: Conn) -> None:
        if conn.closed:
            return
        if conn.outbuf and not conn.writing:
            self.flush(conn)
        if conn.closed:
            return
        want = bool(conn.outbuf)
        if want != conn.writing:
            conn.writing = want
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.sel.modify(conn.sock, ev, conn)

    def drop(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        try:
            self.sel.unregister(conn.sock)
        except Exception:
            pass
        self.conns.pop(conn.sock.fileno(), None)
        self.requests.watches.remove_all(conn)
        conn.txs.clear()
        try:
            conn.sock.close()
        except OSError:
            pass

    def process_all(self) -> None:
        for conn in list(self.conns.values()):
            while not conn.closed and not self.stalled():
                if len(conn.inbuf) < HEADER.size:
                    break
                op, rid, tid, length = HEADER.unpack_from(conn.inbuf, 0)
                if len(conn.inbuf) < HEADER.size + length:
                    break
                payload = bytes(conn.inbuf[HEADER.size: HEADER.size + length])
                del conn.inbuf[: HEADER.size + length]
                self.request(conn, op, rid, tid, payload)
            if self.stalled():
                return

    # -- replies and events -------------------------------------------------------------------
    def send(self, conn: Conn, op: int, rid: int, tid: int, payload: bytes, *, control_reply: bool = False) -> None:
        if len(payload) > PAYLOAD_MAX and not self.long_replies:
            op, payload = Op.ERROR, b"E2BIG\0"
        data = HEADER.pack(op, rid, tid, len(payload)) + payload
        if self.mid_stall is not None and not control_reply and not conn.held:
            secs, self.mid_stall = self.mid_stall, None
            cut = HEADER.size + len(payload) // 2
            conn.outbuf += data[:cut]
            conn.held += data[cut:]
            self.stall_until = time.monotonic() + secs
            return
        conn.queue(data)

    # -- requests ---------------------------------------------------------------------------
    def request(self, conn: Conn, op: int, rid: int, tid: int, payload: bytes) -> None:
        try:
            reply = self.dispatch(conn, op, tid, payload)
        except XsErr as exc:
            self.send(conn, Op.ERROR, rid, tid, exc.code.encode() + b"\0")
            return
        except (UnicodeDecodeError, ValueError):
            self.send(conn, Op.ERROR, rid, tid, b"EINVAL\0")
            return
        if reply is not None:
            rop, rpayload, after = reply
            self.send(conn, rop, rid, tid, rpayload, control_reply=(op == Op.CONTROL))
            if after is not None:
                after()

    def dispatch(self, conn: Conn, op: int, tid: int, payload: bytes):
        if op == Op.CONTROL:
            return self.control(conn, args(payload))
        return self.requests.dispatch(conn, op, tid, payload)

    def control(self, conn: Conn, words: list[bytes]):
        if not words:
            raise XsErr("EINVAL")
        cmd = words[0]
        if cmd == b"ping":
            return Op.CONTROL, b"OK\0", None
        if cmd == b"long-replies":
            if len(words) < 2 or words[1] not in (b"on", b"off"):
                raise XsErr("EINVAL")
            self.long_replies = words[1] == b"on"
            return Op.CONTROL, b"OK\0", None
        if cmd in (b"stall", b"stall-mid"):
            if len(words) < 2:
                raise XsErr("EINVAL")
            secs = float(words[1])
            if not 0 <= secs <= 3600:
                raise XsErr("EINVAL")
            if cmd == b"stall":
                def start() -> None:
                    self.stall_until = time.monotonic() + secs
                return Op.CONTROL, b"OK\0", start
            def arm() -> None:
                self.mid_stall = secs
            return Op.CONTROL, b"OK\0", arm
        if cmd == b"drop":
            def drop_all() -> None:
                # Best effort: let the requester see its OK before the door slams.
                try:
                    conn.sock.setblocking(True)
                    conn.sock.settimeout(1.0)
                    conn.sock.sendall(bytes(conn.outbuf))
                    conn.outbuf.clear()
                except OSError:
                    pass
                for c in list(self.conns.values()):
                    self.drop(c)
            return Op.CONTROL, b"OK\0", drop_all
        if cmd == b"introduced":
            # In batches, as xc_domain_getinfo(first_domid, max) is called: at most 500
            # domids from the given first one (5,000 domids do not fit one reply).
            first = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
            ids = [d for d in sorted(self.requests.introduced) if d >= first][:INTRODUCED_BATCH]
            return Op.CONTROL, " ".join(str(d) for d in ids).encode() + b"\0", None
        raise XsErr("EINVAL")


def wait_for_socket(path: str, timeout: float = 10.0, proc=None) -> None:
    """Wait until a xenstored accepts connections on ``path``."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            pass
        finally:
            s.close()
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"sim xenstored exited with status {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise TimeoutError(f"sim xenstored did not listen on {path} within {timeout:g} s")
        time.sleep(0.01)


def spawn(world_dir: str, *, parent_pid: int | None = None, timeout: float = 10.0, **popen_kw):
    """Start ``python -m xcinspect.sim.xenstored`` for ``world_dir``; return its Popen once it listens."""
    import subprocess

    cmd = [sys.executable, "-m", "xcinspect.sim.xenstored", "--world", world_dir]
    if parent_pid:
        cmd += ["--parent-pid", str(parent_pid)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **popen_kw)
    try:
        wait_for_socket(Paths(world_dir).socket, timeout, proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xcinspect.sim.xenstored", description=__doc__.split("\n")[0])
    ap.add_argument("--world", required=True, help="world directory")
    ap.add_argument("--socket", help="socket path (default DIR/xenstored/socket)")
    ap.add_argument("--parent-pid", type=int, help="exit when this parent exits")
    args = ap.parse_args(argv)
    paths = Paths(args.world)
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    os.makedirs(paths.run, exist_ok=True)
    server = Server(args.socket or paths.socket)
    server.managed = bool(args.parent_pid)
    server.install_signals()
    server.listen()
    write_pidfile(paths.xenstored_pid)
    try:
        server.run()
    finally:
        server.close()
        remove_pidfile(paths.xenstored_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
