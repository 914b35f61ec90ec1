"""Command line: the TUI by default, batch output, page inspection and actions.

stdout belongs to the requested output (tables, JSON, console bytes); diagnostics go to
stderr as one line. Exit status: 0 ok, 1 an action was refused or failed, 2 bad input or
an unusable environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time

from xcinspect import __version__
from xcinspect.cli.actions import cmd_attach, cmd_backend, cmd_connect, cmd_disconnect, cmd_flag
from xcinspect.cli.common import EXIT_FAIL, EXIT_INTERNAL, EXIT_OK, Context, die, one_line
from xcinspect.cli.fleet import cmd_check, cmd_fleet
from xcinspect.cli.page import cmd_page
from xcinspect.cli.tail import cmd_tail
from xcinspect.core import flags
from xcinspect.core.errors import OperatorError, UsageError
from xcinspect.core.options import MetricsOptions, ServeOptions, UiOptions
from xcinspect.platform.base import Platform

SUBCOMMANDS = ("sim", "connect", "attach", "disconnect", "flag", "tail", "check", "fleet", "serve", "metrics", "_backend")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise UsageError(message)


COMMON_EPILOG = ("The options common to every command -- --sim [DIR], --flag-layout, --read-only -- "
                 "may also be given here; `xcinspect --help` describes them.")


def _global_options(p: argparse.ArgumentParser, suppress: bool) -> None:
    """The common options: described once at the top level; accepted (not listed again)
    after a subcommand."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    h = (lambda text: argparse.SUPPRESS) if suppress else (lambda text: text)
    p.add_argument("--sim", metavar="DIR", nargs="?", const="", default=d(None),
                   help=h("watch a simulated world in DIR (started with `xcinspect sim DIR`); "
                          "without DIR, start the demo world in a temporary directory"))
    p.add_argument("--flag-layout", choices=flags.CHOICES, default=d(flags.AUTO),
                   help=h("how to read the connection flag at offset 3088 (default: by Xen version)"))
    p.add_argument("--read-only", action="store_true", default=d(False),
                   help=h("hide and refuse every action; map pages read-only"))
    p.add_argument("--domains", type=int, metavar="N", default=d(None),
                   help=h("with --sim and no DIR: a world of N domains instead of the demo"))
    if suppress:
        p.epilog = COMMON_EPILOG


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="xcinspect", description="Inspect and triage Xen PV console rings.")
    p.add_argument("--version", action="version", version=f"xcinspect {__version__}")
    _global_options(p, suppress=False)
    p.add_argument("--page", metavar="FILE", help="inspect one 4096-byte page dump offline")
    p.add_argument("--once", action="store_true", help="sample once and print (with --json or --batch)")
    p.add_argument("--json", action="store_true", help="JSON output (NDJSON with --interval/--count)")
    p.add_argument("--batch", action="store_true", help="plain table, like `xentop -b`")
    p.add_argument("--interval", "-d", type=float, default=None, metavar="S", help="seconds between samples")
    p.add_argument("--count", "-n", type=int, default=None, metavar="N", help="number of samples")
    p.add_argument("--window", type=float, default=0.6, metavar="S",
                   help="batch mode: seconds to watch before the first report, so movement is seen")
    p.add_argument("--theme", default=None, help="TUI theme (from themes/, or any Textual theme)")
    p.add_argument("--select", type=int, default=None, metavar="DOMID",
                   help="TUI: start with this domain selected and its detail shown")
    public = [c for c in SUBCOMMANDS if not c.startswith("_")]
    sub = p.add_subparsers(dest="command", parser_class=_Parser, title="commands",
                           metavar="{" + ",".join(public) + "}")

    s = sub.add_parser("sim", help="run a simulated Xen world in DIR (foreground)")
    s.add_argument("--domains", type=int, metavar="N", default=argparse.SUPPRESS,
                   help="a world of N domains (the scale scenario) instead of the demo")
    s.add_argument("dir", metavar="DIR")
    s.add_argument("--scenario", default=None, help="demo (default) or scale")

    for name, helptext in (("connect", "service a console nobody services"),
                           ("attach", "attach to a console (non-interactive when stdin is not a TTY)"),
                           ("disconnect", "release or force-disconnect a console")):
        c = sub.add_parser(name, help=helptext)
        _global_options(c, suppress=True)
        c.add_argument("dom", metavar="DOM", help="domid or name")
        if name == "attach":
            c.add_argument("--raw", action="store_true", help="pass guest bytes through unsanitized")
            c.add_argument("--force", action="store_true", help="end another client's session first")
            c.add_argument("--timeout", type=float, default=None, metavar="S",
                           help="non-interactive: stop after S seconds")
            c.add_argument("--linger", type=float, default=1.5, metavar="S",
                           help="non-interactive: keep reading S seconds after stdin ends")
            c.add_argument("--escape", default="^]", help="detach key (interactive), default ^]")
        if name == "disconnect":
            c.add_argument("--force", action="store_true", help="end an attached client's session (SIGTERM)")
            c.add_argument("--set-flag", action="store_true",
                           help="set the flag to disconnected even though xenconsoled services the console")
        if name == "connect":
            c.add_argument("--no-sync", action="store_true", help="do not fdatasync the drain log")

    fl = sub.add_parser("flag", help="set a console's connection flag to connected or disconnected")
    _global_options(fl, suppress=True)
    fl.add_argument("dom", metavar="DOM", help="domid or name")
    fl.add_argument("state", choices=("connected", "disconnected"),
                    help="disconnected: a Linux >= 7.1 guest throws its console output away until it is "
                         "set back to connected")

    tl = sub.add_parser("tail", help="follow a console's output read-only, without consuming it "
                                     "(works under --read-only; may miss bytes, and says so)")
    _global_options(tl, suppress=True)
    tl.add_argument("dom", metavar="DOM", help="domid or name")
    tl.add_argument("--interval", "-d", type=float, default=argparse.SUPPRESS, metavar="S",
                    help="seconds between samples of the ring (default 0.2)")
    tl.add_argument("--new", action="store_true", help="only output written from now on (not what the ring holds)")
    tl.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S seconds")
    tl.add_argument("--quiet", "-q", action="store_true", help="no header line on stderr")

    ck = sub.add_parser("check", help="sample once; exit 1 when a console is stalled, corrupt, disconnected, "
                                      "unserviced or unreadable (for cron, systemd and monitoring plugins)")
    _global_options(ck, suppress=True)
    ck.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="one JSON document")

    ft = sub.add_parser("fleet", help="every dom0's problem consoles, from Prometheus")
    ft.add_argument("--prometheus", metavar="URL", default=None,
                    help="Prometheus base URL (default: [fleet] prometheus in the config file)")
    ft.add_argument("--host-label", default=None, help="the label naming a dom0 (default: instance)")
    ft.add_argument("--lookback", default=None, help="a host seen within this long and not now is down (default 1h)")
    ft.add_argument("--command", dest="open_command", default=None,
                    help="Enter runs this, {host} {instance} {domid} {name} filled in "
                         "(default: ssh -t {host} xcinspect --select {domid})")
    ft.add_argument("--interval", "-d", type=float, default=None, metavar="S", help="refresh every S seconds (15)")
    ft.add_argument("--once", action="store_true", help="ask once and print (with --json or --batch)")
    ft.add_argument("--json", action="store_true", help="one JSON document")
    ft.add_argument("--batch", action="store_true", help="a plain table")
    ft.add_argument("--theme", default=None, help="TUI theme")

    sv = sub.add_parser("serve", help="serve the TUI in a browser with textual-serve (loopback only)")
    _global_options(sv, suppress=True)
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--theme", default=argparse.SUPPRESS, help="TUI theme")
    sv.add_argument("--interval", "-d", type=float, default=argparse.SUPPRESS, metavar="S",
                    help="refresh delay of the served app")

    m = sub.add_parser("metrics", help="Prometheus metrics")
    _global_options(m, suppress=True)
    m.add_argument("--textfile", metavar="DIR", help="write DIR/xcinspect.prom atomically every --interval")
    m.add_argument("--listen", metavar="ADDR:PORT", help="serve /metrics over HTTP (default host 127.0.0.1)")
    m.add_argument("--interval", type=float, default=15.0)

    b = sub.add_parser("_backend")  # started by connect; not listed
    _global_options(b, suppress=True)
    b.add_argument("domid", type=int)
    b.add_argument("--status-fd", type=int, default=None)
    b.add_argument("--no-sync", action="store_true")
    return p


