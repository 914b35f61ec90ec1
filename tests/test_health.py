"""Verdicts from a short history plus backend facts."""

from xcinspect.core import flags, health
from xcinspect.core.model import BackendFacts
from xcinspect.tui.bindings import verdict_sentence

NOBODY = BackendFacts(consoled_alive=False, port_bound=False)
CONSOLED = BackendFacts(consoled_alive=True, port_bound=True)
CONSOLED_NOT_BOUND = BackendFacts(consoled_alive=True, port_bound=False)


def run(samples, facts, flag=flags.NOT_APPLICABLE, **kw):
    """samples: list of (t, (in_cons, in_prod, out_cons, out_prod)); returns the last verdict."""
    tr = health.Track()
    v = None
    for t, idx in samples:
        tr.update(idx, t)
        v = health.classify(idx, flag, tr, facts, t, **kw)
    return v


def test_full_ring_without_backend_is_stalled_at_once():
    v = run([(0.0, (0, 0, 0, 2048))], NOBODY)
    assert v.state == health.STALLED
    assert "out ring full" in v.reason and "no backend bound" in v.reason
    assert v.action == "connect"
    assert "press c to connect" in verdict_sentence(v)


def test_full_ring_duration_in_reason():
    v = run([(0.0, (0, 0, 0, 2040)), (1.0, (0, 0, 0, 2048)), (35.0, (0, 0, 0, 2048))], NOBODY)
    assert "out ring full for 34 s" in v.reason


def test_full_ring_already_full_when_first_seen():
    v = run([(0.0, (0, 0, 0, 2048)), (34.0, (0, 0, 0, 2048))], NOBODY)
    assert "out ring full since before xcinspect started watching (34 s ago)" in v.reason


def test_full_ring_with_moving_cons_is_backlog_not_stalled():
    s = [(0.0, (0, 0, 0, 2048)), (0.5, (0, 0, 600, 2648)), (1.0, (0, 0, 1200, 3248))]
    v = run(s, CONSOLED)
    assert v.state == health.BACKLOG
    assert "B/s" in v.reason
    # serviced, just behind: the operator may attach (a flooding guest sits here for good)
    assert v.action == "attach" and "press a to attach" in verdict_sentence(v)


def test_unread_bytes_with_frozen_cons_become_stalled_after_threshold():
    s = [(0.0, (0, 0, 100, 100)), (1.0, (0, 0, 100, 150)), (3.0, (0, 0, 100, 150))]
    assert run(s, CONSOLED).state != health.STALLED
    s.append((6.5, (0, 0, 100, 150)))
    v = run(s, CONSOLED)
    assert v.state == health.STALLED and "out_cons frozen for 5 s" in v.reason


def test_empty_quiet_ring_is_idle_not_stalled():
    s = [(0.0, (0, 0, 10, 10)), (100.0, (0, 0, 10, 10))]
    v = run(s, CONSOLED)
    assert v.state == health.IDLE


def test_recent_movement_is_serviced():
    s = [(0.0, (0, 0, 10, 10)), (1.0, (0, 0, 60, 60))]
    assert run(s, CONSOLED).state == health.SERVICED


def test_corrupt_wins():
    v = run([(0.0, (0, 0, 0, 5000))], CONSOLED)
    assert v.state == health.CORRUPT and "5000 > 2048" in v.reason


def test_disconnected_flag():
    v = run([(0.0, (0, 0, 0, 0))], NOBODY, flag=flags.DISCONNECTED)
    assert v.state == health.DISCONNECTED and "drops its output" in v.reason


def test_no_backend_with_consoled_running():
    v = run([(0.0, (0, 0, 0, 10))], CONSOLED_NOT_BOUND)
    assert v.state == health.NO_BACKEND
    assert "xenconsoled is running but does not service it" in v.reason


def test_qemu_console_never_suggests_connect():
    v = run([(0.0, (0, 0, 0, 2048))], NOBODY, console_type="ioemu")
    assert v.state == health.STALLED and v.action is None and "QEMU" in v.reason


def test_wrapped_indices_move():
    top = 2**32 - 100
    s = [(0.0, (0, 0, top, top)), (1.0, (0, 0, (top + 300) % 2**32, (top + 300) % 2**32))]
    v = run(s, CONSOLED)
    assert v.state == health.SERVICED


def test_history_bounded():
    tr = health.Track(hist_len=10)
    for i in range(50):
        tr.update((0, 0, 0, i), float(i))
    assert len(tr.history) == 10


# -- byte 3088 as the guest reads it (real-flag.md) ------------------------------------------


def reading(layout, byte):
    page = bytearray(4096)
    page[flags.FLAG_OFFSET] = byte
    return flags.decode(page, layout)


