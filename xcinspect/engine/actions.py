"""Operator actions -- connect, attach, disconnect -- for any platform, with an audit log.

Rules (xen-console spec §8): many processes may map a page, only one may bind the event
channel, and xcinspect never consumes a ring someone else services.

* connect: xenconsoled alive but not servicing -> re-fire its console watch and confirm
  it bound; no backend -> start xcinspect's own backend daemon; serviced by someone
  else -> refuse, saying who.
* attach: our backend -> its socket; otherwise behave like ``xenconsole``: take the
  non-blocking flock on ``xenconsole.<domid>`` (refuse if held; ``force`` ends the
  holder), open ``console/tty`` raw.
* disconnect: stop our own backend (the flag is left as it is: xenconsoled never writes
  "disconnected" either); with ``force``, SIGTERM the lock holder.
* flag: set the connection flag to connected or disconnected, either way (the undo of
  the other); Linux >= 7.1 guests drop their output while it reads disconnected. Under
  layout ``none`` only a 1 left in byte 3088 can be cleared (what Linux >= 7.1 reads).
"""

from __future__ import annotations

import os
import signal
import socket
import termios
import time
import tty
from typing import Any

from xcinspect.core import flags
from xcinspect.core.model import BackendFacts, DomainInfo
from xcinspect.core.ring import OUT_SIZE, RingIO, parse_page
from xcinspect.engine import audit, facts, service
from xcinspect.engine.discovery import Discovery
from xcinspect.engine.plans import ActionError, ActionResult, Plan, audited
from xcinspect.engine.sessions import AttachSession, ConsoleLock, SocketSession, TtySession, open_console_tty
from xcinspect.platform import procfs
from xcinspect.platform.base import Platform, PlatformError
from xcinspect.platform.xenstore import XenstoreError, XsClient


