"""The sim world controller: builds a world directory, runs xenstored, xenconsoled and the
guests as separate processes, and plays a scenario timeline.

Foreground (also what ``xcinspect sim DIR`` runs)::

    python -m xcinspect.sim.world --world DIR [--domains N] [--scenario demo|scale] [--no-timeline]

Python API (tests, ``xcinspect --sim``; in ``sim.handle``, the scenarios in ``sim.scenarios``)::

    world = start_world(dir, domains=None, scenario="demo", timeline=True)
    world.dir, world.xenstore_path, world.domains, world.pids()
    world.control("destroy 8")        # the control socket (sim.world_control)
    world.stop()                      # every process of the world is gone afterwards

The controller is started in its own session; all the world's processes share its
process group, so ``World.stop()`` can always clean up (even after the controller was
SIGKILLed); the children also get SIGTERM from the kernel when the controller dies.

Beside it: the control socket ``DIR/run/world.sock`` and its commands (``world_control``),
what the toolstack does for a domain (``toolstack``: config, page, xenstore keys), the
child processes (``world_processes``), the scenarios and their timeline (``scenarios``).
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import subprocess
import sys
import time

from xcinspect.core import flags
from xcinspect.core.xs_wire import Op
from xcinspect.sim import scenarios, toolstack, world_control, world_processes
from xcinspect.sim.common import (
    WORLD_VERSION,
    Paths,
    drain_wakeup,
    read_world,
    signal_wakeup,
    world_id_for,
    write_world,
)
from xcinspect.sim.handle import WorldError, running_controller
from xcinspect.sim.toolstack import XENSTORE_PORT
from xcinspect.sim.world_processes import GuestProc

GUESTS_PER_PROCESS = 64


# -- the controller ------------------------------------------------------------------------------
class Controller:
    def __init__(self, directory: str, scenario: str = "demo", domains: int | None = None,
                 timeline: bool = True, log: str | None = None) -> None:
        self.paths = Paths(directory)
        self.dir = self.paths.dir
        self.world_id = world_id_for(self.dir)
        self.scenario = scenario
        self.n = domains
        self.timeline_on = timeline
        self.consoled_log = log
        self.domains: dict[int, dict] = {}
        self.last_domid = 0  # Xen hands out domids in turn and does not reuse a freed one at once
        self.initial: set[int] = set()
        self.booted: set[int] = set()
        self.ready = False
        self.t_start = time.monotonic()
        self.t_ready: float | None = None
        self.timeline: list[tuple[float, str, object]] = []
        self.xenstored: subprocess.Popen | None = None
        self.consoled: subprocess.Popen | None = None
        self.guests: list[GuestProc] = []
        self.sel = selectors.DefaultSelector()
        self.stop = False
        self.wire = None
        self.control_socket = world_control.ControlSocket(self.paths.control, self.sel)
        self.next_health = 0.0
        self.refused = False

    # -- output ----------------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        t = time.monotonic() - self.t_start
        try:
            print(f"[{t:7.2f}] {msg}", flush=True)
        except (BrokenPipeError, OSError):
            pass

    # -- world.json -------------------------------------------------------------------------------
    def save(self) -> None:
        data = {
            "version": WORLD_VERSION,
            "world_id": self.world_id,
            "xen_version": "sim",
            "default_layout": flags.NONE,
            "controller_pid": os.getpid(),
            "scenario": self.scenario,
            "domains": {str(d): cfg for d, cfg in sorted(self.domains.items())},
            "pids": self.pid_map(),
        }
        write_world(self.dir, data)

    def pid_map(self) -> dict:
        return {
            "xenstored": self.xenstored.pid if self.xenstored else None,
            "xenconsoled": self.consoled.pid if self.consoled else None,
            "guests": [g.proc.pid for g in self.guests if g.proc.poll() is None],
        }

    # -- start-up ----------------------------------------------------------------------------------
    def running_controller(self) -> int | None:
        """Pid of another live controller of this directory, if any."""
        return running_controller(self.dir)

    def setup(self) -> None:
        p = self.paths
        p.makedirs()
        other = self.running_controller()
        if other:
            raise WorldError(f"a sim world is already running in {self.dir} (controller pid {other})")
        for stale in (p.ready, p.control):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        for name in os.listdir(p.pages):
            os.unlink(os.path.join(p.pages, name))
        if self.scenario == "scale" or self.n:
            self.domains = scenarios.scale_domains(self.n or 100)
        else:
            self.domains = scenarios.demo_domains()
        for d, cfg in self.domains.items():
            self._fill_cfg(d, cfg)
        self.initial = set(self.domains)
        self.save()
        self.control_socket.open()
        self.start_xenstored()
        from xcinspect.sim.xswire import WireClient

        self.wire = WireClient(p.socket, timeout=10.0)
        self.xs("write_many", [("/local/domain/0/name", "Domain-0"), ("/local/domain/0/domid", "0"),
                              ("/tool/xenstored/domid", "0")])
        self.start_consoled()
        for d in sorted(self.domains):
            self.make_page(d)
        self.populate(sorted(self.domains))
        self.xs("pipeline", [(Op.INTRODUCE, b"%d\0%d\0%d\0" % (d, self.domains[d]["store_mfn"], XENSTORE_PORT))
                            for d in sorted(self.domains)])
        # As on a host, the backend is set up before the guest runs (xl unpauses it after
        # xenconsoled had its chance): start the guests once served consoles have a tty.
        self.wait_for_backend(sorted(self.domains))
        self.start_guests(sorted(self.domains))
        self.save()
        if self.timeline_on:
            self.timeline = scenarios.timeline(self.scenario == "demo" and not self.n, self.domains)
        self.say(f"world {self.dir}: {len(self.domains)} domains, waiting for the guests to boot")

    def _fill_cfg(self, d: int, cfg: dict) -> None:
        toolstack.fill_config(self.world_id, d, cfg)

    def xs(self, method: str, *args):
        """A call on the controller's xenstore connection, reconnecting once if xenstored
        dropped it (fault injection does that)."""
        from xcinspect.sim.xswire import WireClient, WireClosed

        for attempt in (0, 1):
            try:
                if self.wire is None:
                    self.wire = WireClient(self.paths.socket, timeout=10.0)
                return getattr(self.wire, method)(*args)
            except (WireClosed, OSError):
                if self.wire is not None:
                    self.wire.close()
                self.wire = None
                if attempt:
                    raise

    def _spawn(self, args: list[str], name: str, **kw) -> subprocess.Popen:
        return world_processes.spawn(self.paths, args, name, **kw)

    def start_xenstored(self) -> None:
        from xcinspect.sim.xenstored import wait_for_socket

        self.xenstored = self._spawn(["xcinspect.sim.xenstored"], "xenstored",
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        wait_for_socket(self.paths.socket, 15.0, self.xenstored)

    def start_consoled(self) -> None:
        args = ["xcinspect.sim.consoled"]
        log = self.consoled_log or ("none" if len(self.domains) > 100 else "guest")
        args += ["--log", log]
        self.consoled = self._spawn(args, "xenconsoled", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def make_page(self, d: int) -> None:
        toolstack.write_page(self.paths, d, self.domains[d])

    def populate(self, domids: list[int]) -> None:
        """What libxl writes for a domain (the console keys before the introduce)."""
        items = toolstack.domain_keys(self.domains, domids)
        for i in range(0, len(items), 4000):
            self.xs("write_many", items[i: i + 4000])

    def wait_for_backend(self, domids: list[int], timeout: float | None = None) -> None:
        want = [d for d in domids if self.domains[d].get("consoled", True)]
        deadline = time.monotonic() + (timeout if timeout is not None else 10.0 + 0.01 * len(want))
        while want and time.monotonic() < deadline:
            reps = self.xs("pipeline", [(Op.READ, f"/local/domain/{d}/console/tty".encode() + b"\0") for d in want])
            want = [d for d, (op, payload) in zip(want, reps) if not payload.strip(b"\0")]
            if want:
                time.sleep(0.02)
        if want:
            self.say(f"xenconsoled did not set up {len(want)} console(s) in time; starting the guests anyway")

    def start_guests(self, domids: list[int]) -> None:
        per = 1 if len(domids) <= 16 else GUESTS_PER_PROCESS
        for i in range(0, len(domids), per):
            chunk = domids[i: i + per]
            args = ["xcinspect.sim.guest"]
            for d in chunk:
                args += ["--domid", str(d)]
            proc = self._spawn(args, f"guest-{chunk[0]}", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            os.set_blocking(proc.stdout.fileno(), False)
            g = GuestProc(proc, chunk)
            self.guests.append(g)
            self.sel.register(proc.stdout, selectors.EVENT_READ, g)

    # -- domain life cycle ----------------------------------------------------------------------------
    def create_domain(self, d: int | None, cfg: dict) -> int:
        if d is None:
            d = max(self.last_domid, *self.domains, 0) + 1
        if d in self.domains:
            raise ValueError(f"domain {d} exists")
        self.last_domid = max(self.last_domid, d)
        cfg = dict(cfg)
        self._fill_cfg(d, cfg)
        self.domains[d] = cfg
        self.save()  # xenconsoled reads who it serves from world.json
        self.make_page(d)
        self.populate([d])
        self.xs("introduce", d, cfg["store_mfn"], XENSTORE_PORT)
        self.wait_for_backend([d], 3.0)
        self.start_guests([d])
        self.save()
        self.say(f"domain {d} ({cfg['name']}) created")
        return d

    def destroy_domain(self, d: int) -> None:
        cfg = self.domains.get(d)
        if cfg is None:
            raise ValueError(f"no domain {d}")
        for g in self.guests:
            if d in g.domids:
                g.domids.discard(d)
                g.tell(f"stop {d}")
                if not g.domids:
                    world_processes.stop(g.proc, 3.0)
        try:
            self.xs("release", d)
        except Exception:
            pass
        for path in toolstack.domain_paths(d, cfg):
            try:
                self.xs("rm", path)
            except Exception:
                pass
        for path in (self.paths.page(d), self.paths.layout(d)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        del self.domains[d]
        self.guests = [g for g in self.guests if g.domids or g.proc.poll() is None]
        self.save()
        self.say(f"domain {d} ({cfg['name']}) destroyed")

    # -- control socket --------------------------------------------------------------------------------
    def control(self, line: str) -> str:
        """One command of the control socket (``world_control.answer``): its reply line."""
        return world_control.answer(self, line)

    # -- main loop --------------------------------------------------------------------------------------
    def on_guest_output(self, g: GuestProc) -> None:
        try:
            lines = g.read_lines()
        except BlockingIOError:
            return
        if lines is None:
            try:
                self.sel.unregister(g.proc.stdout)
            except (KeyError, ValueError):
                pass
            return
        for line in lines:
            words = line.split()
            if len(words) == 2 and words[0] == "booted":
                self.booted.add(int(words[1]))
        if not self.ready and self.initial <= self.booted:
            self.ready = True
            self.t_ready = time.monotonic()
            with open(self.paths.ready, "w") as f:
                f.write(f"{time.time():.3f}\n")
            self.say(f"world ready in {self.t_ready - self.t_start:.2f} s")
            self.print_summary()

    def print_summary(self) -> None:
        lines = scenarios.summary(self.domains, self.timeline)
        lines.append(f"  watch it with: xcinspect --sim {self.dir}    (Ctrl-C here stops the world)")
        try:
            print("\n".join(lines), flush=True)
        except (BrokenPipeError, OSError):
            pass

    def _request_stop(self) -> None:
        self.stop = True

    def run(self) -> int:
        r, w = signal_wakeup(self._request_stop, stop=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
                             ignore=(signal.SIGPIPE,))
        self.sel.register(r, selectors.EVENT_READ, "wake")
        try:
            try:
                self.setup()
            except WorldError as exc:
                self.say(f"error: {exc}")
                self.refused = True
                return 1
            while not self.stop:
                now = time.monotonic()
                timeout = 1.0
                if self.ready and self.timeline:
                    due = self.t_ready + self.timeline[0][0]
                    timeout = max(0.0, min(timeout, due - now))
                for key, _ in self.sel.select(timeout):
                    if key.data == "wake":
                        drain_wakeup(r)
                    elif key.data == "listen":
                        self.control_socket.accept()
                    elif key.data == "client":
                        self.control_socket.on_readable(key.fileobj, self.control)
                    else:
                        self.on_guest_output(key.data)
                now = time.monotonic()
                while self.ready and self.timeline and now >= self.t_ready + self.timeline[0][0]:
                    _, action, arg = self.timeline.pop(0)
                    try:
                        if action == "create":
                            self.create_domain(*arg)
                        elif action == "destroy":
                            self.destroy_domain(arg)
                    except Exception as exc:
                        self.say(f"timeline {action} failed: {exc}")
                if now >= self.next_health:
                    self.next_health = now + 1.0
                    self.check_children()
        finally:
            self.teardown()
        return 0

    def check_children(self) -> None:
        world_processes.report_exits(self.say, [("xenstored", self.xenstored), ("xenconsoled", self.consoled)])

    def teardown(self) -> None:
        if self.refused:  # another controller owns this directory: touch nothing
            self.control_socket.close()
            return
        self.say("stopping the world")
        world_processes.stop_guests(self.guests, 3.0)
        world_processes.stop(self.consoled, 3.0)
        if self.wire is not None:
            self.wire.close()
        world_processes.stop(self.xenstored, 3.0)
        for path in (self.paths.socket, self.paths.control, self.paths.ready,
                     self.paths.xenstored_pid, self.paths.consoled_pid):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.control_socket.close()
        try:
            data = read_world(self.dir)
            data["controller_pid"] = None
            data["pids"] = {"xenstored": None, "xenconsoled": None, "guests": []}
            write_world(self.dir, data)
        except (OSError, ValueError):
            pass
        self.say("world stopped")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xcinspect.sim.world", description="run a simulated Xen world")
    ap.add_argument("--world", required=True, help="world directory (created if missing)")
    ap.add_argument("--domains", type=int, help=f"number of domains (scale scenario, up to {scenarios.MAX_DOMAINS})")
    ap.add_argument("--scenario", choices=("demo", "scale"), default=None)
    ap.add_argument("--no-timeline", dest="timeline", action="store_false",
                    help="no domain appears or dies later (deterministic tests)")
    ap.add_argument("--log", choices=("none", "guest"), help="sim xenconsoled guest logs (default: guest up to 100 domains)")
    ap.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.parent_pid:
        from xcinspect.sim.common import die_with_parent

        die_with_parent(args.parent_pid)
    if args.domains is not None and not 1 <= args.domains <= scenarios.MAX_DOMAINS:
        ap.error(f"--domains must be between 1 and {scenarios.MAX_DOMAINS}")
    scenario = args.scenario or ("scale" if args.domains else "demo")
    if scenario == "scale" and not args.domains:
        args.domains = 100
    ctl = Controller(args.world, scenario=scenario, domains=args.domains if scenario == "scale" else None,
                     timeline=args.timeline, log=args.log)
    return ctl.run()


if __name__ == "__main__":
    sys.exit(main())
