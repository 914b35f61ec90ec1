"""Make hostile guest output safe for the operator's terminal.

Guest console bytes are untrusted. Nothing a guest writes may reach a real terminal as
a control character or an escape sequence (OSC 52 clipboard writes, title changes,
device-status queries that make the terminal type an answer, bracketed-paste markers,
8-bit C1 controls, ...). The output of ``Sanitizer`` contains only printable characters,
``\\n`` and ``\\t``:

* SGR colour sequences (``ESC [ ... m``) are dropped: boot logs are full of them and they
  carry no information worth showing.
* Every other escape sequence (CSI, OSC, DCS, APC, PM, SOS, two-byte ESC) is shown as
  visible text: ``^[`` followed by its bytes in caret notation, cut at 48 characters.
  A string sequence (OSC, DCS, ...) ends at its terminator or at the end of the line, so
  an unterminated one cannot hide the guest's later lines.
* C0 controls other than newline and tab are shown as ``^X``; ``\\r`` is dropped (CRLF and
  a lone CR both read as plain text); DEL as ``^?``.
* C1 controls (U+0080-U+009F) and bytes that are not valid UTF-8 are shown as ``\\xNN``.
* Bidirectional overrides and zero-width characters (text-spoofing tools) are shown as
  ``<U+202E>``.

``Sanitizer`` is incremental: a sequence or a UTF-8 character split across two reads is
handled as if it came in one piece.
"""

from __future__ import annotations

import codecs

ESC = "\x1b"
MAX_SEQ = 48  # longest escape sequence shown; the rest is cut (and counted)
MAX_STRING = 4096  # characters of an OSC/DCS/... string kept while waiting for its end

_SPOOF = {chr(c) for c in (*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF, 0x061C)}

_GROUND, _ESC, _CSI, _STRING, _STRING_ESC = range(5)


def _caret(ch: str) -> str:
    o = ord(ch)
    if o < 0x20:
        return "^" + chr(o + 0x40)
    if o == 0x7F:
        return "^?"
    if 0x80 <= o <= 0x9F:
        return f"\\x{o:02x}"
    if 0xDC80 <= o <= 0xDCFF:  # surrogateescape'd invalid byte
        return f"\\x{o - 0xDC00:02x}"
    if ch in _SPOOF:
        return f"<U+{o:04X}>"
    return ch


def _visible(seq: str) -> str:
    """A whole escape sequence as printable text, cut at MAX_SEQ characters."""
    out = "".join(_caret(c) for c in seq)
    if len(out) > MAX_SEQ:
        out = out[: MAX_SEQ - 1] + "…"
    return out


class Sanitizer:
    """Incremental sanitizer: ``feed(bytes) -> str``; ``flush()`` at end of stream."""

    __slots__ = ("_dec", "_state", "_seq", "dropped", "escaped")

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._state = _GROUND
        self._seq: list[str] = []
        self.dropped = 0  # SGR sequences dropped
        self.escaped = 0  # sequences/controls shown escaped

    def feed(self, data: bytes) -> str:
        return self._run(self._dec.decode(data))

    def flush(self) -> str:
        text = self._run(self._dec.decode(b"", final=True))
        if self._state != _GROUND:
            text += self._emit_seq()
            self._state = _GROUND
        return text

    def _emit_seq(self) -> str:
        seq = "".join(self._seq)
        self._seq.clear()  # in place: ``_run`` holds this list as a local alias
        self.escaped += 1
        return _visible(seq)

    def _run(self, text: str) -> str:
        out: list[str] = []
        append = out.append
        state = self._state
        seq = self._seq
        for ch in text:
            if state == _GROUND:
                o = ord(ch)
                if 0x20 <= o < 0x7F or (o > 0x9F and not 0xD800 <= o <= 0xDFFF and ch not in _SPOOF):
                    append(ch)
                elif ch == "\n" or ch == "\t":
                    append(ch)
                elif ch == "\r":
                    pass
                elif ch == ESC:
                    state = _ESC
                    seq.append(ch)
                else:  # C0/C1 control, invalid byte, spoofing character
                    self.escaped += 1
                    append(_caret(ch))
            elif state == _ESC:
                seq.append(ch)
                if ch == "[":
                    state = _CSI
                elif ch in "]PX^_":  # OSC, DCS, SOS, PM, APC: strings up to ST or BEL
                    state = _STRING
                elif ch == ESC:
                    seq.pop()
                    append(self._emit_seq())
                    seq.append(ch)
                else:  # two-character sequence (ESC c, ESC 7, ESC ( B, ...)
                    append(self._emit_seq())
                    state = _GROUND
            elif state == _CSI:
                seq.append(ch)
                o = ord(ch)
                if 0x40 <= o <= 0x7E:
                    if ch == "m" and all(c in "0123456789;:" for c in seq[2:-1]):
                        self.dropped += 1
                        seq.clear()
                    else:
                        append(self._emit_seq())
                    state = _GROUND
                elif not (0x20 <= o <= 0x3F) or len(seq) > 64:
                    # malformed: show what we have, resume in ground state
                    append(self._emit_seq())
                    state = _GROUND
            elif state == _STRING:
                if ch == "\x07" or ch == "\x9c":
                    seq.append(ch)
                    append(self._emit_seq())
                    state = _GROUND
                elif ch == ESC:
                    seq.append(ch)
                    state = _STRING_ESC
                elif ch == "\n":
                    # No string spans lines: an unterminated one must not hide every line
                    # the guest writes after it. Show it, keep the newline.
                    append(self._emit_seq())
                    append(ch)
                    state = _GROUND
                elif len(seq) < MAX_STRING:
                    seq.append(ch)
                # else: an overlong string is swallowed up to its terminator or the end
                # of the line; what is shown is cut at MAX_SEQ anyway.
            else:  # _STRING_ESC: ESC inside a string; ESC \ is ST
                if ch == "\n":
                    append(self._emit_seq())
                    append(ch)
                    state = _GROUND
                    continue
                seq.append(ch)
                if ch == "\\":
                    append(self._emit_seq())
                    state = _GROUND
                else:
                    state = _STRING
        self._state = state
        return "".join(out)


def sanitize(data: bytes) -> str:
    """Sanitize a complete chunk of guest output."""
    s = Sanitizer()
    return s.feed(data) + s.flush()


def one_line(text: str) -> str:
    """A guest- or network-controlled string (a xenstore name, a Prometheus label) as one
    safe line for a table cell, a tab-separated batch line or a label value."""
    return sanitize(text.encode("utf-8", "surrogateescape")).replace("\n", "^J").replace("\t", " ")


def is_safe(text: str) -> bool:
    """True if ``text`` holds only printable characters, newlines and tabs."""
    for ch in text:
        o = ord(ch)
        if ch in "\n\t":
            continue
        if o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF or ch in _SPOOF:
            return False
    return True
