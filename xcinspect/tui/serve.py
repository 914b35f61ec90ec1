"""``xcinspect serve``: the same app in a browser, through textual-serve, on loopback only.

textual-serve has no authentication and starts one app process per browser tab, so the
server binds 127.0.0.1 (or ::1) and nothing else; reach it from elsewhere through an SSH
tunnel (``ssh -L 8000:127.0.0.1:8000 dom0``). Each app process watches the same world:
``--sim DIR`` (the demo world the CLI started, when no DIR was given) or this dom0.
"""

from __future__ import annotations

import os
import shlex
import sys

from xcinspect.core.errors import UsageError
from xcinspect.core.options import ServeOptions, UiOptions
from xcinspect.platform.base import PlatformError

LOOPBACK = ("127.0.0.1", "::1", "localhost")
# textual-serve's page, with relative URLs and no fetches from the internet (its own
# writes http://HOST:PORT/ into the page and loads a font from Google)
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve_templates")


def app_command(options: UiOptions, platform_args: list[str]) -> list[str]:
    """The command line textual-serve runs for every browser connection."""
    argv = [sys.executable, "-m", "xcinspect", *platform_args]
    if options.flag_layout not in (None, "auto"):
        argv += ["--flag-layout", options.flag_layout]
    if options.read_only:
        argv.append("--read-only")
    if options.theme:
        argv += ["--theme", options.theme]
    if options.interval:
        argv += ["--interval", str(options.interval)]
    return argv


def check_host(host: str) -> str:
    if host not in LOOPBACK:
        raise UsageError(f"serve binds to loopback only, not {host!r}",
                            "reach it through an SSH tunnel: ssh -L 8000:127.0.0.1:8000 HOST")
    return "127.0.0.1" if host == "localhost" else host


def serve(options: ServeOptions, ctx) -> int:
    """Run the web server until interrupted. An OperatorError for a bad host or theme."""
    try:
        from textual_serve.server import Server
    except ImportError:
        raise PlatformError("textual-serve is not installed", "pip install 'xcinspect[serve]'") from None
    from xcinspect.tui.config import load_config
    from xcinspect.tui.themes import check_theme

    host = check_host(options.host)
    port = options.port
    if not 0 < port < 65536:
        raise UsageError(f"bad port {port}")
    config = load_config()  # a broken config fails here, not in every browser tab
    check_theme(options.ui.theme or config.theme)
    if ctx.platform is not None:
        ctx.platform.check()
    command = shlex.join(app_command(options.ui, list(ctx.platform_args)))
    where = f"[{host}]" if ":" in host else host
    print(f"xcinspect: serving on http://{where}:{port}/ (loopback only; Ctrl+C stops)", file=sys.stderr)
    Server(command, host=host, port=port, title="xcinspect", templates_path=TEMPLATES).serve()
    return 0
