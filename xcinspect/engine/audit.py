"""The audit log: one JSON line per outcome of an action (who, where, what, the result),
appended to the platform's ``audit_log_path()``. Best effort: an action never fails
because its record could not be written."""

from __future__ import annotations

import getpass
import json
import os
import time

from xcinspect.platform.base import Platform


def write_record(platform: Platform, action: str, domid: int | None, result: str, detail: str = "",
                 **extra: object) -> None:
    rec = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "user": user(),
        "uid": os.getuid(),
        "pid": os.getpid(),
        "platform": platform.describe(),
        "action": action,
        "domid": domid,
        "result": result,
        "detail": detail,
        **extra,
    }
    path = platform.audit_log_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, (json.dumps(rec) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())
