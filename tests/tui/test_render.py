"""Pure helpers: numbers, gauges, the ring picture, sparklines (no app)."""

from xcinspect.tui import render


def test_fmt_rate():
    assert render.fmt_rate(0) == "0"
    assert render.fmt_rate(512) == "512"
    assert render.fmt_rate(1234) == "1.2K"
    assert render.fmt_rate(15_000) == "15K"
    assert render.fmt_rate(3_400_000) == "3.4M"
    assert all(len(render.fmt_rate(x)) <= 5 for x in (0, 9.9, 999, 9949, 9951, 999_499, 10**9))


def test_fmt_age():
    assert render.fmt_age(None) == "-"
    assert render.fmt_age(-3) == "0s"
    assert render.fmt_age(34.9) == "34s"
    assert render.fmt_age(125) == "2m"
    assert render.fmt_age(7300) == "2h"
    assert render.fmt_age(400000) == "4d"


def test_bar_and_gauge():
    assert render.bar(0, 2048, 8) == " " * 8
    assert render.bar(2048, 2048, 8) == "█" * 8
    assert render.bar(1, 2048, 8).strip() == "▏"  # a non-empty ring never looks empty
    assert len(render.bar(1000, 2048, 8)) == 8
    g = render.gauge(2048, 2048, 8)
    assert g.plain == "████████ 2048"
    assert render.gauge(None, 2048, 8).plain.strip() == "-"
    assert "CORRUPT" in render.gauge(9000, 2048, 8).plain


def test_ring_cells_plain_span():
    unread, c, p, wraps = render.ring_cells(0, 1024, 2048, 8)
    assert unread == [True] * 4 + [False] * 4
    assert (c, p, wraps) == (0, 4, False)


def test_ring_cells_wrapping_span():
    # cons near the end of the ring, prod past its start: unread at both ends
    unread, c, p, wraps = render.ring_cells(1792, 2048 + 256, 2048, 8)
    assert unread == [True, False, False, False, False, False, False, True]
    assert wraps and c == 7 and p == 1


def test_ring_cells_free_running_wrap_at_2_32():
    cons = 2**32 - 100
    prod = 100  # the 32-bit counters wrapped
    unread, c, p, wraps = render.ring_cells(cons, prod, 2048, 16)
    assert sum(unread) == 2 and unread[0] and unread[-1]
    assert wraps


def test_ring_cells_full_and_empty_and_corrupt():
    unread, c, p, _ = render.ring_cells(5, 5 + 2048, 2048, 8)
    assert all(unread) and c == p
    unread, c, p, _ = render.ring_cells(77, 77, 1024, 8)
    assert not any(unread) and c == p
    unread, *_ = render.ring_cells(0, 9000, 2048, 8)
    assert not any(unread)


def test_ring_picture_text():
    t = render.ring_picture("out", 1792, 2048 + 256, 2048, 8)
    lines = t.plain.split("\n")
    assert lines[0] == "out ▏█······█▕ 25%"
    assert lines[1].rstrip() == "      p     c ↺"
    full = render.ring_picture("out", 0, 2048, 2048, 8).plain
    assert "full" in full and "↕" in full
    assert "CORRUPT" in render.ring_picture("out", 0, 9000, 2048, 8).plain
    assert "not sampled" in render.ring_picture("out", None, None, 2048, 8).plain


def test_ring_numbers():
    assert render.ring_numbers("out", 10, 20, 2048).plain == "out c=10 p=20 10/2048"


def test_sparkline():
    assert render.sparkline([], 2048, 10) == ""
    s = render.sparkline([0, 512, 1024, 2048], 2048, 10)
    assert s[0] == "▁" and s[-1] == "█" and len(s) == 4
    assert len(render.sparkline(list(range(100)), 100, 10)) == 10


def test_guest_lines_and_text():
    assert render.guest_lines("a\tb\nc\n", 5) == ["a       b", "c"]
    assert render.guest_lines("1\n2\n3\n", 2) == ["2", "3"]
    t = render.guest_text("[red]not markup[/red]")
    assert t.plain == "[red]not markup[/red]" and not t.spans


def test_palette_maps_states_to_theme_tokens():
    pal = render.Palette({"error": "#ff0000", "success": "#00ff00"})
    assert pal.state("stalled").color.name == "#ff0000" and pal.state("stalled").bold
    assert pal.state("serviced").color.name == "#00ff00"
    assert render.Palette().state("idle").color is None  # no theme: no colour
