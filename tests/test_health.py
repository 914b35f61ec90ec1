"""Verdicts from a short history plus backend facts."""

from xcinspect.core import flags as F
from xcinspect.core import health as H
from xcinspect.core.model import BackendFacts

NOBODY = BackendFacts(consoled_alive=False, port_bound=False)
CONSOLED = BackendFacts(consoled_alive=True, port_bound=True)
CONSOLED_NOT_BOUND = BackendFacts(consoled_alive=True, port_bound=False)


def run(samples, facts, flag=F.NOT_APPLICABLE, **kw):
    """samples: list of (t, (in_cons, in_prod, out_cons, out_prod)); returns the last verdict."""
    tr = H.Track()
    v = None
    for t, idx in samples:
        tr.update(idx, t)
        v = H.classify(idx, flag, tr, facts, t, **kw)
    return v


def test_full_ring_without_backend_is_stalled_at_once():
    v = run([(0.0, (0, 0, 0, 2048))], NOBODY)
    assert v.state == H.STALLED
    assert "out ring full" in v.reason and "no backend bound" in v.reason
    assert v.action == "connect"
    assert "press c to connect" in v.sentence()


def test_full_ring_duration_in_reason():
    v = run([(0.0, (0, 0, 0, 2040)), (1.0, (0, 0, 0, 2048)), (35.0, (0, 0, 0, 2048))], NOBODY)
    assert "out ring full for 34 s" in v.reason


def test_full_ring_already_full_when_first_seen():
    v = run([(0.0, (0, 0, 0, 2048)), (34.0, (0, 0, 0, 2048))], NOBODY)
    assert "out ring full since before xcinspect started watching (34 s ago)" in v.reason


def test_full_ring_with_moving_cons_is_backlog_not_stalled():
    s = [(0.0, (0, 0, 0, 2048)), (0.5, (0, 0, 600, 2648)), (1.0, (0, 0, 1200, 3248))]
    v = run(s, CONSOLED)
    assert v.state == H.BACKLOG
    assert "B/s" in v.reason
    # serviced, just behind: the operator may attach (a flooding guest sits here for good)
    assert v.action == "attach" and "press a to attach" in v.sentence()


def test_unread_bytes_with_frozen_cons_become_stalled_after_threshold():
    s = [(0.0, (0, 0, 100, 100)), (1.0, (0, 0, 100, 150)), (3.0, (0, 0, 100, 150))]
    assert run(s, CONSOLED).state != H.STALLED
    s.append((6.5, (0, 0, 100, 150)))
    v = run(s, CONSOLED)
    assert v.state == H.STALLED and "out_cons frozen for 5 s" in v.reason


def test_empty_quiet_ring_is_idle_not_stalled():
    s = [(0.0, (0, 0, 10, 10)), (100.0, (0, 0, 10, 10))]
    v = run(s, CONSOLED)
    assert v.state == H.IDLE


def test_recent_movement_is_serviced():
    s = [(0.0, (0, 0, 10, 10)), (1.0, (0, 0, 60, 60))]
    assert run(s, CONSOLED).state == H.SERVICED


def test_corrupt_wins():
    v = run([(0.0, (0, 0, 0, 5000))], CONSOLED)
    assert v.state == H.CORRUPT and "5000 > 2048" in v.reason


def test_disconnected_flag():
    v = run([(0.0, (0, 0, 0, 0))], NOBODY, flag=F.DISCONNECTED)
    assert v.state == H.DISCONNECTED and "drops its output" in v.reason


def test_no_backend_with_consoled_running():
    v = run([(0.0, (0, 0, 0, 10))], CONSOLED_NOT_BOUND)
    assert v.state == H.NO_BACKEND
    assert "xenconsoled is running but does not service it" in v.reason


def test_qemu_console_never_suggests_connect():
    v = run([(0.0, (0, 0, 0, 2048))], NOBODY, console_type="ioemu")
    assert v.state == H.STALLED and v.action is None and "QEMU" in v.reason


def test_wrapped_indices_move():
    top = 2**32 - 100
    s = [(0.0, (0, 0, top, top)), (1.0, (0, 0, (top + 300) % 2**32, (top + 300) % 2**32))]
    v = run(s, CONSOLED)
    assert v.state == H.SERVICED


def test_history_bounded():
    tr = H.Track(hist_len=10)
    for i in range(50):
        tr.update((0, 0, 0, i), float(i))
    assert len(tr.history) == 10