def normalize_argv(argv: list[str]) -> list[str]:
    """``--sim`` takes an optional DIR; never swallow a subcommand or an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--sim":
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt is None or nxt.startswith("-") or nxt in SUBCOMMANDS:
                out.append("--sim=")
                i += 1
            else:
                out.append(f"--sim={nxt}")
                i += 2
            continue
        out.append(a)
        i += 1
    return out


# -- platform ---------------------------------------------------------------------------------
# -- batch ------------------------------------------------------------------------------------
def _attached(e) -> str:
    f = e.facts
    if f is None or not f.lock_holder_pid:
        return "-"
    cmd = one_line(f.lock_holder_cmd or "?").split()
    return f"{(cmd[0].rsplit('/', 1)[-1] if cmd else '?')}:{f.lock_holder_pid}"


def _table(monitor) -> str:
    """One block of --batch: a time stamp, the header, a row per console."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    head = (f"{'DOMID':>5} {'NAME':<16} {'STATE':<12} {'FLAG':<12} {'OUT':>9} {'IN':>9} {'OUT_CONS':>10} "
            f"{'OUT_PROD':>10} {'RATE':>8} {'ATTACHED':<16}  REASON")
    rows = [f"# {stamp}", head]
    for e in monitor.views():
        snap = e.snapshot()
        out = f"{snap.out.fill}/{snap.out.size}" if snap else "-"
        inn = f"{snap.in_.fill}/{snap.in_.size}" if snap else "-"
        oc = str(snap.out.cons) if snap else "-"
        op = str(snap.out.prod) if snap else "-"
        name = one_line(e.name)[:16]
        reason = one_line(e.verdict.reason)  # may quote xenstore values (console/type, ...)
        rows.append(f"{e.domid:>5} {name:<16} {e.verdict.state:<12} {e.flag.state:<12} {out:>9} {inn:>9} "
                    f"{oc:>10} {op:>10} {e.track.rate_at(monitor.clock()):>8.0f} {_attached(e)[:16]:<16}  {reason}")
    return "\n".join(rows)


