"""``xcinspect tail DOM``: follow a console's output without consuming it.

View-only (``engine/tail.py``): the page is mapped read-only and sampled every
``--interval``; ``out_cons`` is never moved, the event channel never bound, so it works
under ``--read-only`` and beside any backend. Guest bytes go to stdout through the
sanitizer; what the tail could not see (the guest wrote more than the 2048-byte ring
between two samples) is said on stderr, one line per gap, as are corrupt indices. At a
gap, stdout gets a line break when it is mid-line, so the pieces on either side of a gap
are never spliced into one line that the guest never wrote.
"""

from __future__ import annotations

import sys
import time

from xcinspect.cli.common import EXIT_OK, Context, one_line
from xcinspect.core.sanitize import Sanitizer

ALIVE_CHECK = 2.0  # seconds between checks that the domain still exists
DEFAULT_INTERVAL = 0.2


def cmd_tail(args, ctx: Context) -> int:
    from xcinspect.engine.tail import HEADER, ConsoleTail, gap_line, resolve
    from xcinspect.platform.xenstore import XsClient

    platform = ctx.platform
    assert platform is not None
    platform.check()
    interval = args.interval if getattr(args, "interval", None) else DEFAULT_INTERVAL
    xs = XsClient(platform.xenstore_path(), read_only=True)
    ctx.callback(xs.close)
    domid = resolve(xs, args.dom)
    tail = ConsoleTail(platform, domid, xs=xs, history=not args.new)
    tail.open()
    ctx.callback(tail.close)
    out = sys.stdout.buffer
    san = Sanitizer()
    if not args.quiet:
        print(one_line(f"xcinspect: dom {domid} ({tail.name}): {HEADER}"), file=sys.stderr, flush=True)

    at_line_start = True

    def emit(text: str) -> None:
        nonlocal at_line_start
        if text:
            out.write(text.encode())
            at_line_start = text.endswith("\n")

    def note(line: str) -> None:
        out.flush()
        print(one_line(f"xcinspect: {line}"), file=sys.stderr, flush=True)

    deadline = time.monotonic() + args.timeout if args.timeout else None
    next_alive = time.monotonic() + ALIVE_CHECK
    last_problem = None
    try:
        while True:
            chunk = tail.sample()
            if chunk.problem != last_problem:
                if chunk.problem:
                    note(f"dom {domid}: {chunk.problem}")
                last_problem = chunk.problem
            if chunk.missed:
                emit(san.flush())
                if not at_line_start:
                    emit("\n")
                note(f"dom {domid}: {gap_line(chunk.missed)}")
            if chunk.data:
                emit(san.feed(chunk.data))
                out.flush()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if now >= next_alive:
                next_alive = now + ALIVE_CHECK
                if not tail.alive():
                    emit(san.flush())
                    note(f"domain {domid} is gone")
                    break
            time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - now)))
    finally:
        try:
            emit(san.flush())
            out.flush()
        except BrokenPipeError:
            pass
    return EXIT_OK
