"""``xcinspect serve``: the same app in a browser, through textual-serve, on loopback only.

textual-serve has no authentication and starts one app process per browser tab, so the
server binds 127.0.0.1 (or ::1) and nothing else; reach it from elsewhere through an SSH
tunnel (``ssh -L 8000:127.0.0.1:8000 dom0``). Each app process watches the same world:
``--sim DIR`` (the demo world the CLI started, when no DIR was given) or this dom0.
"""

from __future__ import annotations

import shlex
import sys

from xcinspect.platform.base import PlatformError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def app_command(args, platform_args: list[str]) -> list[str]:
    """The command line textual-serve runs for every browser connection."""
    argv = [sys.executable, "-m", "xcinspect", *platform_args]
    if getattr(args, "flag_layout", "auto") not in (None, "auto"):
        argv += ["--flag-layout", args.flag_layout]
    if getattr(args, "read_only", False):
        argv.append("--read-only")
    if getattr(args, "theme", None):
        argv += ["--theme", args.theme]
    if getattr(args, "interval", None):
        argv += ["--interval", str(args.interval)]
    return argv


def check_host(host: str) -> str:
    if host not in LOOPBACK:
        raise PlatformError(f"serve binds to loopback only, not {host!r}",
                            "reach it through an SSH tunnel: ssh -L 8000:127.0.0.1:8000 HOST")
    return "127.0.0.1" if host == "localhost" else host


def serve(args, ctx) -> int:
    """Run the web server until interrupted. PlatformError for a bad host or theme."""
    try:
        from textual_serve.server import Server
    except ImportError:
        raise PlatformError("textual-serve is not installed", "pip install 'xcinspect[serve]'") from None
    from xcinspect.tui.config import load_config
    from xcinspect.tui.themes import check_theme

    host = check_host(getattr(args, "host", "127.0.0.1") or "127.0.0.1")
    port = int(getattr(args, "port", 8000))
    if not 0 < port < 65536:
        raise PlatformError(f"bad port {port}")
    config = load_config()  # a broken config fails here, not in every browser tab
    check_theme(getattr(args, "theme", None) or config.theme)
    if ctx.platform is not None:
        ctx.platform.check()
    command = shlex.join(app_command(args, list(ctx.platform_args)))
    where = f"[{host}]" if ":" in host else host
    print(f"xcinspect: serving on http://{where}:{port}/ (loopback only; Ctrl+C stops)", file=sys.stderr)
    Server(command, host=host, port=port, title="xcinspect").serve()
    return 0
