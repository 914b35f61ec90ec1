"""`xcinspect --page FILE`: offline inspection, and its bad-input cases."""

import json
import subprocess
import sys

import pytest

from xcinspect.core import flags
from xcinspect.core.ring import RingIO, blank_page


def xci(*args, **kw):
    return subprocess.run([sys.executable, "-m", "xcinspect", *args], capture_output=True, text=True,
                          timeout=60, **kw)


@pytest.fixture
def stuck_page(tmp_path):
    page = blank_page(out_cons=2**32 - 100, out_prod=2**32 - 100)
    io = RingIO(page)
    io.write_out(b"[    1.234] hvc0: console \x1b]52;c;cG93bmVk\x07 full\n" * 60)
    p = tmp_path / "page.bin"
    p.write_bytes(bytes(page))
    return p


def test_page_json(stuck_page):
    r = xci("--page", str(stuck_page), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    ring = doc["ring"]
    assert ring["out"] == {"cons": 2**32 - 100, "prod": (2**32 - 100 + 2048) % 2**32, "fill": 2048, "size": 2048}
    assert ring["in"]["fill"] == 0 and ring["in"]["size"] == 1024
    assert ring["valid"] is True
    assert ring["flag"] == {"layout": "none", "raw": None, "state": "n/a", "byte": 0}


@pytest.mark.parametrize("layout,raw,state", [
    (flags.RFC_V2, 1, "connected"), (flags.XEN_421, 1, "disconnected"),
])
def test_page_flag_layout_override(tmp_path, layout, raw, state):
    page = blank_page()
    page[3088] = raw
    p = tmp_path / "p.bin"
    p.write_bytes(bytes(page))
    doc = json.loads(xci("--page", str(p), "--flag-layout", layout, "--json").stdout)
    assert doc["ring"]["flag"] == {"layout": layout, "raw": raw, "state": state, "byte": raw}


def test_page_corrupt_is_reported_not_crashed(tmp_path):
    p = tmp_path / "c.bin"
    p.write_bytes(bytes(blank_page(out_cons=0, out_prod=99999)))
    r = xci("--page", str(p), "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["ring"]["valid"] is False
    r = xci("--page", str(p))
    assert "CORRUPT" in r.stdout


def test_page_summary_is_sanitized(stuck_page):
    r = xci("--page", str(stuck_page))
    assert r.returncode == 0
    assert "fill       2048/2048" in r.stdout
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "hvc0: console" in r.stdout


@pytest.mark.parametrize("content", [b"", b"x" * 100, b"x" * 4097, b"x" * 8192])
def test_wrong_size_page(tmp_path, content):
    p = tmp_path / "bad.bin"
    p.write_bytes(content)
    r = xci("--page", str(p), "--json")
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert "not a console page" in r.stderr and "Traceback" not in r.stderr


def test_unreadable_page(tmp_path):
    r = xci("--page", str(tmp_path / "missing.bin"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot read page file" in r.stderr


def test_directory_as_page(tmp_path):
    r = xci("--page", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_bad_flag_layout():
    r = xci("--page", "/dev/null", "--flag-layout", "xen-9")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_missing_sim_world(tmp_path):
    r = xci("--sim", str(tmp_path / "nowhere"), "--once", "--json")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("xcinspect: no sim world at")
    assert len(r.stderr.strip().splitlines()) == 1


def full_page_with_lines() -> bytes:
    """A stuck boot's page: 2048 unread bytes of numbered lines (wrapping the ring)."""
    text = b"".join(b"line %04d of the boot log ......................\n" % i for i in range(60))
    unread = text[-2048:]
    page = blank_page(out_cons=5000, out_prod=5000 + 2048)
    for i, b in enumerate(unread):
        page[1024 + (5000 + i) % 2048] = b
    return bytes(page)


def test_page_from_a_pipe(tmp_path):
    page = full_page_with_lines()
    p = tmp_path / "p.bin"
    p.write_bytes(page)
    for args, kw in ((["--page", "-", "--json"], {"input": page}),
                     (["--page", "/dev/stdin", "--json"], {"input": page})):
        r = subprocess.run([sys.executable, "-m", "xcinspect", *args], capture_output=True, timeout=30, **kw)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["ring"]["out"]["fill"] == 2048
    r = subprocess.run(["bash", "-c", f'{sys.executable} -m xcinspect --page <(cat {p}) --json'],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # a short pipe is one line, exit 2
    r = subprocess.run([sys.executable, "-m", "xcinspect", "--page", "-"], input=page[:100], capture_output=True,
                       text=False, timeout=30)
    assert r.returncode == 2 and b"100 bytes" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_page_json_has_verdict_and_the_whole_unread_span(tmp_path):
    p = tmp_path / "p.bin"
    p.write_bytes(full_page_with_lines())
    doc = json.loads(xci("--page", str(p), "--json").stdout)
    assert doc["verdict"]["state"] == "stalled" and "out ring full" in doc["verdict"]["reason"]
    assert len(doc["unread_out"].encode()) == 2048 and "line 0059" in doc["unread_out"]
    first = doc["unread_out"].splitlines()[1]  # the first whole line of the span
    text = xci("--page", str(p)).stdout
    assert "unread out (all 2048 bytes" in text and first in text and "line 0059" in text
    assert "verdict stalled" in text


def test_page_into_a_closed_pipe_is_quiet(tmp_path):
    p = tmp_path / "p.bin"
    p.write_bytes(full_page_with_lines())
    r = subprocess.run(["bash", "-c", f"{sys.executable} -m xcinspect --page {p} | head -3"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    # the reader gone before anything is written (true exits at once): still quiet
    r = subprocess.run(["bash", "-c", f"{sys.executable} -m xcinspect --page {p} | true"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