class Actions:
    def __init__(
        self,
        platform: Platform,
        xs: XsClient | None = None,
        *,
        flag_override: str = flags.AUTO,
        read_only: bool = False,
        platform_args: list[str] | None = None,
        sync: bool = True,
    ) -> None:
        self.platform = platform
        self.read_only = read_only or getattr(platform, "read_only", False)
        self.xs = xs or XsClient(platform.xenstore_path(), read_only=self.read_only)
        self.flag_override = flag_override
        self.platform_args = platform_args or []
        self.sync = sync

    # -- helpers ----------------------------------------------------------------------------
    def _info(self, domid: int) -> DomainInfo:
        if self.xs.read(f"/local/domain/{domid}/domid") is None and self.xs.read(f"/local/domain/{domid}/name") is None:
            raise ActionError(f"no domain {domid} in xenstore")
        return Discovery(self.xs).read_domains([domid])[domid]

    def resolve(self, ref: str | int, action: str | None = None) -> int:
        """A domid from a domid or a name; for ``action``, a failure is audited."""
        try:
            return self._resolve(ref)
        except Exception as exc:
            if action is not None:
                self.audit(action, None, "refused" if isinstance(exc, ActionError) else "failed",
                           getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}", target=str(ref))
            raise

    def _resolve(self, ref: str | int) -> int:
        text = str(ref)
        if text.isdigit():
            d = int(text)
            if self.xs.read(f"/local/domain/{d}/name") is None and self.xs.read(f"/local/domain/{d}/domid") is None:
                raise ActionError(f"no domain {d} in xenstore")
            return d
        for entry in self.xs.list("/local/domain"):
            if entry.isdigit() and self.xs.read(f"/local/domain/{entry}/name") == text:
                return int(entry)
        raise ActionError(f"no domain named {text!r}")

    def facts(self, info: DomainInfo) -> BackendFacts:
        return facts.facts_for(self.platform, info)

    def layout(self, domid: int) -> str:
        return flags.resolve_layout(self.flag_override, self.platform.domain_flag_hint(domid), self.platform.default_flag_layout())

    def audit(self, action: str, domid: int | None, result: str, detail: str = "", **extra: Any) -> None:
        audit.write_record(self.platform, action, domid, result, detail, **extra)

    def _refuse(self, action: str, domid: int | None, message: str) -> ActionError:
        self.audit(action, domid, "refused", message)
        err = ActionError(message)
        err.audited = True
        return err

    def _check_writable(self, action: str, domid: int | None) -> None:
        if self.read_only:
            raise self._refuse(action, domid, "read-only mode: actions are disabled")

    # -- connect ----------------------------------------------------------------------------
    def plan_connect(self, domid: int) -> Plan:
        info = self._info(domid)
        f = self.facts(info)
        if info.console is None or info.error:
            return Plan(False, f"domain {domid} has no usable console ({info.error or 'no console keys'})")
        if info.console.served_by_qemu:
            return Plan(False, f"console type {info.console.type!r} belongs to QEMU; xcinspect will not act on it")
        if f.xcinspect_backend_pid:
            return Plan(False, f"already serviced by xcinspect (backend pid {f.xcinspect_backend_pid})")
        if f.port_bound:
            who = "xenconsoled" if f.consoled_alive else "another process"
            return Plan(False, f"already serviced by {who}: the console port is bound")
        unmute = ""
        if self._muted(domid, info):
            unmute = (" The connection flag says disconnected (a Linux >= 7.1 guest is throwing its output "
                      "away): xcinspect will set it to connected.")
        if f.consoled_alive:
            return Plan(True, "xenconsoled runs but does not service this console: re-fire its watch; "
                        "if it does not bind, xcinspect services the console itself." + unmute)
        return Plan(True, "no backend: xcinspect will bind the event channel, drain the ring to its log "
                    "and serve attach." + unmute)

    @audited("connect")
    def connect(self, domid: int, *, wait: float = 3.0) -> ActionResult:
        self._check_writable("connect", domid)
        info = self._info(domid)
        plan = self.plan_connect(domid)
        if not plan.allowed:
            raise self._refuse("connect", domid, plan.description)
        f = self.facts(info)
        if info.console is None:  # gone since the plan was made
            raise self._refuse("connect", domid, f"domain {domid} has no usable console (no console keys)")
        if f.consoled_alive and f.port_bound is False:
            self._refire(domid)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.platform.port_bound(domid, info.console.port):
                    msg = f"xenconsoled bound the console of domain {domid} after its watch was re-fired"
                    msg += self._unmute_after_connect(domid, info)
                    self.audit("connect", domid, "ok", msg, how="refire")
                    return ActionResult(True, msg, {"how": "refire"})
                time.sleep(0.1)
        declined = bool(f.consoled_alive and f.port_bound is False)  # re-fired, and it did not bind
        ok, detail = service.spawn(self.platform_args, domid, flag_override=self.flag_override, sync=self.sync)
        if not ok:
            raise self._refuse("connect", domid, f"could not service domain {domid}: {detail}")
        facts.mark_declined(self.platform, domid, declined)
        fields = dict(kv.split("=", 1) for kv in detail.split() if "=" in kv)
        msg = f"xcinspect now services the console of domain {domid} (backend pid {fields.get('pid')})"
        msg += self._unmute_after_connect(domid, info)
        self.audit("connect", domid, "ok", msg, how="backend", consoled_declined=declined, **fields)
        return ActionResult(True, msg, {"how": "backend", **fields})

    def _out_fill(self, domid: int, info: DomainInfo) -> int | None:
        """Unread bytes in the out ring now (None when the page cannot be read)."""
        try:
            with self.platform.map_page(domid, info.console.ring_ref if info.console else None) as m:
                return parse_page(m.buf).out.fill
        except PlatformError:
            return None

    def _unmute_after_connect(self, domid: int, info: DomainInfo) -> str:
        """After a backend connected: a flag still saying disconnected is set to connected
        (xcinspect's backend does it under the rfc-v2/4.21 layouts; a 4.20 xenconsoled never
        touches the byte). Returns the words to add to the result message."""
        if not self._muted(domid, info):
            return ""
        try:
            res = self._write_flag(domid, flags.CONNECTED, "connect")
        except ActionError as exc:
            return f"; the flag still says disconnected ({exc.message})"
        return "; " + res.message

    # -- the connection flag ----------------------------------------------------------------
    def read_flag(self, domid: int, info: DomainInfo | None = None) -> flags.FlagReading:
        info = info or self._info(domid)
        layout = self.layout(domid)
        with self.platform.map_page(domid, info.console.ring_ref if info.console else None) as m:
            return flags.decode(m.buf, layout)

    def _muted(self, domid: int, info: DomainInfo) -> bool:
        """The flag says disconnected under the host's layout, or byte 3088 is 1."""
        if info.console is None or info.error:
            return False
        try:
            reading = self.read_flag(domid, info)
        except PlatformError:
            return False
        return reading.state == flags.DISCONNECTED or reading.mutes_new_guests

    def plan_flag(self, domid: int, state: str) -> Plan:
        """What setting the connection flag of ``domid`` to ``state`` would do."""
        if state not in (flags.CONNECTED, flags.DISCONNECTED):
            return Plan(False, f"a flag is set to {flags.CONNECTED!r} or {flags.DISCONNECTED!r}, not {state!r}")
        info = self._info(domid)
        name = info.name
        if info.console is None or info.error:
            return Plan(False, f"domain {domid} has no usable console ({info.error or 'no console keys'})")
        if info.console.served_by_qemu:
            return Plan(False, f"console type {info.console.type!r} belongs to QEMU; xcinspect will not act on it")
        try:
            reading = self.read_flag(domid, info)
        except PlatformError as exc:
            return Plan(False, f"cannot read the console page of domain {domid}: {exc.message}")
        layout = reading.layout
        if layout == flags.NONE:
            if state == flags.DISCONNECTED:
                return Plan(False, "this host's flag layout is 'none' (Xen <= 4.20): there is no connection "
                            "flag to set (--flag-layout overrides the layout)")
            if reading.byte == flags.GUEST_CONNECTED_BYTE:
                return Plan(False, f"byte 3088 of {name} (dom {domid}) is already 0: a Linux >= 7.1 guest "
                            "reads it as connected")
            return Plan(True, f"Write 0 into byte 3088 of {name} (dom {domid}), now {reading.byte}: this host's "
                        "Xen has no connection flag, but a Linux >= 7.1 guest reads the byte as "
                        "'disconnected' and throws its console output away until it reads 0.")
        if reading.state == state:
            return Plan(False, f"the {layout} flag of {name} (dom {domid}) already says {state}")
        if state == flags.DISCONNECTED:
            return Plan(True, f"Write 'disconnected' into the {layout} connection flag of {name} (dom {domid}): "
                        "guests that honour it (Linux >= 7.1) will DROP their console output from their "
                        "next write until the flag is set back to connected (U, or "
                        f"`xcinspect flag {domid} connected`); older kernels ignore it.", destructive=True)
        return Plan(True, f"Write 'connected' into the {layout} connection flag of {name} (dom {domid}), now "
                    f"{reading.state} (raw {reading.raw}): a Linux >= 7.1 guest writes its console output "
                    "again from its next write (what it dropped meanwhile is lost).")

    @audited("flag")
    def set_flag(self, domid: int, state: str) -> ActionResult:
        """Set the connection flag to ``state``; the audit record has the flag before and
        after, so it can be undone by setting it back."""
        return self._write_flag(domid, state, "flag")

    def _write_flag(self, domid: int, state: str, action: str) -> ActionResult:
        self._check_writable(action, domid)
        plan = self.plan_flag(domid, state)
        if not plan.allowed:
            raise self._refuse(action, domid, plan.description)
        info = self._info(domid)
        layout = self.layout(domid)
        with self.platform.map_page(domid, info.console.ring_ref if info.console else None, writable=True) as m:
            before = flags.decode(m.buf, layout)
            ring = RingIO(m.buf, service.ring_fence())
            if layout == flags.NONE:
                ring.set_guest_byte(state)
            else:
                ring.set_flag(layout, state)
            after = flags.decode(m.buf, layout)
        if layout == flags.NONE:
            msg = f"set byte 3088 of domain {domid} to {after.byte} ({state}, as Linux >= 7.1 reads it; was {before.byte})"
        else:
            msg = f"set the {layout} flag of domain {domid} to {state} (raw {before.raw} -> {after.raw})"
        self.audit(action, domid, "ok", msg, how="flag", state=state, layout=layout,
                   before=before.as_dict(), after=after.as_dict())
        return ActionResult(True, msg, {"how": "flag", "before": before.as_dict(), "after": after.as_dict()})

    def _refire(self, domid: int) -> None:
        """Rewrite a console key so xenconsoled's watch on the console path fires."""
        path = f"/local/domain/{domid}/console/tty"
        value = self.xs.read(path)
        self.xs.write(path, value if value is not None else "")

    # -- disconnect -------------------------------------------------------------------------
    def plan_disconnect(self, domid: int, *, force: bool = False, set_flag: bool = False) -> Plan:
        info = self._info(domid)
        f = self.facts(info)
        name = info.name
        if info.console is not None and info.console.served_by_qemu and not f.lock_holder_pid:
            return Plan(False, f"console type {info.console.type!r} belongs to QEMU; xcinspect will not act on it")
        if f.xcinspect_backend_pid:
            stop = (f"Stop xcinspect's backend (pid {f.xcinspect_backend_pid}) for {name} (dom {domid}): "
                    "the event channel is released and the flag is left as it is (xenconsoled never "
                    "writes 'disconnected' either); ")
            nobody = facts.nobody_else(self.platform, domid, f)
            if nobody is None:
                return Plan(True, stop + "xenconsoled's watch is re-fired so it can bind again (if it does not, "
                            f"the guest stalls again once its {OUT_SIZE // 1024} KiB out ring fills).")
            fill = self._out_fill(domid, info)
            now = f" ({fill} of {OUT_SIZE} bytes unread now)" if fill is not None else ""
            return Plan(True, stop + f"no other backend will service this console ({nobody}): nothing will "
                        f"drain the ring, and the guest will STALL AGAIN once its {OUT_SIZE // 1024} KiB out "
                        f"ring fills{now}.", destructive=True)
        if f.lock_holder_pid:
            who = f"pid {f.lock_holder_pid} ({f.lock_holder_cmd or 'unknown'})"
            if not force:
                return Plan(False, f"the console of {name} (dom {domid}) is attached by {who}; "
                            "force-disconnect to end that session")
            return Plan(True, f"Send SIGTERM to {who}, the console client attached to {name} (dom {domid}). "
                        "Its session ends; the guest and xenconsoled are not touched.", destructive=True)
        if set_flag:
            return self.plan_flag(domid, flags.DISCONNECTED)
        return Plan(False, f"nothing to disconnect on {name} (dom {domid}): no client attached and no "
                    "xcinspect backend")

    @audited("disconnect")
    def disconnect(self, domid: int, *, force: bool = False, set_flag: bool = False) -> ActionResult:
        self._check_writable("disconnect", domid)
        if set_flag and not force:
            f0 = self.facts(self._info(domid))
            if not f0.xcinspect_backend_pid and not f0.lock_holder_pid:
                return self._write_flag(domid, flags.DISCONNECTED, "disconnect")
        plan = self.plan_disconnect(domid, force=force, set_flag=set_flag)
        if not plan.allowed:
            raise self._refuse("disconnect", domid, plan.description)
        info = self._info(domid)
        f = self.facts(info)
        if f.xcinspect_backend_pid:
            nobody = facts.nobody_else(self.platform, domid, f)
            pid = service.stop_backend(self.platform, domid)
            facts.mark_declined(self.platform, domid, False)
            msg = f"stopped xcinspect's backend (pid {pid}) for domain {domid}; the port is released"
            if nobody is not None:
                msg += f"; nobody services the console now ({nobody}): the guest stalls again once its ring fills"
            self.audit("disconnect", domid, "ok", msg, how="backend")
            return ActionResult(True, msg, {"how": "backend", "pid": pid})
        if f.lock_holder_pid:
            pid = f.lock_holder_pid
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and procfs.lock_holder(self.platform.lock_path(domid)):
                time.sleep(0.05)
            if procfs.lock_holder(self.platform.lock_path(domid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            msg = f"ended the console session of pid {pid} ({f.lock_holder_cmd or '?'}) on domain {domid}"
            self.audit("disconnect", domid, "ok", msg, how="kick", target_pid=pid)
            return ActionResult(True, msg, {"how": "kick", "pid": pid})
        return self._write_flag(domid, flags.DISCONNECTED, "disconnect")

    # -- attach -----------------------------------------------------------------------------
    @audited("attach")
    def attach(self, domid: int, *, force: bool = False, tty_wait: float = 5.0) -> AttachSession:
        self._check_writable("attach", domid)
        info = self._info(domid)
        f = self.facts(info)
        if f.xcinspect_backend_pid:
            path = facts.backend_socket(self.platform, domid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
            except OSError as exc:
                s.close()
                raise self._refuse("attach", domid, f"cannot reach xcinspect's backend socket {path}: {exc}") from None
            self.audit("attach", domid, "ok", "via xcinspect backend")
            return SocketSession(s, f"xcinspect backend pid {f.xcinspect_backend_pid}")
        lock = ConsoleLock(self.platform.lock_path(domid))
        try:
            lock.acquire()
        except BlockingIOError:
            holder = procfs.lock_holder(self.platform.lock_path(domid))
            who = f"pid {holder[0]} ({holder[1]})" if holder else "another process"
            if not force:
                err = self._refuse("attach", domid, f"console of domain {domid} is attached by {who}; "
                                   "attach with --force to end that session")
                err.needs_force = True
                raise err from None
            self.disconnect(domid, force=True)
            try:
                lock.acquire()
            except BlockingIOError:
                raise self._refuse("attach", domid, f"console of domain {domid} is still held by {who}") from None
        try:
            path = self._wait_tty(domid, tty_wait)
            fd = open_console_tty(path)
        except (OSError, ActionError) as exc:
            lock.release()
            raise self._refuse("attach", domid, f"cannot open the console of domain {domid}: {getattr(exc, 'message', exc)}") from None
        try:
            tty.setraw(fd)
        except termios.error:
            pass
        self.audit("attach", domid, "ok", f"via {path}")
        return TtySession(fd, lock, path)

    def _wait_tty(self, domid: int, wait: float) -> str:
        deadline = time.monotonic() + wait
        path = f"/local/domain/{domid}/console/tty"
        while True:
            try:
                value = self.xs.read(path)
            except XenstoreError as exc:
                raise ActionError(exc.message) from None
            if value:
                return value
            if time.monotonic() >= deadline:
                raise ActionError(f"no console/tty for domain {domid} in xenstore (is xenconsoled servicing it?)")
            time.sleep(0.1)

