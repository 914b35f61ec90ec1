"""The one base for errors an operator can act on.

Every front end shows an ``OperatorError`` as one line (and its hint), never a traceback;
the CLI exits 2. Subclasses say where the problem is: ``platform.base.PlatformError``
(the environment: xenstored, privileges, libraries, pages), ``engine.actions.ActionError``
(an action refused or failed), ``tui.config.ConfigError`` (config and theme files) and
``UsageError`` (bad arguments).
"""

from __future__ import annotations


class OperatorError(Exception):
    """One clear line for the operator, and a hint."""

    exit_status = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(OperatorError):
    """A bad command line or option value."""
