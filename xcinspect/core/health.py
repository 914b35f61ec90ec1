"""Health verdicts: what a console's recent history plus the backend facts mean.

States, most urgent first:

* ``error``        -- the domain's xenstore keys are malformed or its page cannot be read.
* ``corrupt``      -- an index pair is corrupt (fill above the ring size).
* ``stalled``      -- the out ring is full and nothing drains it (no backend bound, or
  out_cons frozen for ``stall_after`` seconds), or unread output sits with out_cons
  frozen for ``stall_after`` seconds. A legacy guest spins here: the stuck boot.
* ``disconnected`` -- the flag (rfc-v2 / xen-4.21 layouts) says disconnected, or byte
  3088 is 1 under any layout (what Linux >= 7.1 reads as disconnected): a guest that
  honours it throws its output away. Once the guest is seen writing with the byte at 1,
  it ignores the flag (older than Linux 7.1) and the console is judged as if unset.
* ``no-backend``   -- nobody has bound the console's event channel.
* ``backlog``      -- serviced, but output stays queued from one sample to the next
  (a chatty guest held by xenconsoled's 30-events-per-200-ms rate limit).
* ``serviced``     -- a backend drains the ring and it moved recently.
* ``idle``         -- a backend is bound, the ring is empty and quiet.

Pure Python, no I/O: the monitor feeds it samples and facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xcinspect.core import flags
from xcinspect.core.model import BackendFacts
from xcinspect.core.ring import IN_SIZE, MASK32, OUT_SIZE, PageSnapshot

ERROR = "error"
CORRUPT = "corrupt"
STALLED = "stalled"
DISCONNECTED = "disconnected"
NO_BACKEND = "no-backend"
BACKLOG = "backlog"
SERVICED = "serviced"
IDLE = "idle"

STATES = (ERROR, CORRUPT, STALLED, DISCONNECTED, NO_BACKEND, BACKLOG, SERVICED, IDLE)
SEVERITY = {s: i for i, s in enumerate(STATES)}  # lower is more urgent
PROBLEM_STATES = frozenset({ERROR, CORRUPT, STALLED, DISCONNECTED, NO_BACKEND})

STALL_AFTER = 5.0  # seconds out_cons may stay frozen over unread output
IDLE_AFTER = 10.0  # seconds without movement before a serviced console reads as idle
# A write under way when the byte went to 1 may still finish (hvc_xen checks the byte only
# when a write starts): out_prod moving within this grace, or out of a full ring, is not
# taken as the guest ignoring the flag; two later moves are.
MUTE_GRACE = 1.0
IGNORE_MOVES = 2

# What byte 3088 == 1 does to this console (Verdict.flag_effect).
DROPS_OUTPUT = "drops-output"  # nothing written since: a Linux >= 7.1 guest throws it away
IGNORED = "ignored"  # the guest keeps writing: older than Linux 7.1
QEMU_CONSOLE = "qemu-console"  # xenconsoled never connects QEMU's consoles: a permanent 1


Indices = tuple[int, int, int, int]  # in_cons, in_prod, out_cons, out_prod

# What the verdict's ``action`` advises when no key does it.
ADVICE = {"inspect": "inspect the page; do not act"}


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str
    reason: str
    action: str | None = None  # the suggested key/command, e.g. "connect"
    flag_effect: str | None = None  # DROPS_OUTPUT / IGNORED / QEMU_CONSOLE when byte 3088 is 1

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "flag_effect": self.flag_effect}

    def sentence(self) -> str:
        """Reason plus advice that needs no key ("inspect the page"). The keys that do an
        action belong to the front ends: the TUI adds them (``tui.bindings.verdict_sentence``)."""
        advice = ADVICE.get(self.action or "")
        return f"{self.reason}: {advice}" if advice else self.reason


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h"


class Track:
    """Per-console history: what moved when. Mutated in place by ``update`` (cheap)."""

    __slots__ = (
        "first_seen", "last", "t_last", "t_out_cons", "t_out_prod", "t_in_cons", "t_full",
        "t_unread", "prev_fill", "fill", "out_rate", "samples", "history", "hist_len",
        "t_mute", "mute_prod", "mute_moves", "appeared_late",
    )

    def __init__(self, hist_len: int = 120) -> None:
        self.first_seen: float | None = None
        self.last: Indices | None = None  # (in_cons, in_prod, out_cons, out_prod)
        self.t_last = 0.0
        self.t_out_cons = 0.0  # when out_cons last moved (first sample counts)
        self.t_out_prod = 0.0
        self.t_in_cons = 0.0
        self.t_full: float | None = None  # since when the out ring is full
        self.t_unread: float | None = None  # since when the out ring is non-empty
        self.prev_fill = 0
        self.fill = 0
        self.out_rate = 0.0  # bytes/s consumed from out, smoothed
        self.samples = 0
        self.history: list[int] = []  # out fill per sample, for the sparkline
        self.hist_len = hist_len
        self.t_mute: float | None = None  # since when byte 3088 reads 1
        self.mute_prod = 0  # out_prod when last looked at with the byte at 1
        self.mute_moves = 0  # out_prod moves since, that a Linux >= 7.1 guest would not make
        self.appeared_late = False  # the domain appeared after xcinspect started watching

    def update(self, idx: Indices, now: float) -> bool:
        """Record one sample of (in_cons, in_prod, out_cons, out_prod); True if it moved."""
        self.samples += 1
        last = self.last
        fill = (idx[3] - idx[2]) & MASK32
        if last is None:
            self.first_seen = self.t_out_cons = self.t_out_prod = self.t_in_cons = now
            moved = True
        else:
            moved = idx != last
            if moved:
                if idx[2] != last[2]:
                    dt = now - self.t_last
                    consumed = (idx[2] - last[2]) & MASK32
                    if dt > 0 and consumed <= 1 << 24:
                        rate = consumed / dt
                        self.out_rate = rate if self.out_rate == 0 else 0.5 * self.out_rate + 0.5 * rate
                    self.t_out_cons = now
                if idx[3] != last[3]:
                    self.t_out_prod = now
                if idx[0] != last[0]:
                    self.t_in_cons = now
        self.prev_fill = self.fill
        self.fill = fill
        if fill == OUT_SIZE:
            if self.t_full is None:
                self.t_full = now
        else:
            self.t_full = None
        if fill:
            if self.t_unread is None:
                self.t_unread = now
        else:
            self.t_unread = None
        self.last = idx
        self.t_last = now
        h = self.history
        h.append(fill if fill <= OUT_SIZE else OUT_SIZE)
        if len(h) > self.hist_len:
            del h[0]
        return moved

    def note_byte(self, byte: int | None, now: float) -> None:
        """Record byte 3088 after ``update`` (the guest's view of the flag)."""
        if byte != 1 or self.last is None:
            self.t_mute = None
            self.mute_moves = 0
            return
        prod = self.last[3]
        if self.t_mute is None:
            self.t_mute = now
            self.mute_prod = prod
            self.mute_moves = 0
            return
        if prod != self.mute_prod:
            if now - self.t_mute >= MUTE_GRACE and self.prev_fill < OUT_SIZE:
                self.mute_moves += 1
            self.mute_prod = prod

    @property
    def ignores_flag(self) -> bool:
        """The guest kept writing with byte 3088 at 1: it does not honour the flag."""
        return self.t_mute is not None and self.mute_moves >= IGNORE_MOVES

    def muted_for(self, now: float) -> float:
        """How long the byte has been 1 with nothing written (0 when it is not 1)."""
        if self.t_mute is None:
            return 0.0
        return now - max(self.t_mute, self.t_out_prod)

    def rate_at(self, now: float, window: float = 3.0) -> float:
        """Drain rate of the out ring (B/s); 0 once out_cons has not moved for ``window`` s."""
        return self.out_rate if now - self.t_out_cons < window else 0.0

    def stuck_for(self, now: float) -> float:
        """How long unread output has sat without out_cons moving (0 if the ring is empty)."""
        if self.t_unread is None:
            return 0.0
        return now - max(self.t_out_cons, self.t_unread)

    def moved_at(self) -> float:
        """When an index last moved (out_cons, out_prod or in_cons)."""
        return max(self.t_out_cons, self.t_out_prod, self.t_in_cons)

    def quiet_for(self, now: float) -> float:
        return now - self.moved_at()


def backend_phrase(facts: BackendFacts | None) -> str:
    if facts is None:
        return "backend unknown"
    by = facts.serviced_by
    if by == "xcinspect":
        return f"serviced by xcinspect (pid {facts.xcinspect_backend_pid})"
    if by == "xenconsoled":
        return "serviced by xenconsoled"
    if by == "unknown":
        return "port bound, but xenconsoled is not running"
    if facts.port_bound is None:
        return "backend state unknown" + ("" if facts.consoled_alive else "; xenconsoled not running")
    if facts.consoled_alive:
        return "no backend bound (xenconsoled is running but does not service it)"
    return "no backend bound; xenconsoled not running"


def is_bound(facts: BackendFacts | None) -> bool | None:
    if facts is None:
        return None
    if facts.xcinspect_backend_pid:
        return True
    if facts.port_bound is None:
        return facts.consoled_alive  # best guess when the port cannot be queried
    return facts.port_bound


def flag_phrase(layout: str, byte: int | None, track: Track, now: float) -> str:
    """What a 1 in byte 3088 means for this console, for a reason sentence."""
    quiet = human_duration(track.muted_for(now))
    if layout == flags.NONE:
        return ("byte 3088 is 1: this host's Xen has no connection flag, but a Linux >= 7.1 guest reads it "
                f"as disconnected, so its console output is being thrown away (nothing written for {quiet}; "
                "an older kernel ignores the byte)")
    return ("flag says disconnected: the console output of a Linux >= 7.1 guest is being thrown away "
            f"(nothing written for {quiet}; an older kernel ignores the flag)")


def classify(
    idx: Indices,
    flag_state: str,
    track: Track,
    facts: BackendFacts | None,
    now: float,
    *,
    console_type: str | None = None,
    stall_after: float = STALL_AFTER,
    idle_after: float = IDLE_AFTER,
    flag: flags.FlagReading | None = None,
    has_tty: bool | None = None,
) -> Verdict:
    """The verdict for the latest sample ``idx`` (in_cons, in_prod, out_cons, out_prod).

    ``flag``, when given, is the whole reading (layout and byte 3088); ``has_tty`` is
    whether xenstore has the console's ``console/tty`` (None: not known)."""
    in_cons, in_prod, out_cons, out_prod = idx
    out_fill = (out_prod - out_cons) & MASK32
    in_fill = (in_prod - in_cons) & MASK32
    qemu = console_type not in (None, "", "xenconsoled")
    act_connect = None if qemu else "connect"
    layout = flag.layout if flag is not None else None
    mutes = flag is not None and flag.mutes_new_guests

    if out_fill > OUT_SIZE or in_fill > IN_SIZE:
        parts = []
        if out_fill > OUT_SIZE:
            parts.append(f"out indices corrupt (cons {out_cons}, prod {out_prod}: fill {out_fill} > {OUT_SIZE})")
        if in_fill > IN_SIZE:
            parts.append(f"in indices corrupt (cons {in_cons}, prod {in_prod}: fill {in_fill} > {IN_SIZE})")
        return Verdict(CORRUPT, "; ".join(parts), "inspect")

    bound = is_bound(facts)
    where = backend_phrase(facts)
    if qemu:
        where += f" (console type {console_type}: QEMU's, xcinspect will not act)"
    if bound is False and has_tty is False and not qemu:
        where += "; no console/tty in xenstore: xenconsoled never set this console up"
        if out_fill == 0 and track.first_seen is not None and now - track.first_seen < 30:
            # a domain still being built (nothing written yet): what xl does about it
            where += " (xl create waits about 10 s for it, then gives up and destroys the domain)"
    frozen = track.stuck_for(now)
    effect = None
    if mutes:
        effect = QEMU_CONSOLE if qemu else IGNORED if track.ignores_flag else DROPS_OUTPUT
    latched = ""
    if layout == flags.XEN_421 and flag_state == flags.CONNECTED:
        latched = ("; the flag still says connected: that only means xenconsoled connected once "
                   "since the domain was built, not that anything drains the ring now")
    elif mutes and effect == DROPS_OUTPUT:
        latched = ("; byte 3088 is 1: once the ring drains, a Linux >= 7.1 guest drops what it writes "
                   "until the flag is set back to connected (connect does)")

    if out_fill == OUT_SIZE and (bound is False or frozen >= stall_after):
        since = track.t_full if track.t_full is not None else now
        if since == track.first_seen:  # already full at the first sample
            age = now - since
            if track.appeared_late:
                how_long = (f"since xcinspect first saw this domain ({human_duration(age)} ago, "
                            "already full then)")
            elif age < 1:
                how_long = "(already full when xcinspect started watching)"
            else:
                how_long = f"since before xcinspect started watching ({human_duration(age)} ago)"
        else:
            how_long = f"for {human_duration(now - since)}"
        return Verdict(STALLED, f"out ring full {how_long}; {where}{latched}", act_connect, effect)
    if out_fill and frozen >= stall_after:
        return Verdict(
            STALLED,
            f"{out_fill} unread bytes, out_cons frozen for {human_duration(frozen)}; {where}{latched}",
            act_connect, effect,
        )
    if effect == QEMU_CONSOLE:
        where += "; byte 3088 stays 1 on QEMU's consoles (xenconsoled never connects them): not an alarm"
    elif effect == IGNORED:
        what = "byte 3088 is 1" if layout == flags.NONE else "the flag says disconnected"
        where += f"; {what}, but this guest ignores the flag (older than Linux 7.1): its output still arrives"
    elif effect == DROPS_OUTPUT:
        phrase = flag_phrase(layout or flags.NONE, flag.byte if flag else None, track, now)
        return Verdict(DISCONNECTED, f"{phrase}; {where}", "flag-connected" if bound else act_connect, effect)
    elif flag_state == flags.DISCONNECTED:
        if bound:
            return Verdict(DISCONNECTED, f"flag says disconnected although the port is bound; {where}",
                           "flag-connected")
        return Verdict(DISCONNECTED, f"flag says disconnected: a guest honouring it drops its output; {where}", act_connect)
    if bound is False:
        extra = f"; {out_fill} unread bytes" if out_fill else ""
        return Verdict(NO_BACKEND, f"{where}{extra}", act_connect, effect)
    if out_fill and track.prev_fill and track.samples > 1:
        # Serviced, only slower than the guest writes: watching it is safe, so attach is offered.
        return Verdict(BACKLOG, f"{out_fill} bytes queued, draining at {track.rate_at(now):.0f} B/s; {where}",
                       "attach", effect)
    quiet = track.quiet_for(now)
    if quiet >= idle_after:
        return Verdict(IDLE, f"quiet; {where}", "attach", effect)
    return Verdict(SERVICED, where, "attach", effect)


def page_verdict(snap: PageSnapshot) -> Verdict:
    """The verdict for one page dump (``--page``): what the page itself shows, without the
    history and backend facts a live console has (a dump cannot tell who drains it)."""
    out, in_ = snap.out, snap.in_
    if not out.valid or not in_.valid:
        return classify((in_.cons, in_.prod, out.cons, out.prod), snap.flag.state, Track(), None, 0.0,
                        flag=snap.flag)
    flag = snap.flag
    if out.fill == OUT_SIZE:
        return Verdict(STALLED, f"out ring full ({out.fill} of {OUT_SIZE} unread): a guest writing to it spins "
                       "until something drains it (a dump cannot tell whether anything still does)", "connect",
                       DROPS_OUTPUT if flag.mutes_new_guests else None)
    if flag.mutes_new_guests or flag.state == flags.DISCONNECTED:
        what = ("byte 3088 is 1" if flag.layout == flags.NONE else "flag says disconnected")
        return Verdict(DISCONNECTED, f"{what}: a Linux >= 7.1 guest throws its console output away "
                       "(an older kernel ignores the flag)", "connect",
                       DROPS_OUTPUT if flag.mutes_new_guests else None)
    if out.fill:
        return Verdict(BACKLOG, f"{out.fill} unread bytes in the out ring (a dump cannot tell whether "
                       "anything drains it)")
    return Verdict(IDLE, "out ring empty")


def next_evaluation(state: str, track: Track, now: float, stall_after: float, idle_after: float) -> float:
    """When a verdict must be re-computed even if no index moves.

    Problem states carry durations in their reason (refreshed each second); a serviced
    console turns idle, and unread output turns stalled, at known deadlines; idle,
    corrupt and error states change only when something moves.
    """
    if state in (IDLE, CORRUPT, ERROR):
        return float("inf")
    if state == SERVICED:
        due = max(track.t_out_cons, track.t_out_prod, track.t_in_cons) + idle_after
        if track.t_unread is not None:
            due = min(due, max(track.t_out_cons, track.t_unread) + stall_after)
        return due
    return now + 1.0
