"""The operator actions of the TUI, each one straight worker: plan -> confirm -> act.

Each action runs as an async Textual worker on the app (group ``actions``): the blocking
engine calls (``Actions.plan_*``, ``connect``, ``attach``...) go to a thread with
``asyncio.to_thread`` -- every one of them has its own deadline -- and the confirm dialog
is awaited with ``push_screen_wait``. The UI thread never waits on xenstore or a console.
A second request for the same action on the same domain while one runs is dropped.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from xcinspect.core.errors import OperatorError
from xcinspect.tui.model import Row, clean
from xcinspect.tui.poller import THIS_TUI

if TYPE_CHECKING:
    from xcinspect.tui.app import XcApp

ACTIONS = "actions"  # the worker group
T = TypeVar("T")


class ActionWorkers:
    """Mixed into the app: ``start_*`` for the screens and the palette."""

    _action_lock = threading.Lock()  # one engine call at a time (they share a xenstore client)

    @property
    def ops(self: XcApp) -> int:
        """Actions under way, including one waiting on its confirm dialog (tests wait for 0)."""
        return sum(1 for w in self.workers if w.group == ACTIONS and not w.is_finished)

    def _run_action(self: XcApp, what: str, domid: int, flow: Callable[[], Awaitable[None]]) -> None:
        if self.actions is None:
            self.notify("actions are not available here", severity="error", markup=False)
            return
        name = f"{what} of dom {domid}"
        if any(w.name == name and not w.is_finished for w in self.workers):
            self.notify(f"{name} is already under way", timeout=2, markup=False)
            return

        async def reported() -> None:
            try:
                await flow()
            except OperatorError as exc:
                self._action_failed(what, exc.message)
            except Exception as exc:  # report, never crash the UI
                self._action_failed(what, f"{type(exc).__name__}: {exc}")

        self.run_worker(reported, name=name, group=ACTIONS, exit_on_error=False)

    async def _blocking(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a thread, one engine call at a time."""
        def locked() -> T:
            with ActionWorkers._action_lock:
                return fn()

        return await asyncio.to_thread(locked)

    def _under_way(self: XcApp, r: Row, doing: str | None) -> None:
        """Say (status line, a notification) what is under way on ``r`` until it ends."""
        key = ("under-way", r.domid)
        if doing:
            self.under_way[r.domid] = f"{doing} dom {r.domid}…"
            self.notify(f"{doing} dom {r.domid} ({r.name})…", timeout=60, markup=False, key=key)
        else:
            self.under_way.pop(r.domid, None)
            self.dismiss_notification(key)
        if self.main is not None:
            self.main.update_status()

    def _action_failed(self: XcApp, what: str, message: str) -> None:
        self.last_result = f"{what} failed: {message}"
        self.notify(clean(message), title=f"{what} failed", severity="error", timeout=8, markup=False)
        self.request_tick()

    def _action_done(self: XcApp, what: str, result: Any) -> None:
        self.last_result = result.message
        self.notify(clean(result.message), title=what, timeout=6, markup=False)
        self.request_tick()

    def _refused(self: XcApp, what: str, action: str, domid: int, plan: Any, **audit: str) -> None:
        self.last_result = plan.description
        self.actions.audit(action, domid, "refused", plan.description, **audit)  # refusals are audited too
        self.notify(clean(plan.description), title=f"cannot {what}", severity="warning", markup=False)

    async def _confirmed(self: XcApp, title: str, body: str, yes: str, destructive: bool) -> bool:
        from xcinspect.tui.modals import ConfirmModal

        if await self.push_screen_wait(ConfirmModal(title, clean(body), yes, destructive=destructive)):
            return True
        self.notify("cancelled: nothing was changed", timeout=2, markup=False)
        return False

    # -- the actions ------------------------------------------------------------------------
    def start_connect(self: XcApp, r: Row) -> None:
        async def connect() -> None:
            acts = self.actions
            plan = await self._blocking(lambda: acts.plan_connect(r.domid))
            if not plan.allowed:
                self._refused("connect", "connect", r.domid, plan)
                return
            if await self._confirmed(f"Connect the console of dom {r.domid} ({r.name})?", plan.description,
                                     "Connect", False):
                self._under_way(r, "connecting")  # a backend's start can take many seconds
                try:
                    result = await self._blocking(lambda: acts.connect(r.domid))
                finally:
                    self._under_way(r, None)
                self._action_done("connect", result)

        self._run_action("connect", r.domid, connect)

    def start_disconnect(self: XcApp, r: Row, *, force: bool = False) -> None:
        async def disconnect() -> None:
            acts = self.actions
            plan = await self._blocking(lambda: acts.plan_disconnect(r.domid, force=force))
            if not plan.allowed:
                self._refused("disconnect", "disconnect", r.domid, plan)
                return
            if await self._confirmed(f"Force-disconnect dom {r.domid} ({r.name})?", plan.description,
                                     "Disconnect", plan.destructive or force):
                self._action_done("disconnect", await self._blocking(lambda: acts.disconnect(r.domid, force=force)))

        self._run_action("disconnect", r.domid, disconnect)

    def start_flag(self: XcApp, r: Row, state: str) -> None:
        """Set the connection flag to ``state`` (either way: each is the other's undo)."""
        what = f"set flag {state}"

        async def set_flag() -> None:
            acts = self.actions
            plan = await self._blocking(lambda: acts.plan_flag(r.domid, state))
            if not plan.allowed:
                self._refused(what, "flag", r.domid, plan, state=state)
                return
            if await self._confirmed(f"Set the flag of dom {r.domid} ({r.name}) to {state}?", plan.description,
                                     f"Set {state}", plan.destructive):
                self._action_done(what, await self._blocking(lambda: acts.set_flag(r.domid, state)))

        self._run_action(what, r.domid, set_flag)

    def start_attach(self: XcApp, r: Row) -> None:
        if r.qemu:
            self.notify(f"dom {r.domid}: console type {r.console_type} belongs to QEMU; xcinspect will not attach",
                        severity="warning", markup=False)
            return
        connect_first = r.action == "connect"  # nobody services it: offer to connect, then attach

        async def attach() -> None:
            from xcinspect.tui.attach_screen import AttachScreen

            acts = self.actions
            if connect_first:
                plan = await self._blocking(lambda: acts.plan_connect(r.domid))
                if not plan.allowed:
                    self._refused("connect", "connect", r.domid, plan)
                    return
                if not await self._confirmed(f"Connect dom {r.domid} ({r.name}) and attach?",
                                             f"Nobody services this console. {plan.description} "
                                             "Then this TUI attaches to it.", "Connect and attach", False):
                    return
                self._under_way(r, "connecting")
                try:
                    result = await self._blocking(lambda: acts.connect(r.domid))
                finally:
                    self._under_way(r, None)
                self._action_done("connect", result)
            force = False
            if r.attached and r.attached != THIS_TUI:
                if not await self._force_confirmed(r, f"The console of dom {r.domid} ({r.name}) is attached "
                                                      f"by {r.attached}."):
                    return
                force = True
            while True:
                try:
                    session = await self._blocking(lambda forced=force: acts.attach(r.domid, force=forced, tty_wait=2.0))
                    break
                except OperatorError as exc:
                    if force or not getattr(exc, "needs_force", False):
                        raise
                    if not await self._force_confirmed(r, exc.message):
                        return
                    force = True
            self.push_screen(AttachScreen(r, session, scrollback=self.config.scrollback,
                                          escape_display=self.escape_display()))

        self._run_action("attach", r.domid, attach)

    async def _force_confirmed(self: XcApp, r: Row, why: str) -> bool:
        return await self._confirmed(
            f"Force-attach dom {r.domid} ({r.name})?",
            f"{why} Forcing sends SIGTERM to that client: its session ends, then this TUI attaches. "
            "The guest and xenconsoled are not touched.",
            "Force attach", True)
