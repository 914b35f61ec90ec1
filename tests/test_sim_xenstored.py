"""The sim xenstored speaks the real wire protocol: pyxs and XsClient work against it
unchanged, and its fault injection (stall, stall-mid, drop) behaves as documented."""

from __future__ import annotations

import errno
import os
import socket
import time

import pytest
from pyxs import Client
from pyxs.exceptions import PyXSError

from xcinspect.core import xs_wire
from xcinspect.core.xs_wire import Op
from xcinspect.platform.xenstore import NoEntry, XenstoreError, XenstoreTimeout, XsClient
from xcinspect.sim import xenstored
from xcinspect.sim.xswire import WireClient, WireError


@pytest.fixture
def pyxs_client(sim_xenstored):
    with Client(unix_socket_path=sim_xenstored.socket) as c:
        yield c


def drain(monitor, n, timeout=2.0):
    """n events from a pyxs Monitor, failing (not hanging) when they do not come."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(out)} of {n} watch events arrived: {out}"
        try:
            out.append(monitor.events.get(timeout=left))
        except Exception:
            pass
    return out


def no_more(monitor, wait=0.2):
    time.sleep(wait)
    assert monitor.events.empty(), list(monitor.events.queue)


# -- pyxs ------------------------------------------------------------------------------------
def test_pyxs_read_write_list_rm(pyxs_client):
    c = pyxs_client
    assert c.read(b"/local/domain/0/name") == b"Domain-0"
    c.write(b"/t1/a/b", b"hello")
    assert c.read(b"/t1/a/b") == b"hello"
    assert c.read(b"/t1/a") == b""  # parents are created empty
    c.write(b"/t1/a/c", b"c")  # (pyxs cannot write an empty value)
    assert sorted(c.list(b"/t1/a")) == [b"b", b"c"]
    c.mkdir(b"/t1/a/b")  # mkdir keeps an existing value
    assert c.read(b"/t1/a/b") == b"hello"
    c.mkdir(b"/t1/x/y")
    assert c.list(b"/t1/x/y") == []
    assert c.exists(b"/t1/x")
    c.delete(b"/t1/a")  # recursive
    assert not c.exists(b"/t1/a/b")
    assert c.list(b"/t1") == [b"x"]
    c.delete(b"/t1/missing")  # a missing node with an existing parent is fine
    with pytest.raises(PyXSError) as ei:
        c.delete(b"/nowhere/at/all")
    assert ei.value.args[0] == errno.ENOENT
    with pytest.raises(PyXSError) as ei:
        c.read(b"/t1/missing")
    assert ei.value.args[0] == errno.ENOENT
    assert c.read(b"/t1/missing", b"dflt") == b"dflt"
    assert c.get_domain_path(7) == b"/local/domain/7"
    c.write(b"relative", b"r")  # relative to /local/domain/0
    assert c.read(b"/local/domain/0/relative") == b"r"


def test_pyxs_perms(pyxs_client):
    c = pyxs_client
    c.write(b"/t2/p", b"v")
    assert c.get_perms(b"/t2/p") == [b"n0"]
    c.set_perms(b"/t2/p", [b"n0", b"r5"])
    assert c.get_perms(b"/t2/p") == [b"n0", b"r5"]


def test_pyxs_watch_fires_once_then_on_change(pyxs_client):
    c = pyxs_client
    c.write(b"/t3/dom/console/tty", b"-")
    m = c.monitor()
    m.watch(b"/t3/dom/console", b"tok")
    assert drain(m, 1) == [(b"/t3/dom/console", b"tok")]  # fires once on registration
    no_more(m)
    c.write(b"/t3/dom/console/tty", b"/dev/pts/9")  # below the watched path
    c.write(b"/t3/dom/name", b"x")  # beside it: no event
    c.write(b"/t3/dom/console", b"-")  # the path itself
    assert drain(m, 2) == [(b"/t3/dom/console/tty", b"tok"), (b"/t3/dom/console", b"tok")]
    no_more(m)
    c.delete(b"/t3/dom")  # removing a parent fires watches below it, with their own path
    assert drain(m, 1) == [(b"/t3/dom/console", b"tok")]
    m.unwatch(b"/t3/dom/console", b"tok")
    c.write(b"/t3/dom/console/tty", b"again")
    no_more(m)


def test_pyxs_special_watches(pyxs_client, sim_xenstored):
    c = pyxs_client
    m = c.monitor()
    # (distinct tokens: pyxs subscribes a monitor once per watch call, so one token used
    # for two watches would deliver every event twice)
    m.watch(b"@introduceDomain", b"intro")
    m.watch(b"@releaseDomain", b"release")
    assert sorted(drain(m, 2)) == [(b"@introduceDomain", b"intro"), (b"@releaseDomain", b"release")]
    assert not c.is_domain_introduced(42)
    c.introduce_domain(42, 12345, 3)
    assert drain(m, 1) == [(b"@introduceDomain", b"intro")]
    no_more(m, 0.1)
    assert c.is_domain_introduced(42)
    with _xs(sim_xenstored) as xs:
        xs.release(42)
        with pytest.raises(NoEntry):
            xs.release(42)  # not introduced any more
    assert drain(m, 1) == [(b"@releaseDomain", b"release")]
    assert not c.is_domain_introduced(42)
    assert c.is_domain_introduced(0)


class _xs:
    def __init__(self, paths, timeout=2.0):
        self.c = XsClient(paths.socket, timeout=timeout)

    def __enter__(self):
        return self.c

    def __exit__(self, *exc):
        self.c.close()


def test_pyxs_transactions(pyxs_client, sim_xenstored):
    c = pyxs_client
    c.write(b"/t4/k", b"0")
    m = c.monitor()
    m.watch(b"/t4", b"tx")
    drain(m, 1)
    c.transaction()
    c.write(b"/t4/k", b"1")
    c.write(b"/t4/new", b"n")
    assert c.read(b"/t4/k") == b"1"  # the transaction sees its own writes
    with Client(unix_socket_path=sim_xenstored.socket) as other:
        assert other.read(b"/t4/k") == b"0"  # ... nobody else does before the commit
    no_more(m, 0.1)  # and no watch fires before the commit
    assert c.commit() is True
    assert c.read(b"/t4/k") == b"1" and c.read(b"/t4/new") == b"n"
    assert sorted(drain(m, 2)) == [(b"/t4/k", b"tx"), (b"/t4/new", b"tx")]

    c.transaction()
    c.write(b"/t4/k", b"2")
    c.rollback()
    assert c.read(b"/t4/k") == b"1"

    # A conflicting write from another connection makes the commit fail with EAGAIN.
    c.transaction()
    assert c.read(b"/t4/k") == b"1"
    with Client(unix_socket_path=sim_xenstored.socket) as other:
        other.write(b"/t4/k", b"other")
    c.write(b"/t4/k", b"mine")
    assert c.commit() is False
    assert c.read(b"/t4/k") == b"other"


def test_errors_and_limits(sim_xenstored):
    with WireClient(sim_xenstored.socket) as w:
        with pytest.raises(WireError, match="EINVAL"):
            w.request(Op.READ, b"/bad path\0")
        with pytest.raises(WireError, match="EINVAL"):
            w.request(99, b"")
        with pytest.raises(WireError, match="EINVAL"):
            w.control("no-such-command")
        assert w.control("ping") == b"OK\0"
        # a reply over the 4096-byte payload limit is refused with E2BIG
        w.write_many([(f"/t5/{'n' * 60}{i:04d}", "") for i in range(80)])
        with pytest.raises(WireError, match="E2BIG"):
            w.request(Op.DIRECTORY, b"/t5\0")
        # replies echo req_id and tx_id; out-of-order ids are fine
        req = b"/local/domain/0/name\0"
        w.send_raw(xs_wire.HEADER.pack(Op.READ, 0xDEADBEEF, 0, len(req)) + req)
        op, rid, tid, payload = w.recv_packet(time.monotonic() + 2)
        assert (op, rid, tid, payload) == (Op.READ, 0xDEADBEEF, 0, b"Domain-0")
    # an oversized payload gets the client dropped, as real xenstored does
    with WireClient(sim_xenstored.socket) as w:
        w.send_raw(xs_wire.HEADER.pack(Op.WRITE, 1, 0, 5000) + b"x" * 5000)
        with pytest.raises((WireError, ConnectionError)):
            w.recv_packet(time.monotonic() + 2)


def test_client_gone_mid_request(sim_xenstored):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sim_xenstored.socket)
    s.sendall(xs_wire.HEADER.pack(Op.WRITE, 1, 0, 100)[:10])  # half a header
    s.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sim_xenstored.socket)
    s.sendall(xs_wire.HEADER.pack(Op.WRITE, 1, 0, 100) + b"/t6/partial\0")  # half a payload
    s.close()
    with WireClient(sim_xenstored.socket) as w:
        assert w.control("ping") == b"OK\0"
        assert w.read("/t6/partial") is None


# -- XsClient ---------------------------------------------------------------------------------
def test_xsclient_basics(sim_xenstored):
    with _xs(sim_xenstored) as xs:
        xs.write("/t7/a", "1")
        xs.write("/t7/b", "2")
        assert xs.read("/t7/a") == "1"
        assert xs.read("/t7/zz") is None
        assert sorted(xs.list("/t7")) == ["a", "b"]
        assert xs.list("/t7/none") == []
        assert xs.read_many(["/t7/a", "/t7/zz", "/t7/b"] * 300) == ["1", None, "2"] * 300
        xs.rm("/t7/a")
        assert xs.read("/t7/a") is None
        xs.watch("/t7", "w7")
        assert xs.events(1.0) == [("/t7", "w7")]
        xs.write("/t7/c", "3")
        assert xs.events(1.0) == [("/t7/c", "w7")]


def test_xsclient_survives_stall(sim_xenstored):
    with _xs(sim_xenstored, timeout=0.5) as xs:
        xs.write("/t8/k", "v")
        assert xs.control("stall", "2") == b"OK\0"
        t0 = time.monotonic()
        with pytest.raises(XenstoreTimeout):
            xs.read("/t8/k")
        took = time.monotonic() - t0
        assert 0.4 <= took < 1.5, took
        # still stalled: a fresh connection is accepted but not answered either
        with pytest.raises(XenstoreError):
            xs.read("/t8/k")
        time.sleep(max(0.0, t0 + 2.2 - time.monotonic()))
        assert xs.read("/t8/k") == "v"


def test_xsclient_survives_drop_and_rewatches(sim_xenstored):
    with _xs(sim_xenstored) as xs:
        xs.write("/t9/k", "v")
        xs.watch("/t9", "w9")
        assert xs.events(1.0) == [("/t9", "w9")]
        try:
            xs.control("drop")
        except XenstoreError:
            pass  # the connection may die before the OK is read
        deadline = time.monotonic() + 2
        while xs.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not xs.connected
        assert xs.read("/t9/k") == "v"  # reconnects
        # the watch was re-registered (and fired once on registration)
        assert xs.events(1.0) == [("/t9", "w9")]
        with _xs(sim_xenstored) as other:
            other.write("/t9/x", "1")
        assert xs.events(1.0) == [("/t9/x", "w9")]


def test_stall_mid_sends_a_partial_reply(sim_xenstored):
    value = "0123456789" * 50
    with WireClient(sim_xenstored.socket) as w:
        w.write_many([("/t10/big", value)])
        assert w.control("stall-mid", "1") == b"OK\0"
        t0 = time.monotonic()
        req = b"/t10/big\0"
        w.send_raw(xs_wire.HEADER.pack(Op.READ, 77, 0, len(req)) + req)
        # the header and part of the payload come at once ...
        w.sock.settimeout(1.0)
        first = b""
        while len(first) < xs_wire.HEADER.size + 1:
            first += w.sock.recv(65536)
        op, rid, tid, n = xs_wire.HEADER.unpack_from(first, 0)
        assert (op, rid, n) == (Op.READ, 77, len(value))
        assert len(first) < xs_wire.HEADER.size + n
        assert time.monotonic() - t0 < 0.5
        # ... the rest only after the stall
        rest = b""
        w.sock.settimeout(3.0)
        while len(first) + len(rest) < xs_wire.HEADER.size + n:
            rest += w.sock.recv(65536)
        assert time.monotonic() - t0 >= 0.9
        assert (first + rest)[xs_wire.HEADER.size:] == value.encode()

    # XsClient times out on the half reply and recovers afterwards.
    with _xs(sim_xenstored, timeout=0.4) as xs:
        assert xs.read("/t10/big") == value
        xs.control("stall-mid", "1.2")
        t0 = time.monotonic()
        with pytest.raises(XenstoreTimeout):
            xs.read("/t10/big")
        assert time.monotonic() - t0 < 1.0
        time.sleep(max(0.0, t0 + 1.4 - time.monotonic()))
        assert xs.read("/t10/big") == value


def test_pid_file_and_clean_exit(tmp_path):
    proc = xenstored.spawn(str(tmp_path))
    pidfile = tmp_path / "run" / "xenstored.pid"
    deadline = time.monotonic() + 5
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert int(pidfile.read_text()) == proc.pid
    proc.terminate()
    assert proc.wait(timeout=5) == 0
    assert not pidfile.exists()
    assert not os.path.exists(tmp_path / "xenstored" / "socket")


# -- DIRECTORY_PART and the own client's pipelining ---------------------------------------------
def _parts_raw(w, path, offset):
    return w.request(Op.DIRECTORY_PART, path.encode() + b"\0" + b"%d\0" % offset)


def test_directory_part_wire_format(sim_xenstored):
    """The reply format of xenstored_core.c: generation, names from the byte offset, an
    empty string after the last one; an offset past the end gives just that."""
    with WireClient(sim_xenstored.socket) as w:
        w.write_many([(f"/t11/{n}", "") for n in ("a", "bb", "ccc")])
        raw = _parts_raw(w, "/t11", 0)
        gen, body = raw.split(b"\0", 1)
        assert gen.isdigit() and body == b"a\0bb\0ccc\0\0"
        assert _parts_raw(w, "/t11", 2) == gen + b"\0bb\0ccc\0\0"
        assert _parts_raw(w, "/t11", 9) == gen + b"\0\0"
        assert _parts_raw(w, "/t11", 500) == gen + b"\0\0"
        w.write_many([("/t11/dddd", "")])  # a child added: a new generation
        assert _parts_raw(w, "/t11", 0).split(b"\0", 1)[0] != gen
        with pytest.raises(WireError, match="ENOENT"):
            _parts_raw(w, "/t11/none", 0)
        with pytest.raises(WireError, match="EINVAL"):
            w.request(Op.DIRECTORY_PART, b"/t11\0")
        # a long list comes in parts of at most 4096 bytes, none ending mid-name
        names = [f"child-{i:05d}-{'x' * (i % 40)}" for i in range(1500)]
        w.write_many([(f"/t12/{n}", "") for n in names])
        with pytest.raises(WireError, match="E2BIG"):
            w.request(Op.DIRECTORY, b"/t12\0")
        got, off, parts = [], 0, 0
        while True:
            raw = _parts_raw(w, "/t12", off)
            assert len(raw) <= xs_wire.PAYLOAD_MAX
            g, body = raw.split(b"\0", 1)
            parts += 1
            last = body.endswith(b"\0\0") or body == b"\0"
            chunk = body[:-1] if last else body
            assert chunk == b"" or chunk.endswith(b"\0")
            got += [p.decode() for p in chunk.split(b"\0")[:-1]]
            off += len(chunk)
            if last:
                break
        assert parts > 10 and sorted(got) == sorted(names)


def test_xsclient_lists_past_one_reply(sim_xenstored):
    """More children than fit a 4096-byte DIRECTORY reply (the 1,040-domain wall):
    XsClient.list falls back to DIRECTORY_PART, as libxenstore does; pyxs cannot."""
    with WireClient(sim_xenstored.socket) as w:
        w.write_many([(f"/t13/{d}/name", f"dom{d}") for d in range(1, 5001)])
    with _xs(sim_xenstored) as xs:
        assert sorted(map(int, xs.list("/t13"))) == list(range(1, 5001))
        assert xs.list("/t13/1") == ["name"]  # a short list is still one DIRECTORY
    with Client(unix_socket_path=sim_xenstored.socket) as c:
        with pytest.raises(PyXSError):
            c.list(b"/t13")


def test_xsclient_list_restarts_when_the_node_changes(sim_xenstored, monkeypatch):
    with WireClient(sim_xenstored.socket) as w:
        w.write_many([(f"/t14/{i:04d}{'y' * 30}", "") for i in range(400)])
    with _xs(sim_xenstored) as xs, WireClient(sim_xenstored.socket) as other:
        real = xs._request
        calls = []

        def request(op, payload):
            calls.append(op)
            if op == Op.DIRECTORY_PART and calls.count(Op.DIRECTORY_PART) == 2:
                other.write_many([("/t14/late", "")])  # changes between part 1 and part 2
            return real(op, payload)

        monkeypatch.setattr(xs, "_request", request)
        names = xs.list("/t14")
        assert "late" in names and len(names) == 401 and len(set(names)) == 401
        assert calls.count(Op.DIRECTORY_PART) > 4  # the first pass was abandoned


def test_xsclient_watch_many_and_unwatch_many(sim_xenstored):
    with WireClient(sim_xenstored.socket) as w:
        w.write_many([(f"/t15/{i}/k", "0") for i in range(300)])
    with _xs(sim_xenstored) as xs:
        xs.watch_many([(f"/t15/{i}", f"w{i}") for i in range(300)])
        got, deadline = [], time.monotonic() + 5
        while len(got) < 300 and time.monotonic() < deadline:
            got += xs.events(0.5)
        assert sorted(got) == sorted((f"/t15/{i}", f"w{i}") for i in range(300))
        xs.watch_many([("/t15/0", "w0")])  # already registered: nothing is sent, nothing fires
        xs.unwatch_many([(f"/t15/{i}", f"w{i}") for i in range(1, 300)])
        with WireClient(sim_xenstored.socket) as w:
            w.write_many([(f"/t15/{i}/k", "1") for i in range(300)])
        assert xs.events(1.0) == [("/t15/0/k", "w0")]
        assert xs.events(0.3) == []


def test_xsclient_read_many_raises_other_errors(sim_xenstored):
    with _xs(sim_xenstored) as xs:
        xs.write("/t16/k", "v")
        with pytest.raises(XenstoreError, match="EINVAL"):
            xs.read_many(["/t16/k", "/t16/bad path"])
        assert xs.read_many(["/t16/k"]) == ["v"]  # the connection is still good


def test_xsclient_read_only_refuses_writes_before_sending(sim_xenstored):
    with _xs(sim_xenstored) as xs:
        xs.write("/t17/k", "v")
    xs = XsClient(sim_xenstored.socket, read_only=True)
    try:
        for call in (lambda: xs.write("/t17/k", "x"), lambda: xs.rm("/t17/k"), lambda: xs.mkdir("/t17/m"),
                     lambda: xs.introduce(5, 1, 1), lambda: xs.release(5)):
            with pytest.raises(XenstoreError, match="read-only"):
                call()
        assert xs.read("/t17/k") == "v" and xs.list("/t17") == ["k"]
        # a batch with one refused request is refused whole: nothing left waiting for a reply
        from xcinspect.platform.xenstore import Op
        with pytest.raises(XenstoreError, match="read-only"):
            xs._pipeline([(Op.READ, b"/t17/k\x00"), (Op.WRITE, b"/t17/k\x00x")])
        assert xs._conn.pending == {}
        assert xs.read_many(["/t17/k", "/t17/nope"]) == ["v", None]
    finally:
        xs.close()


def test_xsclient_close_ends_its_reader_thread(sim_xenstored):
    import threading

    before = {t for t in threading.enumerate() if t.name == "xs-reader"}
    xs = XsClient(sim_xenstored.socket)
    xs.read("/local/domain/0/name")
    mine = {t for t in threading.enumerate() if t.name == "xs-reader"} - before
    assert len(mine) == 1
    xs.close()
    t = mine.pop()
    t.join(2.0)
    assert not t.is_alive()
    assert not xs.connected
    assert xs.read("/local/domain/0/name") == "Domain-0"  # and a new call reconnects
    xs.close()


def test_xsclient_takes_oxenstored_long_replies(sim_xenstored):
    """oxenstored sends a listing longer than 4096 bytes as one reply (seen in the Xen
    lab: 15,600 bytes for 1,200 children); the client takes it as it comes."""
    with WireClient(sim_xenstored.socket) as w:
        w.write_many([(f"/t18/child-{i:06d}", "") for i in range(1, 1201)])
        w.control("long-replies", "on")
        try:
            with _xs(sim_xenstored) as xs:
                raw = xs._request(Op.DIRECTORY, b"/t18\0")
                assert len(raw) == 1200 * 13 > xs_wire.PAYLOAD_MAX
                assert xs.list("/t18") == [f"child-{i:06d}" for i in range(1, 1201)]
        finally:
            w.control("long-replies", "off")


def test_xsclient_dropped_without_close_ends_its_reader_thread(sim_xenstored):
    import gc
    import threading

    before = {t for t in threading.enumerate() if t.name == "xs-reader"}
    xs = XsClient(sim_xenstored.socket)
    xs.watch("/local/domain/0", "w")  # a watch too: nothing else keeps the thread alive
    mine = {t for t in threading.enumerate() if t.name == "xs-reader"} - before
    assert len(mine) == 1
    del xs
    gc.collect()
    t = mine.pop()
    t.join(2.0)
    assert not t.is_alive()