def cmd_batch(args, platform: Platform) -> int:
    from xcinspect.engine.monitor import Monitor, sample_window

    count = 1 if args.once else args.count
    mon = Monitor(platform, flag_layout=args.flag_layout, watch=count != 1)
    mon.open()
    try:
        interval = args.interval if args.interval is not None else (1.0 if args.json else 3.0)
        sample_window(mon, args.window)
        n = 0
        while True:
            if args.json:
                doc = mon.to_json()
                if not args.once:
                    doc = {"time": time.time(), **doc}
                sys.stdout.write(json.dumps(doc) + "\n")
            else:
                sys.stdout.write(_table(mon) + "\n")
                if not args.once:
                    sys.stdout.write("\n")
            sys.stdout.flush()
            n += 1
            if count is not None and n >= count:
                return EXIT_OK
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline:
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                mon.tick()
    finally:
        mon.close()


def cmd_sim(args) -> int:
    argv = [sys.executable, "-m", "xcinspect.sim.world", "--world", args.dir]
    if args.domains:
        argv += ["--domains", str(args.domains)]
    if args.scenario:
        argv += ["--scenario", args.scenario]
    os.execv(sys.executable, argv)
    return EXIT_FAIL  # not reached


def ui_options(args) -> UiOptions:
    return UiOptions(flag_layout=args.flag_layout, read_only=args.read_only, theme=args.theme,
                     interval=args.interval, select=getattr(args, "select", None))


