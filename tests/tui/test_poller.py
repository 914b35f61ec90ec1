"""The sampling thread and frames, without an app."""

from __future__ import annotations

import threading
import time

from conftest import Clock

from xcinspect.engine.monitor import Monitor, TickResult
from xcinspect.tui.attach_io import AttachIO, key_bytes
from xcinspect.tui.model import clean
from xcinspect.tui.poller import FrameBuilder, Poller, PollerState, recent_output


def tick_result(appeared=(), gone=(), changed_state=()):
    r = TickResult()
    r.appeared, r.gone, r.changed_state = list(appeared), list(gone), list(changed_state)
    return r


def monitor(world):
    m = Monitor(world.platform(), clock=Clock())
    m.open()
    return m


def test_rows_are_sanitized_plain_data(frozen_world):
    m = monitor(frozen_world)
    try:
        m.tick()
        f = FrameBuilder(m).build(None, 3)
        assert [r.domid for r in f.rows] == [1, 2, 3, 4, 5, 6, 7, 8]
        r3 = f.rows[2]
        assert r3.state == "stalled" and r3.out_fill == 2048 and r3.action == "connect"
        assert f.detail.domid == 3 and "Linux version" in f.detail.unread
        assert dict(f.detail.keys)["ring-ref"] == "1003"
        assert f.rows[7].out_fill is None and f.rows[7].state == "error"
        for text in (f.detail.unread, f.detail.consumed, *(r.name for r in f.rows)):
            assert "\x1b" not in text and "\x07" not in text
    finally:
        m.close()


def test_row_fields_by_name(frozen_world):
    """FrameBuilder builds Rows positionally (5,000 a tick): each field, by name, is what
    it is derived from; an unchanged entry gives the same Row object, changed facts a new one."""
    from dataclasses import replace

    from xcinspect.core import health
    from xcinspect.tui.poller import _attached, flag_cell, name_of_type

    m = monitor(frozen_world)
    try:
        m.tick()
        fb = FrameBuilder(m, own_pid=4242)
        now = m.clock()
        aged = 0
        for e in m.views():
            r = fb.row(e, now)
            idx = e.idx
            f, con, v = e.facts, e.info.console, e.verdict
            fills = ((idx[3] - idx[2]) & 0xFFFFFFFF, (idx[1] - idx[0]) & 0xFFFFFFFF) if idx else (None, None)
            want = dict(
                domid=e.domid, name=clean(e.name), state=v.state, reason=clean(v.reason), action=v.action,
                flag=flag_cell(e.flag), flag_layout=e.layout,
                out_cons=idx[2] if idx else None, out_prod=idx[3] if idx else None, out_fill=fills[0],
                in_cons=idx[0] if idx else None, in_prod=idx[1] if idx else None, in_fill=fills[1],
                rate=e.track.rate_at(now) if idx else 0.0,
                moved_at=e.track.moved_at() if idx and e.track.last is not None else None,
                attached=_attached(f, 4242), serviced_by=f.serviced_by if f else None,
                backend=health.backend_phrase(f), console_type=name_of_type(con),
                qemu=bool(con and con.served_by_qemu), flag_effect=v.flag_effect)
            assert r._asdict() == want, e.domid
            assert fb.row(e, now) is r  # nothing changed: the same Row
            if r.rate == 0.0:  # a ring that did not move keeps its Row as time passes (the age is the table's)
                assert fb.row(e, now + 7.0) is r
                if r.moved_at is not None:
                    assert r.quiet_at(now + 7.0) == e.track.quiet_for(now + 7.0)
                    aged += 1
        assert aged >= 3  # quiet rings with indices were among them
        e = m.entries[1]
        before = fb.row(e, now)
        e.facts = replace(e.facts, lock_holder_pid=4242, lock_holder_cmd="xcinspect")
        after = fb.row(e, now)
        assert after is not before and after.attached == "this TUI" and before.attached == ""
    finally:
        m.close()


def test_recent_output_splits_at_cons(frozen_world):
    m = monitor(frozen_world)
    try:
        m.tick()
        old, new = recent_output(m.entries[2])  # 300 unread bytes after cons
        assert len(new) == 300 and new.endswith(b"backup: 41% done\r\n")
        assert old and not old.startswith(b"\0")
        old, new = recent_output(m.entries[1])  # empty ring: everything was consumed
        assert new == b"" and b"Welcome to Debian" in old
        assert recent_output(m.entries[5]) == (b"", b"")  # corrupt: nothing is read
    finally:
        m.close()


def test_events_need_a_previous_sample(frozen_world):
    m = monitor(frozen_world)
    try:
        m.tick()
        b = FrameBuilder(m)
        first = tick_result(changed_state=[(3, "idle", "stalled")])
        f = b.build(first, None)
        assert f.stalled == ()  # first sample of dom 3: it did not "become" stalled
        f = b.build(tick_result(changed_state=[(3, "serviced", "stalled"), (2, "stalled", "serviced")],
                                gone=[(9, "old\x1b[2Jname")], appeared=[4]), None)
        assert f.stalled == ((3, "legacy-stuck"),)
        assert f.recovered == ((2, "db-primary", "serviced"),)
        assert f.appeared == ((4, "wrap-near-2^32"),)
        assert f.gone == ((9, "old^[[2Jname"),)
    finally:
        m.close()


def test_poller_thread_ticks_pauses_and_stops(frozen_world):
    m = monitor(frozen_world)
    got = []
    ev = threading.Event()

    def deliver(item):
        got.append(item)
        ev.set()

    st = PollerState(interval=0.05)
    p = Poller(m, deliver, st)
    try:
        p.start()
        deadline = time.monotonic() + 5
        while p.ticks < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.ticks >= 3
        st.paused = True
        p.wake()
        time.sleep(0.1)
        n = p.ticks
        time.sleep(0.2)
        assert p.ticks == n  # paused
        p.request_tick()  # "r" while paused samples once
        deadline = time.monotonic() + 5
        while p.ticks == n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.ticks == n + 1
        st.selected = 3
        got.clear()
        p.request_detail()
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got[0].domid == 3
    finally:
        p.stop()
        p.join(5)
        m.close()
    assert not p.is_alive()


def test_clean_makes_one_safe_line():
    assert clean("a\x1b]52;c;xx\x07b\nc\td") == "a^[]52;c;xx^Gb^Jc d"


def test_key_bytes():
    assert key_bytes("enter", "\r") == b"\r"
    assert key_bytes("ctrl+c", None) == b"\x03"
    assert key_bytes("a", "a") == b"a"
    assert key_bytes("question_mark", "?") == b"?"
    assert key_bytes("up", None) == b"\x1b[A"
    assert key_bytes("escape", "\x1b") == b"\x1b"
    assert key_bytes("f5", None) is None
    assert key_bytes("é", "é") == "é".encode()


def test_attach_io_round_trip():
    from fakes import FakeSession

    s = FakeSession()
    out = []
    closed = []
    io = AttachIO(s, out.append, closed.append, poll=0.02)
    io.start()
    s.guest.sendall(b"hello\r\n")
    io.send(b"ls\r")
    assert s.guest_read() == b"ls\r"
    deadline = time.monotonic() + 5
    while not out and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b"".join(out) == b"hello\r\n"
    s.guest.close()  # the guest side goes away: EOF ends the thread
    io.join(5)
    assert closed == ["guest went away"] and s.closed
