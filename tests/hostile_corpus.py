"""Hostile guest console output: what a guest can write to make a terminal act.

Each entry is ``Hostile(name, data, raw)``:

* ``data``: the bytes the guest writes.
* ``raw``: byte strings that must never reach the operator's terminal, because a
  terminal would act on them (run a sequence, answer a query, switch a mode). For a
  stream that legitimately carries its own escape sequences (the TUI), tests prefix
  each one with a marker the guest printed right before it (see ``framed``).

Families: CSI (queries a terminal answers, modes, screen wipes), OSC (52 clipboard, 8
links, titles, palette and colour queries, notifications, file transfer), DCS, APC, PM,
SOS, two-byte ESC, 8-bit C1 controls (raw bytes and UTF-8 encoded), C0 controls,
invalid UTF-8 (including overlong encodings of ESC and C1), text-spoofing characters,
very long lines, NULs, floods.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
import tty
from dataclasses import dataclass

ESC = b"\x1b"
ST = b"\x1b\\"
BEL = b"\x07"


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    raw: tuple[bytes, ...]  # what must never arrive at the terminal as bytes


def _h(name: str, data: bytes, *raw: bytes) -> Hostile:
    return Hostile(name, data, tuple(raw) if raw else (data,))


CORPUS: tuple[Hostile, ...] = (
    # -- CSI: queries a terminal answers by typing into the session --------------------
    _h("csi-dsr-cursor-position", b"\x1b[6n"),
    _h("csi-dsr-status", b"\x1b[5n"),
    _h("csi-da1", b"\x1b[c"),
    _h("csi-da2", b"\x1b[>c"),
    _h("csi-da3", b"\x1b[=c"),
    _h("csi-xtversion", b"\x1b[>0q"),
    _h("csi-report-title", b"\x1b[21t"),
    _h("csi-report-size", b"\x1b[18t"),
    _h("csi-decrqm-paste-mode", b"\x1b[?2004$p"),
    # -- CSI: modes and screen control --------------------------------------------------
    _h("csi-window-resize", b"\x1b[8;1;1t"),
    _h("csi-window-iconify", b"\x1b[2t"),
    _h("csi-clear-screen-home", b"\x1b[2J\x1b[H", b"\x1b[2J"),
    _h("csi-clear-scrollback", b"\x1b[3J"),
    _h("csi-alt-screen", b"\x1b[?1049h"),
    _h("csi-mouse-tracking", b"\x1b[?1000h\x1b[?1006h", b"\x1b[?1000h", b"\x1b[?1006h"),
    _h("csi-bracketed-paste-start", b"\x1b[200~"),
    _h("csi-bracketed-paste-end", b"\x1b[201~rm -rf /\r", b"\x1b[201~"),
    _h("csi-bracketed-paste-off", b"\x1b[?2004l"),
    _h("csi-cursor-hide", b"\x1b[?25l"),
    _h("csi-scroll-region", b"\x1b[1;2r"),
    _h("csi-insert-lines", b"\x1b[99L"),
    _h("csi-erase-previous-line", b"\x1b[1A\x1b[2K", b"\x1b[1A", b"\x1b[2K"),
    _h("csi-kitty-keyboard", b"\x1b[>1u"),
    _h("csi-modify-other-keys", b"\x1b[>4;2m"),
    _h("csi-cursor-style", b"\x1b[2 q"),
    _h("csi-overlong-params", b"\x1b[" + b"1;" * 200 + b"m", b"\x1b[1;1;1;1;"),
    _h("csi-conceal-text", b"\x1b[8mHIDDEN\x1b[28m", b"\x1b[8m"),
    # -- OSC -----------------------------------------------------------------------------
    _h("osc52-clipboard-write-bel", b"\x1b]52;c;ZWNobyBwd25lZA==\x07", b"\x1b]52;"),
    _h("osc52-clipboard-write-st", b"\x1b]52;p;ZWNobyBwd25lZA==\x1b\\", b"\x1b]52;"),
    _h("osc52-clipboard-query", b"\x1b]52;c;?\x07", b"\x1b]52;"),
    _h("osc8-hyperlink", b"\x1b]8;;http://evil.example/\x1b\\click me\x1b]8;;\x1b\\", b"\x1b]8;"),
    _h("osc0-title", b"\x1b]0;pwned\x07", b"\x1b]0;"),
    _h("osc2-title-st", b"\x1b]2;pwned\x1b\\", b"\x1b]2;"),
    _h("osc1-icon-name", b"\x1b]1;pwned\x07", b"\x1b]1;"),
    _h("osc4-palette-set", b"\x1b]4;1;rgb:ff/00/00\x07", b"\x1b]4;"),
    _h("osc4-palette-query", b"\x1b]4;1;?\x07", b"\x1b]4;"),
    _h("osc10-foreground-query", b"\x1b]10;?\x07", b"\x1b]10;"),
    _h("osc11-background-query", b"\x1b]11;?\x07", b"\x1b]11;"),
    _h("osc7-working-directory", b"\x1b]7;file://evil.example/etc\x07", b"\x1b]7;"),
    _h("osc9-notification", b"\x1b]9;you have been pwned\x07", b"\x1b]9;"),
    _h("osc777-notification", b"\x1b]777;notify;title;body\x07", b"\x1b]777;"),
    _h("osc1337-iterm-file", b"\x1b]1337;File=name=eA==;inline=1:AAAA\x07", b"\x1b]1337;"),
    _h("osc50-font-query", b"\x1b]50;?\x07", b"\x1b]50;"),
    _h("osc133-shell-mark", b"\x1b]133;A\x07", b"\x1b]133;"),
    _h("osc-unterminated-long", b"\x1b]52;c;" + b"QUFB" * 2000, b"\x1b]52;"),
    # -- DCS, APC, PM, SOS ------------------------------------------------------------------
    _h("dcs-decrqss", b"\x1bP$qm\x1b\\", b"\x1bP"),
    _h("dcs-xtgettcap", b"\x1bP+q544e\x1b\\", b"\x1bP"),
    _h("dcs-sixel", b"\x1bPq#0;2;0;0;0#1!10~\x1b\\", b"\x1bP"),
    _h("dcs-tmux-passthrough", b"\x1bPtmux;\x1b\x1b]52;c;QQ==\x07\x1b\\", b"\x1bP", b"\x1b]52;"),
    _h("apc-kitty-graphics", b"\x1b_Gf=100;AAAA\x1b\\", b"\x1b_"),
    _h("pm-string", b"\x1b^secret\x1b\\", b"\x1b^"),
    _h("sos-string", b"\x1bXstring\x1b\\", b"\x1bX"),
    # -- two-byte ESC ---------------------------------------------------------------------------
    _h("esc-full-reset", b"\x1bc"),
    _h("esc-save-restore-cursor", b"\x1b7\x1b8", b"\x1b7", b"\x1b8"),
    _h("esc-dec-graphics-charset", b"\x1b(0", b"\x1b("),
    _h("esc-keypad-application", b"\x1b="),
    _h("esc-reverse-index", b"\x1bM"),
    _h("esc-decaln-fill-screen", b"\x1b#8"),
    _h("esc-s8c1t-8bit-controls", b"\x1b G"),
    # -- 8-bit C1 controls ----------------------------------------------------------------------
    _h("c1-csi-raw-byte", b"\x9b6n", b"\x9b"),
    _h("c1-osc-raw-bytes", b"\x9d0;pwned\x9c", b"\x9d", b"\x9c"),
    _h("c1-dcs-raw-byte", b"\x90$qm\x9c", b"\x90"),
    _h("c1-csi-utf8", b"\xc2\x9b6n", b"\xc2\x9b"),
    _h("c1-osc52-utf8", b"\xc2\x9d52;c;QQ==\xc2\x9c", b"\xc2\x9d", b"\xc2\x9c"),
    _h("c1-apc-utf8", b"\xc2\x9fGf=1\xc2\x9c", b"\xc2\x9f"),
    _h("c1-nel-ind-utf8", b"\xc2\x85\xc2\x84", b"\xc2\x85", b"\xc2\x84"),
    # -- C0 controls ----------------------------------------------------------------------------
    _h("c0-bell", b"\x07"),
    _h("c0-backspace-overwrite", b"rm -rf /\x08\x08\x08\x08\x08\x08\x08\x08ls -l   ", b"\x08"),
    _h("c0-enq-answerback", b"\x05"),
    _h("c0-nul", b"\x00\x00\x00"),
    _h("c0-vt-ff", b"\x0b\x0c", b"\x0b", b"\x0c"),
    _h("c0-shift-out-in", b"\x0e\x0f", b"\x0e", b"\x0f"),
    _h("c0-can-sub", b"\x18\x1a", b"\x18", b"\x1a"),
    _h("c0-del", b"\x7f"),
    _h("c0-cr-overwrite", b"harmless text\rEVIL", b"\rEVIL"),
    # -- invalid UTF-8 ------------------------------------------------------------------------------
    _h("utf8-invalid-bytes", b"\xff\xfe\xc3\x28", b"\xff", b"\xfe"),
    _h("utf8-overlong-esc", b"\xc0\x9b[6n", b"\xc0\x9b"),
    _h("utf8-overlong-c1", b"\xe0\x82\x9b", b"\xe0\x82\x9b"),
    _h("utf8-surrogate", b"\xed\xa0\x80", b"\xed\xa0\x80"),
    _h("utf8-truncated", b"ok \xe2\x82", b"\xe2\x82"),
    # -- text spoofing ------------------------------------------------------------------------------
    _h("bidi-override", "user \u202eevil\u202c".encode(), "\u202e".encode()),
    _h("bidi-isolate", "a\u2067b\u2069".encode(), "\u2067".encode()),
    _h("zero-width", "ro\u200bot".encode(), "\u200b".encode()),
    # -- size ---------------------------------------------------------------------------------------
    _h("very-long-line", b"L" * 100_000 + b"\x1b]52;c;QQ==\x07", b"\x1b]52;"),
    _h("flood-of-queries", b"\x1b[6n" * 500, b"\x1b[6n"),
    _h("esc-at-end-of-chunk", b"\x1b", b"\x1b"),
)

assert len(CORPUS) >= 50 and len({h.name for h in CORPUS}) == len(CORPUS)


def by_name(name: str) -> Hostile:
    return next(h for h in CORPUS if h.name == name)


def framed(i: int, h: Hostile) -> tuple[bytes, bytes]:
    """(what the guest writes, its marker): ``<@NN|`` + data + ``|NN@>`` on its own line.

    The marker lets a test find this entry in a stream that carries escape sequences of
    its own (the TUI's): ``marker + raw`` in the terminal stream means the guest's bytes
    went through as they were."""
    marker = b"<@%02d|" % i
    return b"\r\n" + marker + h.data + b"|%02d@>\r\n" % i, marker


# Bytes that must never appear in a plain-text front end's output (CLI): every C0 control
# but \t \n (\r only as part of \r\n is still refused: the CLI writes \n), DEL, and C1
# controls as raw bytes or as UTF-8.
def bad_cli_bytes(stream: bytes) -> list[tuple[int, str]]:
    """Offsets of bytes that could make a terminal act; [] when the stream is clean."""
    bad = []
    text = stream.decode("utf-8", "surrogateescape")
    for i, ch in enumerate(text):
        o = ord(ch)
        if ch in "\n\t":
            continue
        if o < 0x20 or o == 0x7F or 0x80 <= o <= 0x9F or 0xDC80 <= o <= 0xDCFF:
            bad.append((i, repr(ch)))
    return bad


# -- terminal helper (shared by the output, read-only and fault tests) ---------------------------
class PtyRun:
    """A process on a fresh pty; ``data`` is every byte it wrote to the terminal.

    The slave is put in raw mode first, so the bytes are exactly what the program wrote
    (no \\n -> \\r\\n translation by the line discipline)."""

    def __init__(self, argv: list[str], cols: int = 140, rows: int = 45, env: dict | None = None) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        tty.setraw(slave)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     start_new_session=True, env=env)
        os.close(slave)
        self.master = master
        self.data = bytearray()

    def pump(self, timeout: float = 0.05) -> bool:
        """Read what is there; False once the pty is closed."""
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:
            return False
        if not chunk:
            return False
        self.data += chunk
        return True

    def wait_for(self, needle: bytes, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.data:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen; last output: {bytes(self.data[-400:])!r}")
            if not self.pump():
                if needle in self.data:
                    return
                raise AssertionError(f"process ended before {needle!r}: {bytes(self.data[-400:])!r}")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            os.close(self.master)
            raise AssertionError(f"did not exit; last output: {bytes(self.data[-400:])!r}")
        while True:  # what is left in the pty after the exit
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                break
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.data += chunk
        os.close(self.master)
        return self.proc.returncode
