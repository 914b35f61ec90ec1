"""The action subcommands: connect, disconnect, flag, attach (interactive or not) and the
backend daemon that ``connect`` spawns (``_backend``)."""

from __future__ import annotations

import os
import select
import sys
import time

from xcinspect.cli.common import EXIT_FAIL, EXIT_OK, Context, die, one_line
from xcinspect.core.errors import UsageError
from xcinspect.core.hat import control_byte
from xcinspect.core.sanitize import Sanitizer


def _actions(args, ctx: Context):
    from xcinspect.engine.actions import Actions

    platform = ctx.platform
    assert platform is not None
    platform.check()
    return Actions(platform, flag_override=args.flag_layout, read_only=args.read_only,
                   platform_args=ctx.platform_args, sync=not getattr(args, "no_sync", False))


def cmd_connect(args, ctx: Context) -> int:
    from xcinspect.engine.actions import ActionError

    acts = _actions(args, ctx)
    domid = acts.resolve(args.dom, action=args.command)
    try:
        res = acts.connect(domid)
    except ActionError as exc:
        return die(exc.message, code=EXIT_FAIL)
    print(one_line(res.message))
    if res.detail.get("log"):
        print(f"log: {res.detail['log']}")
    return EXIT_OK


def cmd_disconnect(args, ctx: Context) -> int:
    from xcinspect.engine.actions import ActionError

    acts = _actions(args, ctx)
    domid = acts.resolve(args.dom, action=args.command)
    try:
        plan = acts.plan_disconnect(domid, force=args.force, set_flag=args.set_flag)
        if plan.allowed and plan.destructive:
            print(one_line(f"xcinspect: {plan.description}"), file=sys.stderr)
        res = acts.disconnect(domid, force=args.force, set_flag=args.set_flag)
    except ActionError as exc:
        return die(exc.message, code=EXIT_FAIL)
    print(one_line(res.message))
    return EXIT_OK


def cmd_flag(args, ctx: Context) -> int:
    from xcinspect.engine.actions import ActionError

    acts = _actions(args, ctx)
    domid = acts.resolve(args.dom, action="flag")
    try:
        plan = acts.plan_flag(domid, args.state)
        if plan.allowed and plan.destructive:
            print(one_line(f"xcinspect: {plan.description}"), file=sys.stderr)
        res = acts.set_flag(domid, args.state)
    except ActionError as exc:
        return die(exc.message, code=EXIT_FAIL)
    print(one_line(res.message))
    return EXIT_OK


def _escape_byte(spec: str) -> int:
    try:
        return control_byte(spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_attach(args, ctx: Context) -> int:
    from xcinspect.engine.actions import ActionError

    acts = _actions(args, ctx)
    domid = acts.resolve(args.dom, action=args.command)
    esc = _escape_byte(args.escape)
    try:
        session = acts.attach(domid, force=args.force)
    except ActionError as exc:
        return die(exc.message, code=EXIT_FAIL)
    san = None if args.raw else Sanitizer()
    out = sys.stdout.buffer
    interactive = sys.stdin.isatty() and sys.stdout.isatty()

    def emit(data: bytes) -> None:
        if san is None:
            out.write(data)
        else:
            text = san.feed(data)
            if interactive:  # the terminal is in raw mode (no ONLCR): \n alone would staircase
                text = text.replace("\n", "\r\n")
            out.write(text.encode())
        out.flush()

    stdin_fd = sys.stdin.fileno()
    with session:
        if interactive:
            import termios
            import tty

            old = termios.tcgetattr(stdin_fd)
            tty.setraw(stdin_fd)
            # After raw mode, in one write: no ONLCR, so the line ends in an explicit \r\n.
            banner = f"Connected to domain {domid} via {session.via}. Escape character is {args.escape}\r\n"
            sys.stderr.flush()
            os.write(sys.stderr.fileno(), banner.encode())
            try:
                while True:
                    r, _, _ = select.select([stdin_fd, session.fileno()], [], [], 1.0)
                    if stdin_fd in r:
                        data = os.read(stdin_fd, 1024)
                        if not data:
                            break
                        if esc in data:
                            data = data[: data.index(esc)]
                            if data:
                                session.write(data)
                            break
                        session.write(data)
                    if session.fileno() in r:
                        emit(session.read())
            except EOFError as exc:
                print(f"\r\nxcinspect: {exc}\r", file=sys.stderr)
            finally:
                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, old)
            return EXIT_OK
        # Non-interactive: stdin -> guest, guest -> stdout.
        deadline = time.monotonic() + args.timeout if args.timeout else None
        stdin_open = True
        linger_until = None
        try:
            while True:
                now = time.monotonic()
                if deadline and now >= deadline:
                    break
                if linger_until and now >= linger_until:
                    break
                fds = [session.fileno()] + ([stdin_fd] if stdin_open else [])
                r, _, _ = select.select(fds, [], [], 0.1)
                if stdin_open and stdin_fd in r:
                    data = os.read(stdin_fd, 1024)
                    if not data:
                        stdin_open = False
                        linger_until = time.monotonic() + args.linger
                    else:
                        session.write(data.replace(b"\n", b"\r"))
                if session.fileno() in r:
                    emit(session.read())
        except EOFError as exc:
            print(f"xcinspect: {exc}", file=sys.stderr)
        if san is not None:
            out.write(san.flush().encode())
            out.flush()
    return EXIT_OK


def cmd_backend(args, ctx: Context) -> int:
    from xcinspect.engine.service import Backend

    return Backend(ctx.platform, args.domid, flag_override=args.flag_layout, sync=not args.no_sync,
                   status_fd=args.status_fd).run()
