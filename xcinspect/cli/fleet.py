"""``xcinspect check`` (one host, check-style exit codes) and ``xcinspect fleet`` (every
dom0's problem consoles, from Prometheus)."""

from __future__ import annotations

import json
import time

from xcinspect.cli.common import EXIT_FAIL, EXIT_OK, die, one_line
from xcinspect.core.errors import OperatorError


def cmd_check(args, platform) -> int:
    """One sample (over --window); exit 1 when any console is in a problem state."""
    from xcinspect.core import health
    from xcinspect.engine.monitor import Monitor, sample_window

    platform.check()
    mon = Monitor(platform, flag_layout=args.flag_layout, watch=False)
    try:
        mon.open()
        sample_window(mon, args.window)
        views = mon.views()
        bad = [e for e in views if e.verdict.state in health.PROBLEM_STATES]
        if getattr(args, "json", False):
            doc = mon.to_json()
            doc["problems"] = len(bad)
            print(json.dumps(doc, indent=1))
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            print(f"{stamp} {len(views)} consoles, {len(bad)} with a problem")
            for e in bad:
                print(one_line(f"dom {e.domid} {e.name}: {e.verdict.state}: {e.verdict.reason}"))
    finally:
        mon.close()
    return EXIT_FAIL if bad else EXIT_OK


def cmd_fleet(args) -> int:
    """``xcinspect fleet``: the TUI, or one answer with --once/--json/--batch."""
    from xcinspect.engine import fleet
    from xcinspect.tui.config import load_config

    try:
        cfg = load_config().fleet
    except OperatorError as exc:
        return die(exc.message, exc.hint)
    url = args.prometheus or cfg.get("prometheus")
    if not url:
        return die("fleet needs --prometheus URL (or [fleet] prometheus in the config file)")
    host_label = args.host_label or cfg.get("host_label", fleet.DEFAULT_HOST_LABEL)
    lookback = args.lookback or cfg.get("lookback", fleet.DEFAULT_LOOKBACK)
    command = args.open_command or cfg.get("command", fleet.DEFAULT_COMMAND)
    interval = args.interval or cfg.get("interval", 15.0)
    if not 0.5 <= interval <= 3600:
        return die("--interval must be from 0.5 to 3600 seconds")
    try:
        prom = fleet.Prometheus(url)
        if args.once or args.json or args.batch:
            snap = fleet.gather(prom, host_label, lookback)
            if args.json:
                print(json.dumps(snap.as_dict(), indent=1))
            else:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                print(f"{stamp} {len(snap.hosts)} hosts, {len(snap.hosts_down)} down, "
                      f"{len(snap.problems)} problem consoles, {snap.healthy} healthy")
                for h in snap.hosts_down:
                    print(one_line(f"host {h.host} down: {h.why}"))
                for c in snap.problems:
                    fill = "-" if c.fill is None else c.fill
                    print(one_line(f"{c.host} {c.domid:>5} {c.name:<16} {c.verdict:<12} fill {fill:>4} "
                                f"for {fleet.age_text(c.seconds)} flag {c.flag}"))
            return snap.exit_code()
    except fleet.FleetError as exc:
        return die(exc.message)
    from xcinspect.tui.fleet import FleetApp

    app = FleetApp(prom, host_label=host_label, lookback=lookback, interval=interval, command=command,
                   theme=args.theme)
    app.run()
    return app.return_code or 0
