"""The sim xenconsoled, modelled on tools/console/daemon/io.c (Xen 4.17, plus the RFC v2
and 4.21 connection-flag changes).

``python -m xcinspect.sim.consoled --world DIR [--log none|guest]``

* Writes ``DIR/run/xenconsoled.pid``; talks to the sim xenstored with ``XsClient``.
* Watches ``@introduceDomain``/``@releaseDomain`` (token ``domlist``). The domain list
  (xenconsoled's ``xc_domain_getinfo``) is the sim xenstored's introduced set. A domain
  it is set up for (world.json ``domains[N].consoled`` is not false) gets a watch on
  ``/local/domain/N/console`` (token ``dom<N>``); every firing runs ``create_ring``.
  Domains it is not set up for are ignored, whatever fires.
* ``create_ring``: read ring-ref/port/type/limit; return early unless type is absent or
  ``xenconsoled``; map the page file read-write (rfc-v2: flag := connected right after
  mapping); if the port is unchanged and still bound by us, stop here; else bind the
  event channel (BindError: give up until the watch fires again), create the pty (raw,
  non-blocking master, slave kept open), write ``console/tty``, open the guest log,
  rfc-v2: notify. At the end, with no error and the page mapped, xen-4.21: flag :=
  connected (0).
* Service: an event drains ``out`` (peek -> buffer -> commit -> notify), the buffer goes
  to the pty master with the ``console/limit`` cap (discarding the middle, as the real
  one does by default); the pty master feeds ``in`` (at most min(free, 80) bytes per read,
  then notify). Rate limit: 30 events per 200 ms per console; over it, the port stays
  masked until the next period.
* ``@releaseDomain``: domains no longer introduced are shut down (evtchn closed, page
  unmapped, pty closed, watch removed).
* SIGTERM: clean exit (pid file removed). SIGKILL leaves everything as a crash would.

Here: the daemon (world.json, domain discovery, ``create_ring``, the loop); one console
and its service (page, event channel, pty, log) is ``console.Console``.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import signal
import sys
import time

from xcinspect.core import flags
from xcinspect.platform.base import BindError, PlatformError
from xcinspect.platform.xenstore import XenstoreError, XsClient
from xcinspect.sim.common import (
    Paths,
    die_with_parent,
    drain_wakeup,
    read_layout,
    read_world,
    remove_pidfile,
    signal_wakeup,
    world_id_for,
    write_pidfile,
)
from xcinspect.sim.console import DEFAULT_LIMIT, Console, Epoll
from xcinspect.sim.evtchn import SimEventChannel

RATE_LIMIT_PERIOD = 0.2
XS_POLL = 0.05


class Consoled:
    def __init__(self, world: str, log: str = "guest") -> None:
        self.paths = Paths(world)
        self.world_dir = world
        self.log_mode = log
        self.world_id = world_id_for(world)
        self.served: dict[int, bool] = {}
        self.consoles: dict[int, Console] = {}
        self.ignored: set[int] = set()
        self.epoll = Epoll()
        self.xs = XsClient(self.paths.socket, timeout=1.0)
        self.stop = False
        self.need_enum = True
        self.retry: set[int] = set()
        self.next_xs_retry = 0.0
        self.next_period = time.monotonic() + RATE_LIMIT_PERIOD

    # -- world.json --------------------------------------------------------------------------
    def reload_world(self) -> None:
        try:
            data = read_world(self.world_dir)
        except (OSError, ValueError):
            return
        self.world_id = data.get("world_id") or self.world_id
        for k, cfg in (data.get("domains") or {}).items():
            try:
                self.served[int(k)] = bool(cfg.get("consoled", True))
            except (ValueError, AttributeError):
                pass

    def set_up_for(self, domid: int) -> bool:
        return domid != 0 and self.served.get(domid, True)

    # -- xenstore -----------------------------------------------------------------------------
    def xs_setup(self) -> None:
        self.xs.watch_many([("@introduceDomain", "domlist"), ("@releaseDomain", "domlist")])

    def poll_xs(self) -> None:
        now = time.monotonic()
        if now < self.next_xs_retry:
            return
        try:
            events = self.xs.events(0)
        except XenstoreError:
            self.next_xs_retry = now + 1.0
            return
        for _path, token in events:
            if token == "domlist":
                self.need_enum = True
            elif token.startswith("dom"):
                try:
                    domid = int(token[3:])
                except ValueError:
                    continue
                self.retry.add(domid)
        try:
            if self.need_enum:
                self.enum_domains()
                self.need_enum = False
            while self.retry:
                domid = self.retry.pop()
                con = self.consoles.get(domid)
                if con is None:  # not set up for it (or gone): ignore, like handle_xs
                    continue
                try:
                    self.create_ring(con)
                except XenstoreError:
                    self.retry.add(domid)
                    raise
        except XenstoreError:
            self.next_xs_retry = time.monotonic() + 1.0

    def enum_domains(self) -> None:
        live: set[int] = set()
        first = 0
        while True:  # in batches, like xc_domain_getinfo
            raw = self.xs.control("introduced", str(first)).rstrip(b"\0").decode()
            batch = [int(x) for x in raw.split()]
            live.update(batch)
            if not batch or batch[-1] < first:
                break
            first = batch[-1] + 1
        live.discard(0)
        self.reload_world()
        new = []
        for domid in sorted(live):
            if domid in self.consoles or domid in self.ignored:
                continue
            if not self.set_up_for(domid):
                self.ignored.add(domid)
                continue
            con = Console(domid, read_layout(self.paths, domid), self.epoll, self.publish_tty)
            self.consoles[domid] = con
            new.append((f"/local/domain/{domid}/console", f"dom{domid}"))
        self.xs.watch_many(new)  # each fires once: create_ring
        for domid in list(self.consoles):
            if domid not in live:
                self.shutdown_domain(self.consoles.pop(domid))
        self.ignored &= live

    # -- console set-up (console_create_ring) ---------------------------------------------------
    def create_ring(self, con: Console) -> None:
        base = f"/local/domain/{con.domid}"
        ring_ref_s, port_s, type_s, limit_s, name = self.xs.read_many(
            [f"{base}/console/ring-ref", f"{base}/console/port", f"{base}/console/type",
             f"{base}/console/limit", f"{base}/name"])
        if name:
            con.name = name
        if ring_ref_s is None or port_s is None:
            return  # no console (yet): not an error
        if type_s and type_s != "xenconsoled":
            return  # QEMU's; returns before the out: label, so no flag either
        try:
            ring_ref, port = int(ring_ref_s), int(port_s)
        except ValueError:
            return
        try:
            con.limit = int(limit_s) if limit_s else DEFAULT_LIMIT
        except ValueError:
            con.limit = DEFAULT_LIMIT
        err = False
        if con.mm is not None and ring_ref != con.ring_ref:
            con.unmap()
        if not con.map(self.paths.page(con.domid), ring_ref):
            return  # cannot map: err, nothing more
        if con.layout == flags.RFC_V2:
            con.ring.set_flag(flags.RFC_V2, flags.CONNECTED)  # right after mapping (RFC v2)
        if not (con.ev is not None and port == con.port and not con.ev.closed):
            if con.ev is not None:
                con.close_evtchn()
            try:
                con.ev = SimEventChannel(self.world_id, con.domid, port)
                con.port = port
                con.rate_limited = False
                con.event_count = 0
                con.register_evtchn()
            except (BindError, PlatformError):
                con.ev = None
                err = True  # retried when the console watch fires again
            if not err and con.master is None:
                try:
                    con.create_pty()
                except OSError as exc:
                    # As xenconsoled's console_create_tty failing (ENOSPC past
                    # kernel.pty.max): log it, close the event channel, no service.
                    print(f"xenconsoled: failed to create tty for domain-{con.domid}: {exc.strerror}",
                          file=sys.stderr, flush=True)
                    con.close_evtchn()
                    err = True
            if not err:
                if con.tty:
                    self.xs.write(f"{base}/console/tty", con.tty)
                self.open_log(con)
                if con.layout == flags.RFC_V2:
                    con.ev.notify()  # "Notify to check flags field"
        if not err and con.mm is not None and con.layout == flags.XEN_421:
            con.ring.set_flag(flags.XEN_421, flags.CONNECTED)

    def open_log(self, con: Console) -> None:
        if self.log_mode == "guest":
            con.open_log(self.paths.guest_log(con.name))

    def publish_tty(self, con: Console) -> None:
        """The pty of ``con`` was recreated (broken tty): its name into ``console/tty``."""
        try:
            self.xs.write(f"/local/domain/{con.domid}/console/tty", con.tty or "")
        except XenstoreError:
            pass

    # -- teardown -------------------------------------------------------------------------------
    def shutdown_domain(self, con: Console) -> None:
        try:
            self.xs.unwatch_many([(f"/local/domain/{con.domid}/console", f"dom{con.domid}")])
        except XenstoreError:
            pass
        con.close()

    # -- service ----------------------------------------------------------------------------------
    def period(self, now: float) -> None:
        self.next_period = now + RATE_LIMIT_PERIOD
        for con in self.consoles.values():
            if con.rate_limited:
                con.rate_limited = False
                if con.ev is not None:
                    con.ev.unmask()
                    con.register_evtchn()
            con.event_count = 0

    # -- main -----------------------------------------------------------------------------------
    def _request_stop(self) -> None:
        self.stop = True

    def run(self) -> int:
        # SIGINT: the world controller decides
        r, w = signal_wakeup(self._request_stop, ignore=(signal.SIGINT, signal.SIGHUP))
        self.epoll.ep.register(r.fileno(), select.EPOLLIN)
        wake_fd = r.fileno()
        self.reload_world()
        while True:
            try:
                self.xs_setup()
                break
            except XenstoreError:
                if self.stop:
                    return 0
                time.sleep(0.2)
        while not self.stop:
            now = time.monotonic()
            if now >= self.next_period:
                self.period(now)
            timeout = max(0.0, min(self.next_period - now, XS_POLL))
            try:
                events = self.epoll.ep.poll(timeout)
            except InterruptedError:
                continue
            for fd, mask in events:
                if fd == wake_fd:
                    drain_wakeup(r)
                    continue
                entry = self.epoll.fds.get(fd)
                if entry is None:
                    continue
                kind, con = entry
                if kind == "ev":
                    con.handle_ring_read()
                    con.update_pty()
                else:
                    if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                        con.handle_tty_read()
                    if mask & select.EPOLLOUT:
                        con.handle_tty_write()
                    con.update_pty()
            self.poll_xs()
        return 0

    def close(self) -> None:
        for con in list(self.consoles.values()):
            con.close()
        self.consoles.clear()
        self.xs.close()


def raise_nofile() -> None:
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xcinspect.sim.consoled")
    ap.add_argument("--world", required=True)
    ap.add_argument("--log", choices=("none", "guest"), default="guest")
    ap.add_argument("--parent-pid", type=int)
    args = ap.parse_args(argv)
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    raise_nofile()
    paths = Paths(args.world)
    os.makedirs(paths.run, exist_ok=True)
    os.makedirs(paths.logs, exist_ok=True)
    d = Consoled(args.world, log=args.log)
    write_pidfile(paths.consoled_pid)
    try:
        return d.run()
    finally:
        d.close()
        remove_pidfile(paths.consoled_pid)


if __name__ == "__main__":
    sys.exit(main())
