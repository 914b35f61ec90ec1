"""Hostile guest output never reaches the operator's terminal raw (pain point 7, §13.6).

The corpus (``hostile_corpus.py``, 80+ sequences: CSI queries and modes, OSC 52 / 8 /
titles / colour queries, DCS, APC, PM, SOS, two-byte ESC, 8-bit C1 raw and UTF-8
encoded, C0 controls, invalid UTF-8 incl. overlong ESC/C1, bidi and zero-width
characters, a 100,000-byte line, a flood, NULs) is

1. fed to the sanitizer (whole and byte by byte);
2. written into a real guest's out ring in a running sim world -- the test is the guest's
   second producer and kicks the backend over the guest's event channel -- and read by
   * ``xcinspect attach`` (interactive, under a pty) through xenconsoled's pty, and
     through xcinspect's own backend (``connect``);
   * the TUI (``xcinspect --sim``) inside tmux: attach screen, detail panel, table;
3. put into page dumps for ``xcinspect --page`` and into domain names for ``--batch``.

What the terminal receives is checked at the byte level: the pty master's bytes for
the CLI (no C0 but \\n \\t, no DEL, no C1, no invalid UTF-8, no guest sequence), tmux's
``pipe-pane`` stream for the TUI (Textual draws with escape sequences of its own, so the
check is that no guest sequence appears right after the marker the guest printed before
it, that no C1 control, NUL or BEL appears at all, that no OSC/DCS/APC/PM/SOS carries
guest material, and that no terminal query appears once the guest starts writing); and
tmux's own state shows nothing got through (pane title, paste buffers), while the
screen (``capture-pane``) shows each sequence in its visible escaped form.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from hostile_corpus import CORPUS, Hostile, PtyRun, bad_cli_bytes, framed

from xcinspect.core.ring import IDX, IDX_OFFSET, OUT_SIZE, RingIO, blank_page, parse_page
from xcinspect.core.sanitize import Sanitizer, is_safe, sanitize
from xcinspect.platform.xenstore import XsClient
from xcinspect.sim.evtchn import channel_name

SGR_ONLY = {"csi-conceal-text"}  # SGR is dropped, not shown: nothing visible but the text


# -- 1. the sanitizer ---------------------------------------------------------------------------
@pytest.mark.parametrize("h", CORPUS, ids=lambda h: h.name)
def test_sanitizer_neutralises_every_sequence(h: Hostile):
    data = b"before " + h.data + b" after\nNEXT LINE\n"
    out = sanitize(data)
    assert is_safe(out), repr(out[:200])
    enc = out.encode("utf-8", "surrogateescape")
    for raw in h.raw:
        assert raw not in enc, raw
    assert out.startswith("before ")
    # whatever the sequence, the guest's next line is shown: no sequence can blind the view
    assert "\nNEXT LINE\n" in out, repr(out[-200:])
    if b"\x1b" in h.data and h.name not in SGR_ONLY:
        assert "^[" in out  # shown in visible form, not dropped
    if h.name.startswith("c1-"):
        assert "\\x" in out
    # chunk boundaries change nothing (a guest controls where its writes split)
    s = Sanitizer()
    step = 1 if len(data) < 5000 else 997
    assert "".join(s.feed(data[i:i + step]) for i in range(0, len(data), step)) + s.flush() == out


def test_every_sequence_in_one_chunk_is_shown():
    """Regression: after the first escape sequence of a chunk, later ones vanished."""
    out = sanitize(b"".join(h.data for h in CORPUS if h.name.startswith("osc")))
    assert out.count("^[]") >= sum(1 for h in CORPUS if h.name.startswith("osc"))


# -- helpers: a pty, a second producer in a guest's ring -----------------------------------------
def xci_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "xcinspect", *args]


class GuestWriter:
    """The test as a second producer in a quiet guest's out ring: writes bytes the way the
    guest kernel would, then kicks the backend over the guest's event channel (a datagram
    to the backend's end, as the guest's notify sends)."""

    def __init__(self, world, domid: int) -> None:
        plat = world.platform()
        self.mapping = plat.map_page(domid, None, writable=True)
        self.ring = RingIO(self.mapping.buf)
        port = world.domains[domid]["port"]
        self.backend = channel_name(plat.world_id, domid, port, "backend")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def kick(self) -> None:
        try:
            self.sock.sendto(b"!", self.backend)
        except OSError:
            pass

    def write(self, data: bytes, timeout: float = 60.0) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            n = self.ring.write_out(bytes(view[:OUT_SIZE]))
            view = view[n:]
            self.kick()
            if not n:
                if time.monotonic() > deadline:
                    raise AssertionError("nobody drains the ring")
                time.sleep(0.002)

    def wait_drained(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while parse_page(self.mapping.buf).out.fill:
            assert time.monotonic() < deadline, "ring not drained"
            self.kick()
            time.sleep(0.02)

    def close(self) -> None:
        self.sock.close()
        self.mapping.close()


HOSTILE_NAME = "hx\x1b]0;pwned-name\x07\x1b[6n\x08\x7f\x1b]52;c;bmFtZQ==\x07"


def payload() -> tuple[bytes, list[tuple[Hostile, bytes]]]:
    parts, marks = [], []
    for i, h in enumerate(CORPUS):
        data, marker = framed(i, h)
        parts.append(data)
        marks.append((h, marker))
    return b"".join(parts), marks


def visible_prefix(h: Hostile, n: int = 30) -> bytes:
    return sanitize(h.data)[:n].encode()


def check_cli_stream(stream: bytes, marks) -> None:
    """A CLI front end wrote ``stream`` to a terminal: nothing a terminal acts on."""
    text = stream.replace(b"\r\n", b"\n")
    assert bad_cli_bytes(text) == [], bad_cli_bytes(text)[:10]
    for h, marker in marks:
        for raw in h.raw:
            assert raw not in stream, (h.name, raw)
        at = stream.find(marker)
        assert at >= 0, f"{h.name}: marker {marker!r} not in the output"
        want = visible_prefix(h)
        assert stream[at + len(marker): at + len(marker) + len(want)] == want, \
            (h.name, bytes(stream[at: at + len(marker) + 60]))


# -- 2. a running world -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from xcinspect.sim.handle import start_world

    w = start_world(str(tmp_path_factory.mktemp("hostile-world")), scenario="demo", timeline=False)
    try:
        yield w
    finally:
        w.stop()


def _booted(world, domid: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while domid not in json.loads(world.control("status"))["booted"]:
        assert time.monotonic() < deadline, f"dom {domid} did not boot"
        time.sleep(0.05)


def _quiet(world, domid: int, prompt_in: str | None = None, timeout: float = 20.0) -> None:
    """The guest finished its boot log and sits at its prompt (the ring is empty)."""
    plat = world.platform()
    deadline = time.monotonic() + timeout
    last = None
    while True:
        with plat.map_page(domid, None) as m:
            idx = IDX.unpack_from(m.buf, IDX_OFFSET)
        if idx == last and idx[2] == idx[3] and idx[3] > 0:
            if prompt_in is None or b"~ # " in open(prompt_in, "rb").read()[-64:]:
                return
        assert time.monotonic() < deadline, f"dom {domid} never went quiet: {idx}"
        last = idx
        time.sleep(0.3)


@pytest.fixture(scope="module")
def served(world):
    """A quiet guest serviced by xenconsoled (attach goes through its pty), hostile name."""
    d = int(world.control("create hxpty consoled=1 behaviour=quiet"))
    _booted(world, d)
    _quiet(world, d)
    xs = XsClient(world.xenstore_path)
    xs.write(f"/local/domain/{d}/name", HOSTILE_NAME)
    xs.close()
    return d


@pytest.fixture(scope="module")
def own_backend(world):
    """A quiet guest nobody serviced until ``xcinspect connect`` (attach goes through our
    backend's socket)."""
    d = int(world.control("create hxbe consoled=0 behaviour=quiet"))
    _booted(world, d)
    r = subprocess.run(xci_argv("--sim", world.dir, "connect", str(d)), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    log = [ln[5:] for ln in r.stdout.splitlines() if ln.startswith("log: ")][0]
    _quiet(world, d, prompt_in=log)
    return d


@pytest.mark.parametrize("path", ["xenconsoled-pty", "xcinspect-backend"])
def test_cli_attach_under_a_pty(world, served, own_backend, path):
    d = served if path == "xenconsoled-pty" else own_backend
    data, marks = payload()
    run = PtyRun(xci_argv("--sim", world.dir, "attach", str(d)))
    writer = GuestWriter(world, d)
    try:
        run.wait_for(b"Escape character is ^]\r\n")
        start = len(run.data)
        writer.write(data)
        last_marker = b"|%02d@>" % (len(CORPUS) - 1)
        run.wait_for(last_marker, timeout=60)
        run.send(b"\x1d")  # ^] detaches
        assert run.finish() == 0
    finally:
        writer.close()
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
    stream = bytes(run.data)
    check_cli_stream(stream[start:], marks)
    # raw mode on the operator's terminal: lines must still start at column 0
    out = stream[start:]
    assert out.count(b"\n") == out.count(b"\r\n"), "bare \\n in raw mode: output staircases"


def test_cli_page_dumps_under_a_pty(tmp_path):
    """``--page`` on one dump per corpus entry, all in one process on one pty."""
    data, marks = payload()
    paths = []
    for i, h in enumerate(CORPUS):
        framed_data, _ = framed(i, h)
        ring = framed_data[-OUT_SIZE:]
        page = blank_page(out_cons=2**32 - 100, out_prod=(2**32 - 100 + len(ring)) % 2**32)
        RingIO(page).write_out(b"")  # indices only
        io = RingIO(blank_page(out_cons=2**32 - 100, out_prod=2**32 - 100))
        io.write_out(ring)
        p = tmp_path / f"page{i:02d}.bin"
        p.write_bytes(bytes(io.buf))
        paths.append(str(p))
    script = ("import sys\nfrom xcinspect import cli\n"
              "for p in sys.argv[1:]:\n    cli.main(['--page', p])\n    sys.stdout.flush()\n")
    run = PtyRun([sys.executable, "-c", script, *paths])
    assert run.finish(60) == 0
    stream = bytes(run.data)
    text = stream.replace(b"\r\n", b"\n")
    assert bad_cli_bytes(text) == [], bad_cli_bytes(text)[:10]
    for h, _marker in marks:
        for raw in h.raw:
            assert raw not in stream, (h.name, raw)
    # the whole unread span is shown, in visible form
    assert stream.count(b"unread out (all ") == len(CORPUS)
    for h, marker in marks:
        if len(h.data) < 400 and marker in stream:
            at = stream.find(marker)
            want = visible_prefix(h)
            assert stream[at + len(marker): at + len(marker) + len(want)] == want, h.name


@pytest.mark.parametrize("mode", [["--batch", "--once"], ["--once", "--json"], ["--batch", "-n", "2", "-d", "0.3"],
                                  ["metrics"]], ids=["batch", "json", "batch-stream", "metrics"])
def test_cli_tables_with_a_hostile_domain_name(world, served, mode):
    xs = XsClient(world.xenstore_path)  # and a console type that the verdict quotes
    xs.write(f"/local/domain/{world.domid('ephemeral')}/console/type", "ioemu\x1b]0;pwned-type\x07\n\x1b[6n")
    xs.close()
    run = PtyRun(xci_argv("--sim", world.dir, *mode), cols=200)
    assert run.finish(60) == 0, bytes(run.data[-500:])
    stream = bytes(run.data)
    text = stream.replace(b"\r\n", b"\n")
    assert bad_cli_bytes(text) == [], bad_cli_bytes(text)[:10]
    assert b"\x1b" not in stream and b"\x07" not in stream
    if "--json" in mode:
        doc = json.loads(stream)
        assert HOSTILE_NAME in {d["name"] for d in doc["domains"]}  # data, escaped by JSON
    else:
        assert b"hx^[]0;pwned-na" in stream  # the table cuts names at 16 columns


@pytest.mark.parametrize("args,code", [(["disconnect"], 1), (["disconnect", "--force"], 1), (["connect"], 1),
                                       (["attach", "--force"], 0)])
def test_cli_action_messages_quote_a_hostile_name_safely(world, served, args, code):
    """Refusals and results quote the domain's name: one safe line, never its sequences."""
    cmd, *rest = args
    run = PtyRun(xci_argv("--sim", world.dir, cmd, str(served), *rest))
    if cmd == "attach":
        run.wait_for(b"Escape character is ^]")
        for _ in range(40):  # input typed before the terminal goes raw is flushed: repeat ^]
            run.send(b"\x1d")
            run.pump(0.25)
            if run.proc.poll() is not None:
                break
    rc = run.finish(30)
    assert rc == code, (rc, bytes(run.data[-300:]))
    stream = bytes(run.data)
    text = stream.replace(b"\r\n", b"\n")
    assert bad_cli_bytes(text) == [], (rc, stream[-300:])
    assert b"\x1b" not in stream and b"\x07" not in stream


# -- 3. the TUI, inside tmux --------------------------------------------------------------------------
ESC_SEQ = re.compile(
    rb"\x1b(?:"
    rb"\[(?P<csi>[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e])"
    rb"|\](?P<osc>[^\x07\x1b]*)(?:\x07|\x1b\\)"
    rb"|(?P<str>[P_^X][^\x1b]*)\x1b\\"
    rb"|(?P<other>[\s\S]?))"
)
# Answers a terminal types back into the session, window and report queries.
QUERY_FINALS = (b"n", b"c", b"t", b"x", b"$p")
# What tmux's stream may carry after the marker a guest printed (Textual draws the
# text run of one line without sequences in between, so the guest's text follows).


class Tmux:
    def __init__(self, tmp, cols: int = 160, rows: int = 50) -> None:
        self.sock = str(tmp / "tmux.sock")
        self.stream = str(tmp / "tui-stream.bin")
        self.cols, self.rows = cols, rows

    def __call__(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null", *args], capture_output=True,
                           text=True, timeout=20)
        if check and r.returncode != 0:
            raise AssertionError(f"tmux {args}: {r.stderr}")
        return r.stdout

    def start(self, command: str, env: dict) -> None:
        # the pane waits a moment so pipe-pane is in place before the app writes anything
        subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null", "new-session", "-d", "-s", "x",
                        "-x", str(self.cols), "-y", str(self.rows), f"sleep 0.5; exec {command}"],
                       check=True, env=env, timeout=20)
        self("set-option", "-g", "set-clipboard", "on")  # a leaked OSC 52 would make a buffer
        self("pipe-pane", "-t", "x", "-O", f"cat >> {self.stream}")

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "x")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "x", *keys)

    def wait_screen(self, pred, what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{s}")
            time.sleep(0.1)

    def data(self) -> bytes:
        try:
            with open(self.stream, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def kill(self) -> None:
        self("kill-server", check=False)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_tui_in_tmux(world, served, tmp_path):
    d = served
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), TERM="xterm-256color")
    for var in ("NO_COLOR", "TEXTUAL_DRIVER", "TEXTUAL_FPS", "COLUMNS", "LINES"):
        env.pop(var, None)
    tm = Tmux(tmp_path)
    tm.start(" ".join(xci_argv("--sim", world.dir)), env)
    writer = None
    try:
        # the table shows the hostile name in visible form
        tm.wait_screen(lambda s: "hx^[]0;pwned" in s, "the domain table")
        tm.keys("/")
        time.sleep(0.5)  # focus moves to the filter line after this key is handled
        tm.keys("-l", "pwned-name")
        time.sleep(0.3)
        tm.keys("Enter")
        tm.wait_screen(lambda s: f"dom {d} hx^[]0;pwned" in s, "the hostile domain selected")
        tm.keys("a")
        tm.wait_screen(lambda s: f"Attached to dom {d}" in s or "Escape character" in s, "the attach screen")
        before = len(tm.data())
        writer = GuestWriter(world, d)
        entries = list(enumerate(CORPUS))
        # live output wraps (as xl console): an entry longer than the screen goes alone,
        # and what shows of it is its end
        huge = [e for e in entries if len(sanitize(e[1].data)) > tm.cols * (tm.rows // 2)]
        rest = [e for e in entries if e not in huge]
        for batch in [rest[k:k + 8] for k in range(0, len(rest), 8)] + [[e] for e in huge]:
            writer.write(b"".join(framed(i, h)[0] for i, h in batch))
            last = "|%02d@>" % batch[-1][0]
            screen = tm.wait_screen(lambda s, last=last: last in s, f"entries {[i for i, _ in batch]} on screen")
            for i, h in batch:  # each shown in its visible, escaped form
                if (i, h) in huge:
                    end = "|%02d@>" % i
                    line = next(ln for ln in screen.splitlines() if end in ln)
                    assert sanitize(h.data).endswith(line[: line.index(end)]), (h.name, line[:60])
                    continue
                marker = "<@%02d|" % i
                line = next((ln for ln in screen.splitlines() if marker in ln), None)
                assert line is not None, f"{h.name} not on screen:\n{screen}"
                want = sanitize(h.data)[:30]
                got = line[line.index(marker) + len(marker):]
                assert got.startswith(want[: len(got)]) and got, (h.name, got[:60], want)
        # nothing reached tmux as a sequence: no title, no clipboard buffer
        assert "pwned" not in tm("display-message", "-p", "-t", "x", "#{pane_title}")
        assert tm("list-buffers", check=False).strip() == ""
        tm.keys("C-]")  # detach: the detail panel shows the ring's last output
        tm.wait_screen(lambda s: f"dom {d} hx^[]0;pwned" in s and "last output" in s, "the main screen")
        time.sleep(1.0)
        tm.keys("q")
        deadline = time.monotonic() + 15
        while tm("has-session", "-t", "x", check=False) == "" and time.monotonic() < deadline:
            if subprocess.run(["tmux", "-S", tm.sock, "has-session", "-t", "x"],
                              capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
    finally:
        if writer is not None:
            writer.close()
        tm.kill()
    check_tui_stream(tm.data(), before)


def check_tui_stream(stream: bytes, guest_from: int) -> None:
    assert len(stream) > guest_from > 0
    text = stream.decode("utf-8", "surrogateescape")
    bad = [(i, hex(ord(c))) for i, c in enumerate(text)
           if c in "\x00\x05\x08\x0b\x0c\x0e\x0f\x18\x1a\x7f" or 0x80 <= ord(c) <= 0x9f or 0xdc80 <= ord(c) <= 0xdcff]
    assert bad == [], f"control characters in the terminal stream: {bad[:10]}"
    bels = stream.count(b"\x07")
    kinds: dict[str, int] = {}
    for m in ESC_SEQ.finditer(stream):
        if m.group("csi") is not None:
            csi = m.group("csi")
            if m.start() >= guest_from:
                assert not csi.endswith(QUERY_FINALS) and not csi.startswith(b">"), \
                    f"terminal query after the guest started writing: {m.group(0)!r}"
            kinds["csi"] = kinds.get("csi", 0) + 1
        elif m.group("osc") is not None:
            osc = m.group("osc")
            assert osc.startswith(b"22;"), f"an OSC Textual does not send: {m.group(0)[:80]!r}"
            bels -= m.group(0).endswith(b"\x07")
        else:
            raise AssertionError(f"an escape sequence Textual does not send: {m.group(0)[:80]!r} "
                                 f"at {m.start()}: {stream[max(0, m.start() - 80): m.start() + 40]!r}")
    assert bels == 0, "BEL outside an OSC terminator"
    for i, h in enumerate(CORPUS):
        marker = b"<@%02d|" % i
        # (that each entry was drawn is checked on tmux's screen: a partial update writes
        # only the cells the terminal does not already show, so a marker need not be in
        # the stream whole)
        want = sanitize(h.data)[:30].encode()
        for raw in h.raw:
            assert marker + raw not in stream, (h.name, raw)
        for m in re.finditer(re.escape(marker), stream):
            after = stream[m.end(): m.end() + len(want)].split(b"\x1b")[0]
            assert want.startswith(after), (h.name, after, want)


def test_the_stream_checks_catch_a_leak():
    """The checkers above, against streams where a guest sequence did get through."""
    textual = b"\x1b[?1049h\x1b[1;1H\x1b[38;2;1;2;3m\x1b]22;default\x07"
    clean = textual + b"".join(b"<@%02d|" % i + sanitize(h.data)[:30].encode() + b" |%02d@>" % i
                               for i, h in enumerate(CORPUS))
    check_tui_stream(clean, len(textual))
    for leak in (b"<@00|\x1b[6n", b"\x1b]52;c;QQ==\x07", b"\x1bP$qm\x1b\\", b"\xc2\x9b6n", b"\x07", b"\x00",
                 b"\x1b]0;pwned\x07", b"\x1bc"):
        with pytest.raises(AssertionError):
            check_tui_stream(clean + leak, len(textual))
    _, marks = payload()
    with pytest.raises(AssertionError):
        check_cli_stream(b"\x1b[6n", marks)
    assert bad_cli_bytes("ok\n\tfine ✓".encode()) == []
    assert bad_cli_bytes(b"\x1b") and bad_cli_bytes("\u009b".encode()) and bad_cli_bytes(b"\xff")