def cmd_tui(args, ctx: Context) -> int:
    # Open the monitor (xenstore, every domain's keys, the pages) on a thread while
    # Textual is imported and started: neither waits for the other (issue 15).
    from xcinspect.engine import gc_policy
    from xcinspect.engine.monitor import Monitor
    from xcinspect.tui.poller import EarlyOpen

    gc_policy.manage()  # frozen and re-tuned after the first full frame (gc_policy says why)
    opening = EarlyOpen(Monitor(ctx.platform, flag_layout=args.flag_layout))
    opening.start()
    from xcinspect.tui.app import run_tui

    return run_tui(ctx.platform, ui_options(args), platform_args=ctx.platform_args, opening=opening)


def cmd_serve(args, ctx: Context) -> int:
    from xcinspect.tui.serve import serve

    return serve(ServeOptions(ui_options(args), host=args.host or "127.0.0.1", port=args.port), ctx)


def cmd_metrics(args, ctx: Context) -> int:
    from xcinspect.metrics import run as run_metrics

    options = MetricsOptions(flag_layout=args.flag_layout, textfile=args.textfile, listen=args.listen,
                             interval=args.interval)
    return run_metrics(options, ctx.platform)


def cmd_check_here(args, ctx: Context) -> int:
    return cmd_check(args, ctx.platform)


# The subcommands that run against this host's platform (sim or dom0), by name.
COMMANDS = {
    "connect": cmd_connect,
    "disconnect": cmd_disconnect,
    "flag": cmd_flag,
    "tail": cmd_tail,
    "check": cmd_check_here,
    "attach": cmd_attach,
    "_backend": cmd_backend,
    "serve": cmd_serve,
    "metrics": cmd_metrics,
}


def main(argv: list[str] | None = None) -> int:
    argv = normalize_argv(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return die(str(exc))
    if args.command == "sim":
        return cmd_sim(args)
    if args.command == "fleet":
        return cmd_fleet(args)
    if args.page:
        try:
            rc = cmd_page(args)
            sys.stdout.flush()
            return rc
        except BrokenPipeError:  # `xcinspect --page F | head -3`
            with contextlib.suppress(Exception):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    if args.command != "_backend":
        signal.signal(signal.SIGTERM, on_term)
    tui = args.command == "serve" or (args.command is None and not (args.once or args.json or args.batch))
    try:
        if tui:  # a bad config file or theme fails before any world starts or the screen switches
            from xcinspect.tui.config import load_config
            from xcinspect.tui.themes import check_theme

            check_theme(args.theme or load_config().theme)
        with Context(args) as ctx:
            ctx.open()
            command = COMMANDS.get(args.command)
            if command is not None:
                return command(args, ctx)
            if args.once or args.json or args.batch:
                if not (args.json or args.batch):
                    args.batch = True
                return cmd_batch(args, ctx.platform)
            return cmd_tui(args, ctx)
    except OperatorError as exc:
        return die(exc.message, exc.hint)
    except KeyError as exc:
        return die(str(exc.args[0]) if exc.args else "not found")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")
        return EXIT_OK
    except Exception as exc:  # never a traceback for the operator (XCINSPECT_DEBUG=1 shows it)
        if os.environ.get("XCINSPECT_DEBUG"):
            raise
        return die(f"internal error: {type(exc).__name__}: {exc}", "set XCINSPECT_DEBUG=1 for a traceback",
                    code=EXIT_INTERNAL)

