"""The I/O thread of an attached console, and typed keys as the bytes a terminal sends.

No Textual here. The thread owns the ``AttachSession``: it waits on the session's fd
with a timeout, hands guest bytes to a callback (the app posts them as a message) and
writes queued input, so the UI thread never blocks on a console.
"""

from __future__ import annotations

import queue
import select
import threading
from collections.abc import Callable

# Textual key names -> what a VT100/xterm sends (what the guest's getty expects).
KEY_BYTES = {
    "enter": b"\r",
    "tab": b"\t",
    "backspace": b"\x7f",
    "ctrl+h": b"\x08",
    "escape": b"\x1b",
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "right": b"\x1b[C",
    "left": b"\x1b[D",
    "home": b"\x1b[H",
    "end": b"\x1b[F",
    "insert": b"\x1b[2~",
    "delete": b"\x1b[3~",
    "pageup": b"\x1b[5~",
    "pagedown": b"\x1b[6~",
    "shift+tab": b"\x1b[Z",
    "space": b" ",
    "ctrl+space": b"\x00",
    "ctrl+@": b"\x00",
    "ctrl+backslash": b"\x1c",
    "ctrl+right_square_bracket": b"\x1d",
    "ctrl+circumflex_accent": b"\x1e",
    "ctrl+underscore": b"\x1f",
    "ctrl+left_square_bracket": b"\x1b",
}


def key_bytes(key: str, character: str | None) -> bytes | None:
    """The bytes for a key press, or None for keys a terminal would not send (F-keys)."""
    if key in KEY_BYTES:
        return KEY_BYTES[key]
    if key.startswith("ctrl+") and len(key) == 6 and key[5].isalpha():
        return bytes([ord(key[5].lower()) & 0x1F])
    if character is not None and len(character) == 1:
        o = ord(character)
        if character.isprintable() or o < 0x20 or o == 0x7F:
            return character.encode("utf-8", "replace")
    return None


class AttachIO(threading.Thread):
    """Reads a session into ``on_output``; writes what ``send`` queued; ends on EOF."""

    def __init__(self, session, on_output: Callable[[bytes], None], on_closed: Callable[[str], None],
                 *, poll: float = 0.1) -> None:
        super().__init__(name="xcinspect-attach", daemon=True)
        self.session = session
        self.on_output = on_output
        self.on_closed = on_closed
        self.poll = poll
        self.outgoing: queue.Queue[bytes] = queue.Queue()
        self._halt = threading.Event()
        self.closed = False

    def send(self, data: bytes) -> None:
        if data and not self.closed:
            self.outgoing.put(data)

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        reason = "detached"
        try:
            fd = self.session.fileno()
            while not self._halt.is_set():
                while True:
                    try:
                        data = self.outgoing.get_nowait()
                    except queue.Empty:
                        break
                    self.session.write(data)
                try:
                    r, _, _ = select.select([fd], [], [], self.poll)
                except (OSError, ValueError):
                    reason = "console closed"
                    break
                if r:
                    data = self.session.read()
                    if data:
                        self.on_output(data)
        except EOFError as exc:
            reason = str(exc) or "console closed"
        except OSError as exc:
            reason = f"console error: {exc.strerror or exc}"
        finally:
            self.closed = True
            try:
                self.session.close()
            except Exception:
                pass
            if not self._halt.is_set():
                self.on_closed(reason)