def run_flag(samples, facts, layout, **kw):
    """samples: (t, idx, byte at 3088); the whole reading goes to classify as the monitor does."""
    tr = health.Track()
    v = None
    for t, idx, byte in samples:
        r = reading(layout, byte)
        tr.update(idx, t)
        tr.note_byte(r.byte, t)
        v = health.classify(idx, r.state, tr, facts, t, flag=r, **kw)
    return v


def test_muted_421_guest_drops_output():
    s = [(0.0, (0, 0, 50, 50), 1), (4.0, (0, 0, 50, 50), 1)]
    v = run_flag(s, CONSOLED, flags.XEN_421)
    assert v.state == health.DISCONNECTED and v.flag_effect == health.DROPS_OUTPUT
    assert "thrown away" in v.reason
    assert "nothing written for 4 s" in v.reason
    assert v.action == "flag-connected" and "press U" in verdict_sentence(v)
    assert v.as_dict()["flag_effect"] == "drops-output"


def test_guest_writing_with_the_byte_at_one_ignores_the_flag():
    s = [(0.0, (0, 0, 50, 50), 1), (1.5, (0, 0, 150, 150), 1), (2.0, (0, 0, 250, 250), 1),
         (2.5, (0, 0, 350, 350), 1)]
    v = run_flag(s, CONSOLED, flags.XEN_421)
    assert v.flag_effect == health.IGNORED and v.state == health.SERVICED
    assert "ignores the flag" in v.reason and "thrown away" not in v.reason


def test_a_write_finishing_after_the_byte_went_to_one_is_not_ignoring():
    # the ring was full when the byte went to 1 (a write spinning), then drained: that
    # write finishing is not the guest ignoring the flag
    s = [(0.0, (0, 0, 0, 2048), 1), (1.5, (0, 0, 2048, 2100), 1), (3.0, (0, 0, 2100, 2100), 1)]
    v = run_flag(s, CONSOLED, flags.XEN_421)
    assert v.flag_effect == health.DROPS_OUTPUT and v.state == health.DISCONNECTED


def test_byte_one_on_a_host_without_flag_still_mutes_new_guests():
    v = run_flag([(0.0, (0, 0, 9, 9), 1), (3.0, (0, 0, 9, 9), 1)], CONSOLED, flags.NONE)
    assert v.state == health.DISCONNECTED and v.flag_effect == health.DROPS_OUTPUT
    assert "byte 3088 is 1" in v.reason and "Linux >= 7.1" in v.reason
    assert run_flag([(0.0, (0, 0, 9, 9), 0)], CONSOLED, flags.NONE).flag_effect is None


def test_rfc_v2_keeps_its_own_meaning():
    v = run_flag([(0.0, (0, 0, 9, 9), 1), (3.0, (0, 0, 9, 9), 1)], CONSOLED, flags.RFC_V2)
    assert v.state == health.SERVICED and v.flag_effect is None


def test_stalled_421_console_under_a_connected_flag_says_connected_once():
    s = [(0.0, (0, 0, 0, 2000), 0), (1.0, (0, 0, 0, 2048), 0), (8.0, (0, 0, 0, 2048), 0)]
    v = run_flag(s, NOBODY, flags.XEN_421)
    assert v.state == health.STALLED and "connected once" in v.reason
    assert v.action == "connect"


def test_qemu_console_permanent_one_is_not_an_alarm():
    v = run_flag([(0.0, (0, 0, 0, 0), 1), (30.0, (0, 0, 0, 0), 1)], NOBODY, flags.XEN_421, console_type="ioemu")
    assert v.flag_effect == health.QEMU_CONSOLE and v.state != health.DISCONNECTED
    assert "not an alarm" in v.reason


def test_console_without_tty_says_why():
    v = run(
        [(0.0, (0, 0, 0, 0)), (2.0, (0, 0, 0, 0))], NOBODY, has_tty=False)
    assert v.state == health.NO_BACKEND and "no console/tty" in v.reason and "xl create" in v.reason


def test_full_at_the_first_look_reads_right():
    # --once: one sample, full -- not "(0 s ago)"
    v = run([(0.0, (0, 0, 0, 2048))], NOBODY)
    assert "already full when xcinspect started watching" in v.reason and "0 s ago" not in v.reason
    # a domain that appeared 25 minutes into the watch, full at its first sample
    tr = health.Track()
    tr.appeared_late = True
    for t in (1500.0, 1508.0):
        tr.update((0, 0, 0, 2048), t)
        v = health.classify((0, 0, 0, 2048), flags.NOT_APPLICABLE, tr, NOBODY, t)
    assert "since xcinspect first saw this domain (8 s ago" in v.reason
    assert "before xcinspect started watching" not in v.reason
