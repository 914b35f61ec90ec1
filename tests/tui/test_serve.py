"""``xcinspect serve --sim``: the same app through textual-serve, loopback only.

Level 1 talks to the websocket directly (aiohttp): the app's first screen arrives and a
keypress round-trips. Level 2 drives Debian's ``chromium`` through Playwright (no
``playwright install``): a screenshot and a keypress round trip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from xcinspect.core.errors import UsageError
from xcinspect.tui.serve import app_command, check_host

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``xcinspect serve --sim DIR`` on a free loopback port, over its own sim world."""
    from xcinspect.sim.handle import start_world

    tmp = tmp_path_factory.mktemp("serve")
    world = start_world(str(tmp / "w"), scenario="demo", timeline=False)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TEXTUAL_THEME")}
    env["XDG_CONFIG_HOME"] = str(tmp / "xdg")
    proc = subprocess.Popen([sys.executable, "-m", "xcinspect", "serve", "--sim", world.dir, "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.poll() is not None else ""
                proc.kill()
                world.stop()
                raise AssertionError(f"xcinspect serve did not come up: {out}") from None
            time.sleep(0.1)
    yield port
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    world.stop()


def test_app_command_and_loopback_only():
    class A:
        flag_layout = "xen-4.21"
        read_only = True
        theme = "light"
        interval = 0.5

    argv = app_command(A(), ["--sim", "/w"])
    assert argv[1:] == ["-m", "xcinspect", "--sim", "/w", "--flag-layout", "xen-4.21", "--read-only",
                        "--theme", "light", "--interval", "0.5"]
    assert check_host("127.0.0.1") == "127.0.0.1" and check_host("localhost") == "127.0.0.1"
    with pytest.raises(UsageError, match="loopback only"):
        check_host("0.0.0.0")


def test_serve_refuses_a_public_address(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", "xcinspect", "serve", "--sim", str(tmp_path), "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "loopback only" in out.stderr


def test_websocket_first_screen_and_keypress(server):
    import aiohttp

    async def go() -> tuple[bytes, bytes]:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"http://127.0.0.1:{server}/ws?width=120&height=40") as ws:
                buf = b""
                deadline = time.monotonic() + 30
                while b"stuck-boot" not in buf or b"Connect" not in buf:
                    assert time.monotonic() < deadline, buf[-2000:]
                    msg = await ws.receive(timeout=10)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        buf += msg.data
                first = buf
                await ws.send_json(["stdin", "?"])
                buf = b""
                while b"xcinspect keys" not in buf:
                    assert time.monotonic() < deadline, buf[-2000:]
                    msg = await ws.receive(timeout=10)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        buf += msg.data
                return first, buf

    first, after = asyncio.run(go())
    assert b"web01" in first and b"verdict" in first
    assert b"force-disconnect" in after  # the help screen lists binding ids


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_chromium_screenshot_and_keypress(server, tmp_path):
    pytest.importorskip("playwright", reason="pip install playwright (no browser download needed)")
    from playwright.sync_api import sync_playwright

    frames: list[bytes] = []
    out_png = tmp_path / "served.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})

            def on_ws(ws):
                ws.on("framereceived", lambda payload: frames.append(
                    payload if isinstance(payload, bytes) else payload.encode()))

            page.on("websocket", on_ws)
            page.goto(f"http://127.0.0.1:{server}/")
            page.wait_for_selector("body.-first-byte", timeout=30000)
            page.wait_for_selector(".textual-terminal.-connected", timeout=30000)
            deadline = time.monotonic() + 30
            while b"stuck-boot" not in b"".join(frames):
                assert time.monotonic() < deadline, "the table never arrived"
                page.wait_for_timeout(100)
            page.mouse.click(600, 400)
            n = len(frames)
            page.keyboard.press("?")
            while b"xcinspect keys" not in b"".join(frames[n:]):
                assert time.monotonic() < deadline, "the help screen never arrived"
                page.wait_for_timeout(100)
            page.wait_for_timeout(300)
            page.screenshot(path=str(out_png))
        finally:
            browser.close()
    data = out_png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    keep = os.environ.get("XCINSPECT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(out_png, os.path.join(keep, "browser.png"))


class Forward:
    """A TCP port-forward on another local port (what ``ssh -L 9999:127.0.0.1:8000``
    gives the browser): the page must work through it, knowing nothing of the real port."""

    def __init__(self, target: int) -> None:
        import threading

        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                self.threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_page_has_relative_urls_only(server):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server}/", timeout=10) as r:
        html = r.read().decode()
    assert "textual-terminal" in html
    assert f":{server}" not in html and "127.0.0.1" not in html  # nothing of the server's own address
    assert "googleapis" not in html and "https://" not in html
    for attr in ("src=", "href=", "url("):
        for part in html.split(attr)[1:]:
            value = part.lstrip("\"'(")
            assert not value.startswith(("http:", "https:", "ws:", "wss:", "//")), part[:80]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_chromium_through_a_tunnel_on_another_port_and_offline(server):
    """The browser reaches the page on another port (an SSH tunnel) and nothing but that
    address: every other request (a font from the internet, the server's own port) is
    refused, as on an offline dom0."""
    pytest.importorskip("playwright", reason="pip install playwright (no browser download needed)")
    from playwright.sync_api import sync_playwright

    fwd = Forward(server)
    origin = f"127.0.0.1:{fwd.port}"
    frames: list[bytes] = []
    elsewhere: list[str] = []
    sockets: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 600})

                def route(r):
                    if r.request.url.split("/")[2] == origin:
                        r.continue_()
                    else:
                        elsewhere.append(r.request.url)
                        r.abort()

                page.route("**/*", route)

                def on_ws(ws):
                    sockets.append(ws.url)
                    ws.on("framereceived", lambda payload: frames.append(
                        payload if isinstance(payload, bytes) else payload.encode()))

                page.on("websocket", on_ws)
                page.goto(f"http://{origin}/")
                page.wait_for_selector(".textual-terminal.-connected", timeout=30000)
                deadline = time.monotonic() + 30
                while b"stuck-boot" not in b"".join(frames):
                    assert time.monotonic() < deadline, f"the table never arrived; websockets: {sockets}"
                    page.wait_for_timeout(100)
                page.mouse.click(500, 300)
                n = len(frames)
                page.keyboard.press("?")
                while b"xcinspect keys" not in b"".join(frames[n:]):
                    assert time.monotonic() < deadline, "the help screen never arrived"
                    page.wait_for_timeout(100)
                fonts = page.evaluate("document.fonts.check('16px \"Roboto Mono\"')")
            finally:
                browser.close()
    finally:
        fwd.close()
    assert sockets and all(u.startswith(f"ws://{origin}/ws") for u in sockets), sockets
    assert elsewhere == []
    assert fonts  # the bundled font, not Google's
