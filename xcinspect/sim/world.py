"""The sim world controller: builds a world directory, runs xenstored, xenconsoled and the
guests as separate processes, and plays a scenario timeline.

Foreground (also what ``xcinspect sim DIR`` runs)::

    python -m xcinspect.sim.world --world DIR [--domains N] [--scenario demo|scale] [--no-timeline]

Python API (tests, ``xcinspect --sim``; in ``sim.handle``, the scenarios in ``sim.scenarios``)::

    world = start_world(dir, domains=None, scenario="demo", timeline=True)
    world.dir, world.xenstore_path, world.domains, world.pids()
    world.control("destroy 8")        # the control socket, see below
    world.stop()                      # every process of the world is gone afterwards

The controller is started in its own session; all the world's processes share its
process group, so ``World.stop()`` can always clean up (even after the controller was
SIGKILLed); the children also get SIGTERM from the kernel when the controller dies.

Control socket ``DIR/run/world.sock`` (one line in, one line out)::

    ping                                   -> ok
    status                                 -> ok {json}
    destroy DOMID                          -> ok           (the domain dies)
    create NAME [key=value ...]            -> ok DOMID     (kernel=, layout=, behaviour=,
                                                            consoled=0|1, tick=, flag=)
    guest DOMID set KEY VALUE              -> ok           (e.g. behaviour chatty)
    xenstored stall|stall-mid SECONDS | drop   -> ok       (fault injection via XS_CONTROL)
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import uuid

from xcinspect.core import flags
from xcinspect.core.ring import blank_page
from xcinspect.core.xs_wire import Op
from xcinspect.sim import scenarios
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

CONSOLE_PORT = 2  # the console's guest-side event channel (port 1 is xenstore's)
XENSTORE_PORT = 1
GUESTS_PER_PROCESS = 64
CONSOLE_LIMIT = 1048576


# -- the controller ------------------------------------------------------------------------------
class GuestProc:
    def __init__(self, proc: subprocess.Popen, domids: list[int]) -> None:
        self.proc = proc
        self.domids = set(domids)
        self.buf = b""


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
        self.listener: socket.socket | None = None
        self.clients: dict[int, tuple[socket.socket, bytes]] = {}
        self.next_health = 0.0
        self.refused = False

    # -- output ----------------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        t = time.monotonic() - self.t_start
        try:
            print(f"[{t:7.2f}] {msg}", flush=True)
        except (BrokenPipeError, OSError):
            pass

    def child_log(self, name: str):
        return open(os.path.join(self.paths.run, f"{name}.log"), "ab", buffering=0)

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
        self.start_control()
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
            if self.scenario == "demo" and not self.n:
                self.timeline = [(10.0, "create", scenarios.DEMO_LATECOMER), (20.0, "destroy", scenarios.DEMO_EPHEMERAL)]
            else:
                last = max(self.domains)
                self.timeline = [(10.0, "create", (last + 1, scenarios.domain_spec(f"late{last + 1:04d}", shows="appears later"))),
                                 (20.0, "destroy", last)]
        self.say(f"world {self.dir}: {len(self.domains)} domains, waiting for the guests to boot")

    def _fill_cfg(self, d: int, cfg: dict) -> None:
        cfg.setdefault("port", CONSOLE_PORT)
        cfg.setdefault("ring_ref", 0x9F000 + d * 0x41)  # a fake frame number (GFN), as libxl writes
        cfg.setdefault("store_mfn", 0x9E000 + d * 0x41)
        cfg.setdefault("uuid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"xcinspect-sim:{self.world_id}/{d}/{cfg['name']}")))

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

    def start_control(self) -> None:
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        ls.bind(self.paths.control)
        ls.listen(16)
        ls.setblocking(False)
        self.listener = ls
        self.sel.register(ls, selectors.EVENT_READ, "listen")

    def _spawn(self, args: list[str], name: str, **kw) -> subprocess.Popen:
        cmd = [sys.executable, "-m", *args, "--world", self.dir, "--parent-pid", str(os.getpid())]
        log = self.child_log(name)
        try:
            return subprocess.Popen(cmd, stderr=log, close_fds=True, **kw)
        finally:
            log.close()

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
        cfg = self.domains[d]
        layout = cfg["layout"]
        # libxenguest: a zeroed page; >= 4.21 sets connection = 1 (disconnected).
        flag = cfg.get("flag") or (flags.DISCONNECTED if layout == flags.XEN_421 else None)
        page = blank_page(layout, flag)
        tmp = self.paths.page(d) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(page)
        os.replace(tmp, self.paths.page(d))
        with open(self.paths.layout(d), "w", encoding="ascii") as f:
            f.write(layout + "\n")

    def populate(self, domids: list[int]) -> None:
        """What libxl writes for a domain (the console keys before the introduce)."""
        items: list[tuple[str, str]] = []
        for d in domids:
            cfg = self.domains[d]
            base = f"/local/domain/{d}"
            back = f"/local/domain/0/backend/console/{d}/0"
            vm = f"/vm/{cfg['uuid']}"
            items += [
                (f"{vm}/uuid", cfg["uuid"]), (f"{vm}/name", cfg["name"]),
                (f"{base}/name", cfg["name"]), (f"{base}/domid", str(d)), (f"{base}/vm", vm),
                (f"{base}/memory/target", str(1048576 * (1 + d % 4))),
                (f"{base}/cpu/0/availability", "online"),
                (f"{base}/store/ring-ref", str(cfg["store_mfn"])), (f"{base}/store/port", str(XENSTORE_PORT)),
                (f"{back}/frontend", f"{base}/console"), (f"{back}/frontend-id", str(d)),
                (f"{back}/online", "1"), (f"{back}/state", "1"), (f"{back}/protocol", "vt100"),
                (f"{base}/console/backend", back), (f"{base}/console/backend-id", "0"),
                (f"{base}/console/limit", str(CONSOLE_LIMIT)), (f"{base}/console/type", "xenconsoled"),
                (f"{base}/console/output", "pty"), (f"{base}/console/tty", ""),
                (f"{base}/console/port", str(cfg["port"])), (f"{base}/console/ring-ref", str(cfg["ring_ref"])),
            ]
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
            d = max(self.domains, default=0) + 1
        if d in self.domains:
            raise ValueError(f"domain {d} exists")
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
                self.guest_command(g, f"stop {d}")
                if not g.domids:
                    self._stop_proc(g.proc, 3.0)
        try:
            self.xs("release", d)
        except Exception:
            pass
        for path in (f"/local/domain/{d}", f"/vm/{cfg.get('uuid')}", f"/local/domain/0/backend/console/{d}"):
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

    def guest_command(self, g: GuestProc, line: str) -> None:
        try:
            g.proc.stdin.write((line + "\n").encode())
            g.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    # -- control socket --------------------------------------------------------------------------------
    def control(self, line: str) -> str:
        words = line.split()
        if not words:
            return "err empty command"
        cmd = words[0]
        try:
            if cmd == "ping":
                return "ok"
            if cmd == "status":
                return "ok " + json.dumps({
                    "ready": self.ready, "domains": sorted(self.domains), "booted": sorted(self.booted),
                    "pids": self.pid_map(),
                })
            if cmd == "destroy" and len(words) == 2:
                self.destroy_domain(int(words[1]))
                return "ok"
            if cmd == "create" and len(words) >= 2:
                cfg = scenarios.domain_spec(words[1])
                for kv in words[2:]:
                    k, _, v = kv.partition("=")
                    if k == "consoled":
                        cfg[k] = v not in ("0", "false", "no")
                    elif k == "tick":
                        cfg[k] = float(v)
                    elif k == "domid":
                        continue
                    elif k in cfg:
                        cfg[k] = v
                    else:
                        return f"err unknown key {k}"
                want = next((int(kv[6:]) for kv in words[2:] if kv.startswith("domid=")), None)
                return f"ok {self.create_domain(want, cfg)}"
            if cmd == "guest" and len(words) >= 5 and words[2] == "set":
                d = int(words[1])
                for g in self.guests:
                    if d in g.domids:
                        self.guest_command(g, "set " + " ".join(words[1:2] + words[3:]))
                        if words[3] in ("behaviour", "kernel", "tick"):
                            self.domains[d][words[3]] = float(words[4]) if words[3] == "tick" else words[4]
                            self.save()
                        return "ok"
                return f"err no guest {d}"
            if cmd == "xenstored" and len(words) >= 2:
                reply = self.xs("control", *words[1:])
                return "ok " + reply.rstrip(b"\0").decode()
        except Exception as exc:  # a bad command must not take the world down
            return f"err {exc}"
        return f"err unknown command {line.strip()!r}"

    def on_control_client(self, s: socket.socket) -> None:
        fd = s.fileno()
        sock, buf = self.clients[fd]
        try:
            chunk = s.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.sel.unregister(s)
            del self.clients[fd]
            s.close()
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            reply = self.control(line.decode(errors="replace"))
            try:
                s.setblocking(True)
                s.sendall(reply.encode() + b"\n")
                s.setblocking(False)
            except OSError:
                pass
        self.clients[fd] = (sock, buf)

    # -- main loop --------------------------------------------------------------------------------------
    def on_guest_output(self, g: GuestProc) -> None:
        try:
            chunk = os.read(g.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            try:
                self.sel.unregister(g.proc.stdout)
            except (KeyError, ValueError):
                pass
            return
        g.buf += chunk
        while b"\n" in g.buf:
            line, g.buf = g.buf.split(b"\n", 1)
            words = line.decode(errors="replace").split()
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
        lines = []
        if len(self.domains) <= 20:
            for d, c in sorted(self.domains.items()):
                backend = "xenconsoled" if c.get("consoled", True) else "none"
                lines.append(f"  {d:>4}  {c['name']:<12} {c['kernel']:<9} {c['layout']:<9} {backend:<12} {c.get('shows', '')}")
            lines.insert(0, f"  {'dom':>4}  {'name':<12} {'kernel':<9} {'layout':<9} {'backend':<12} shows")
        else:
            kinds: dict[str, int] = {}
            for c in self.domains.values():
                kinds[c.get("shows", "")] = kinds.get(c.get("shows", ""), 0) + 1
            lines += [f"  {n:>5}  {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])]
        if self.timeline:
            lines.append("  timeline: " + ", ".join(f"{a} at +{t:g} s" for t, a, _ in self.timeline))
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
                        try:
                            s, _ = self.listener.accept()
                            s.setblocking(False)
                            self.clients[s.fileno()] = (s, b"")
                            self.sel.register(s, selectors.EVENT_READ, "client")
                        except OSError:
                            pass
                    elif key.data == "client":
                        self.on_control_client(key.fileobj)
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
        for name, proc in (("xenstored", self.xenstored), ("xenconsoled", self.consoled)):
            if proc is not None and proc.poll() is not None and not getattr(proc, "_reported", False):
                proc._reported = True
                self.say(f"{name} exited with status {proc.returncode}")

    @staticmethod
    def _stop_proc(proc: subprocess.Popen | None, timeout: float) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.terminate()
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        except OSError:
            pass

    def teardown(self) -> None:
        if self.refused:  # another controller owns this directory: touch nothing
            if self.listener is not None:
                self.listener.close()
            return
        self.say("stopping the world")
        for g in self.guests:
            if g.proc.poll() is None:
                try:
                    g.proc.terminate()
                except OSError:
                    pass
        for g in self.guests:
            self._stop_proc(g.proc, 3.0)
            for f in (g.proc.stdin, g.proc.stdout):
                try:
                    f.close()
                except Exception:
                    pass
        self._stop_proc(self.consoled, 3.0)
        if self.wire is not None:
            self.wire.close()
        self._stop_proc(self.xenstored, 3.0)
        for path in (self.paths.socket, self.paths.control, self.paths.ready,
                     self.paths.xenstored_pid, self.paths.consoled_pid):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if self.listener is not None:
            self.listener.close()
        try:
            data = read_world(self.dir)
            data["controller_pid"] = None
            data["pids"] = {"xenstored": None, "xenconsoled": None, "guests": []}
            write_world(self.dir, data)
        except (OSError, ValueError):
            pass
        self.say("world stopped")


# -- the Python API ----------------------------------------------------------------------------------


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
