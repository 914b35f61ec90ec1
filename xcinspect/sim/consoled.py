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
"""

from __future__ import annotations

import argparse
import errno
import mmap
import os
import resource
import select
import signal
import sys
import time
import tty

from xcinspect.core import flags
from xcinspect.core.ring import IN_CONS, IN_PROD, IN_SIZE, PAGE_SIZE, U32, PageError, RingIO, RingState
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
from xcinspect.sim.evtchn import SimEventChannel

RATE_LIMIT_ALLOWANCE = 30
RATE_LIMIT_PERIOD = 0.2
DEFAULT_LIMIT = 1048576
XS_POLL = 0.05
LOG_CAP = 8 << 20  # a guest log is truncated when it grows beyond this (sim housekeeping)


class Console:
    def __init__(self, domid: int, layout: str) -> None:
        self.domid = domid
        self.layout = layout
        self.name = f"dom{domid}"
        self.mm: mmap.mmap | None = None
        self.ring: RingIO | None = None
        self.ring_ref: int | None = None
        self.port: int | None = None
        self.ev: SimEventChannel | None = None
        self.master: int | None = None
        self.slave: int | None = None
        self.tty: str | None = None
        self.buf = bytearray()
        self.limit = DEFAULT_LIMIT
        self.log = None
        self.log_size = 0
        self.event_count = 0
        self.rate_limited = False
        self.ev_registered = False
        self.pty_mask = 0
        self.drained = 0
        self.discarded = 0

    def in_free(self) -> int:
        if self.mm is None:
            return 0
        # 0 for corrupt indices, as xenconsoled's "ring is screwed: ignore it"
        return RingState(U32.unpack_from(self.mm, IN_CONS)[0], U32.unpack_from(self.mm, IN_PROD)[0], IN_SIZE).free


class Consoled:
    def __init__(self, world: str, log: str = "guest") -> None:
        self.paths = Paths(world)
        self.world_dir = world
        self.log_mode = log
        self.world_id = world_id_for(world)
        self.served: dict[int, bool] = {}
        self.consoles: dict[int, Console] = {}
        self.ignored: set[int] = set()
        self.ep = select.epoll()
        self.fds: dict[int, tuple[str, Console]] = {}
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
            con = Console(domid, read_layout(self.paths, domid))
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
            self.unmap(con)
        if con.mm is None:
            try:
                fd = os.open(self.paths.page(con.domid), os.O_RDWR | os.O_CLOEXEC)
                try:
                    if os.fstat(fd).st_size != PAGE_SIZE:
                        raise OSError(errno.EINVAL, "page file has the wrong size")
                    con.mm = mmap.mmap(fd, PAGE_SIZE, access=mmap.ACCESS_WRITE)
                finally:
                    os.close(fd)
            except OSError:
                return  # cannot map: err, nothing more
            con.ring = RingIO(con.mm)
            con.ring_ref = ring_ref
        if con.layout == flags.RFC_V2:
            con.ring.set_flag(flags.RFC_V2, flags.CONNECTED)  # right after mapping (RFC v2)
        if not (con.ev is not None and port == con.port and not con.ev.closed):
            if con.ev is not None:
                self.close_evtchn(con)
            try:
                con.ev = SimEventChannel(self.world_id, con.domid, port)
                con.port = port
                con.rate_limited = False
                con.event_count = 0
                self.register_evtchn(con)
            except (BindError, PlatformError):
                con.ev = None
                err = True  # retried when the console watch fires again
            if not err and con.master is None:
                try:
                    self.create_pty(con)
                except OSError as exc:
                    # As xenconsoled's console_create_tty failing (ENOSPC past
                    # kernel.pty.max): log it, close the event channel, no service.
                    print(f"xenconsoled: failed to create tty for domain-{con.domid}: {exc.strerror}",
                          file=sys.stderr, flush=True)
                    self.close_evtchn(con)
                    err = True
            if not err:
                if con.tty:
                    self.xs.write(f"{base}/console/tty", con.tty)
                self.open_log(con)
                if con.layout == flags.RFC_V2:
                    con.ev.notify()  # "Notify to check flags field"
        if not err and con.mm is not None and con.layout == flags.XEN_421:
            con.ring.set_flag(flags.XEN_421, flags.CONNECTED)

    def create_pty(self, con: Console) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        os.set_inheritable(master, False)
        os.set_inheritable(slave, False)
        con.master, con.slave = master, slave
        con.tty = os.ttyname(slave)
        con.pty_mask = 0
        self.fds[master] = ("pty", con)
        self.update_pty(con)

    def open_log(self, con: Console) -> None:
        if self.log_mode != "guest" or con.log is not None:
            return
        try:
            con.log = open(self.paths.guest_log(con.name), "ab", buffering=0)
            con.log_size = con.log.tell()
        except OSError:
            con.log = None

    # -- epoll bookkeeping ---------------------------------------------------------------------------
    def register_evtchn(self, con: Console) -> None:
        if con.ev is None or con.ev_registered:
            return
        fd = con.ev.fileno()
        self.ep.register(fd, select.EPOLLIN)
        self.fds[fd] = ("ev", con)
        con.ev_registered = True

    def unregister_evtchn(self, con: Console) -> None:
        if con.ev is None or not con.ev_registered or con.ev.closed:
            con.ev_registered = False
            return
        fd = con.ev.fileno()
        try:
            self.ep.unregister(fd)
        except OSError:
            pass
        self.fds.pop(fd, None)
        con.ev_registered = False

    def update_pty(self, con: Console) -> None:
        if con.master is None:
            return
        mask = 0
        if con.buf:
            mask |= select.EPOLLOUT
        if con.ring is not None and con.in_free() > 0:
            mask |= select.EPOLLIN
        if mask == con.pty_mask:
            return
        try:
            if con.pty_mask == 0:
                self.ep.register(con.master, mask)
            elif mask == 0:
                self.ep.unregister(con.master)
            else:
                self.ep.modify(con.master, mask)
        except OSError:
            pass
        con.pty_mask = mask

    # -- teardown -------------------------------------------------------------------------------
    def close_evtchn(self, con: Console) -> None:
        self.unregister_evtchn(con)
        if con.ev is not None:
            con.ev.close()
        con.ev = None

    def unmap(self, con: Console) -> None:
        con.ring = None
        if con.mm is not None:
            try:
                con.mm.close()
            except (BufferError, ValueError):
                pass
        con.mm = None
        con.ring_ref = None

    def close_pty(self, con: Console) -> None:
        if con.master is not None:
            if con.pty_mask:
                try:
                    self.ep.unregister(con.master)
                except OSError:
                    pass
            self.fds.pop(con.master, None)
            os.close(con.master)
        if con.slave is not None:
            os.close(con.slave)
        con.master = con.slave = None
        con.pty_mask = 0

    def shutdown_domain(self, con: Console) -> None:
        try:
            self.xs.unwatch_many([(f"/local/domain/{con.domid}/console", f"dom{con.domid}")])
        except XenstoreError:
            pass
        self.close_evtchn(con)
        self.unmap(con)
        self.close_pty(con)
        if con.log is not None:
            con.log.close()
            con.log = None

    # -- service ----------------------------------------------------------------------------------
    def handle_ring_read(self, con: Console) -> None:
        if con.ev is None or not con.ev.pending():
            return
        con.event_count += 1
        self.buffer_append(con)
        if con.event_count < RATE_LIMIT_ALLOWANCE:
            con.ev.unmask()
        else:
            con.rate_limited = True  # stays masked until the next period
            self.unregister_evtchn(con)

    def buffer_append(self, con: Console) -> None:
        if con.ring is None:
            return
        try:
            data, new_cons = con.ring.peek_out()
        except PageError:
            return  # ring is screwed: ignore it
        if data:
            con.buf += data
            con.ring.commit_out(new_cons)
            con.drained += len(data)
            if con.ev is not None:
                con.ev.notify()
            if con.log is not None:
                try:
                    if con.log_size > LOG_CAP:
                        con.log.truncate(0)
                        con.log.seek(0)
                        con.log_size = 0
                    con.log.write(data)
                    con.log_size += len(data)
                except OSError:
                    pass
            self.discard_overflow(con)
        self.handle_tty_write(con)
        self.update_pty(con)

    def discard_overflow(self, con: Console) -> None:
        cap = con.limit
        if cap and len(con.buf) > 5 * cap // 4:
            over = len(con.buf) - cap
            # keep the oldest (cap - over) and the newest `over` bytes: the middle goes
            del con.buf[cap - over: cap]
            con.discarded += over

    def handle_tty_write(self, con: Console) -> None:
        if con.master is None or not con.buf:
            return
        try:
            n = os.write(con.master, con.buf)
            del con.buf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self.close_pty(con)
            self.create_pty(con)  # console_handle_broken_tty(recreate)
            try:
                self.xs.write(f"/local/domain/{con.domid}/console/tty", con.tty or "")
            except XenstoreError:
                pass

    def handle_tty_read(self, con: Console) -> None:
        if con.ring is None or con.master is None:
            return
        free = con.in_free()
        if free <= 0:
            return
        try:
            data = os.read(con.master, min(free, 80))
        except BlockingIOError:
            return
        except OSError:
            return
        if not data:
            return
        try:
            con.ring.write_in(data)
        except PageError:
            return
        if con.ev is not None:
            con.ev.notify()

    def period(self, now: float) -> None:
        self.next_period = now + RATE_LIMIT_PERIOD
        for con in self.consoles.values():
            if con.rate_limited:
                con.rate_limited = False
                if con.ev is not None:
                    con.ev.unmask()
                    self.register_evtchn(con)
            con.event_count = 0

    # -- main -----------------------------------------------------------------------------------
    def _request_stop(self) -> None:
        self.stop = True

    def run(self) -> int:
        # SIGINT: the world controller decides
        r, w = signal_wakeup(self._request_stop, ignore=(signal.SIGINT, signal.SIGHUP))
        self.ep.register(r.fileno(), select.EPOLLIN)
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
                events = self.ep.poll(timeout)
            except InterruptedError:
                continue
            for fd, mask in events:
                if fd == wake_fd:
                    drain_wakeup(r)
                    continue
                entry = self.fds.get(fd)
                if entry is None:
                    continue
                kind, con = entry
                if kind == "ev":
                    self.handle_ring_read(con)
                    self.update_pty(con)
                else:
                    if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                        self.handle_tty_read(con)
                    if mask & select.EPOLLOUT:
                        self.handle_tty_write(con)
                    self.update_pty(con)
            self.poll_xs()
        return 0

    def close(self) -> None:
        for con in list(self.consoles.values()):
            self.close_evtchn(con)
            self.unmap(con)
            self.close_pty(con)
            if con.log is not None:
                con.log.close()
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
