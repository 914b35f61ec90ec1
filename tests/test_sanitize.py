"""Guest bytes are hostile: nothing but printable text, newlines and tabs gets out."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcinspect.core.sanitize import Sanitizer, is_safe, sanitize

HOSTILE = {
    "osc52-clipboard": b"\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "osc8-link": b"\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "title": b"\x1b]0;pwned\x07",
    "dsr-query": b"\x1b[6n",
    "da-query": b"\x1b[c",
    "decrqss": b"\x1bP$qm\x1b\\",
    "apc": b"\x1b_Gf=100;AAAA\x1b\\",
    "pm": b"\x1b^secret\x1b\\",
    "sos": b"\x1bXstring\x1b\\",
    "bracketed-paste-end": b"\x1b[201~rm -rf /\n",
    "clear-screen": b"\x1b[2J\x1b[H",
    "c1-csi": b"\x9b6n",
    "c1-osc-utf8": "\u009d0;title\u009c".encode(),
    "alt-screen": b"\x1b[?1049h",
    "mouse-report": b"\x1b[?1000h",
    "keypad": b"\x1b=",
    "reset": b"\x1bc",
    "bell": b"\x07",
    "nul": b"\0\0\0",
    "invalid-utf8": b"\xff\xfe\xc3\x28",
    "bidi": "\u202eevil\u202c".encode(),
    "del": b"\x7f",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_sequences_are_neutralised(name):
    out = sanitize(b"before " + HOSTILE[name] + b" after\n")
    assert is_safe(out), repr(out)
    assert "\x1b" not in out
    assert out.startswith("before ") and out.endswith(" after\n")


def test_plain_text_reads_normally():
    text = b"[    0.000000] Linux version 6.1.0\r\n\tindented\r\nlogin: "
    assert sanitize(text) == "[    0.000000] Linux version 6.1.0\n\tindented\nlogin: "


def test_sgr_colours_dropped_other_sequences_visible():
    assert sanitize(b"\x1b[0;32m  OK  \x1b[0m") == "  OK  "
    assert sanitize(b"\x1b[6n") == "^[[6n"
    assert "52;c;" in sanitize(HOSTILE["osc52-clipboard"])


def test_utf8_kept():
    assert sanitize("héllo wörld ✓".encode()) == "héllo wörld ✓"


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
@settings(max_examples=300)
def test_chunking_does_not_matter(data, k):
    whole = sanitize(data)
    s = Sanitizer()
    parts = "".join(s.feed(data[i:i + k]) for i in range(0, len(data), k)) + s.flush()
    assert parts == whole
    assert is_safe(whole)


def test_unterminated_osc_is_bounded():
    out = sanitize(b"\x1b]52;c;" + b"A" * 100000)
    assert is_safe(out) and len(out) < 30000


def test_long_lines_pass():
    out = sanitize(b"x" * 100000 + b"\n")
    assert len(out) == 100001


def test_one_line_is_the_one_cleaner_of_every_front_end():
    """Names and labels reach a table cell (TUI), a metrics label and the fleet's batch
    line through one function: newlines as ^J, tabs as spaces, escapes neutralised."""
    from xcinspect.core.sanitize import is_safe, one_line
    from xcinspect.engine.fleet import clean as fleet_clean
    from xcinspect.metrics import label as metrics_label
    from xcinspect.tui.model import clean as table_clean

    hostile = "web\t01\n\x1b]0;pwned\x07\x1b[2J\u202e"
    out = one_line(hostile)
    assert "\n" not in out and "\t" not in out and "\x1b" not in out and is_safe(out)
    assert out.startswith("web 01^J")
    assert fleet_clean(hostile) == metrics_label(hostile) == table_clean(hostile) == out
