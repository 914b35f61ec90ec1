"""What an action says before and after it runs: ``Plan`` (allowed? what it will do),
``ActionResult``, ``ActionError`` (refused or failed), and the audit wrapper that puts every
way out of an action in the audit log."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from xcinspect.core.errors import OperatorError


class ActionError(OperatorError):
    """An action was refused or failed; ``message`` says why, in one line."""

    audited = False  # already written to the audit log
    needs_force = False  # refused only because force was not given (attach: a holder)


class Audits(Protocol):
    """What ``audited`` needs of the object whose actions it wraps."""

    def audit(self, action: str, domid: int | None, result: str, detail: str = "", **extra: Any) -> None: ...


S = TypeVar("S", bound=Audits)
P = ParamSpec("P")
R = TypeVar("R")


def audited(action: str) -> Callable[[Callable[Concatenate[S, int, P], R]], Callable[Concatenate[S, int, P], R]]:
    """Every way out of an action is in the audit log: what ``_refuse`` and the success
    paths record, and anything else that stops it (the domain vanished, xenstored went
    away, a bug) as "refused" (ActionError) or "failed"."""

    def deco(fn: Callable[Concatenate[S, int, P], R]) -> Callable[Concatenate[S, int, P], R]:
        @functools.wraps(fn)
        def wrapper(self: S, domid: int, /, *args: P.args, **kw: P.kwargs) -> R:
            try:
                return fn(self, domid, *args, **kw)
            except Exception as exc:
                if not getattr(exc, "audited", False):
                    result = "refused" if isinstance(exc, ActionError) else "failed"
                    self.audit(action, domid, result, getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
                    try:
                        exc.__dict__["audited"] = True
                    except AttributeError:
                        pass
                raise
        return wrapper
    return deco


@dataclass
class ActionResult:
    ok: bool
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """What an action would do, in words, before it is confirmed."""

    allowed: bool
    description: str
    destructive: bool = False
