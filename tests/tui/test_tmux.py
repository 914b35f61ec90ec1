"""The installed ``xcinspect --sim`` in a real terminal (tmux): navigate, attach, type a
command, escape, connect the stuck domain, quit -- checking the screen text each step.

Needs tmux and the ``xcinspect`` console script on PATH (``pip install -e .``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest

TMUX = shutil.which("tmux")
XCINSPECT = shutil.which("xcinspect")

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)"),
    pytest.mark.skipif(XCINSPECT is None, reason="the xcinspect console script is not installed (pip install -e .)"),
]


class Tmux:
    def __init__(self, tmp_path) -> None:
        self.sock = f"xci-{uuid.uuid4().hex[:8]}"
        self.name = "xci"
        self.tmp = tmp_path

    def tmux(self, *args: str, check: bool = True) -> str:
        out = subprocess.run([TMUX, "-L", self.sock, "-f", "/dev/null", *args], capture_output=True, text=True,
                             timeout=10)
        if check and out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self, command: str, width: int = 120, height: int = 40) -> None:
        # (TMPDIR stays short: the demo world's unix sockets live under it)
        env = f"env -u NO_COLOR -u TEXTUAL_THEME TERM=xterm-256color XDG_CONFIG_HOME={self.tmp}/xdg"
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                  f"{env} {command}; echo XCI-EXIT=$?; sleep 60")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)

    def wait(self, pred, timeout: float = 20.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if pred(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")

    def wait_text(self, *texts: str, timeout: float = 20.0) -> str:
        return self.wait(lambda s: all(t in s for t in texts), timeout, " and ".join(map(repr, texts)))

    def kill(self) -> None:
        self.tmux("kill-server", check=False)


def line_with(screen: str, text: str) -> str:
    for line in screen.splitlines():
        if text in line:
            return line
    return ""


@pytest.fixture
def term(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.kill()


def test_installed_xcinspect_sim_in_tmux(term):
    term.start("xcinspect --sim")
    # the table: every demo domain, the stuck one stalled
    s = term.wait_text("web01", "stuck-boot", "verdict", timeout=30)
    s = term.wait(lambda s: "stalled" in line_with(s, "stuck-boot"), what="stuck-boot stalled")
    # problems first: the default sort is by verdict, most urgent at the top
    names = [line.split()[1] for line in s.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert names.index("corrupt") < names.index("stuck-boot") < names.index("web01"), names
    # the cursor starts on the top row; the detail panel follows the cursor
    top = next(line.split()[:2] for line in s.splitlines() if line.split()[:1] and line.split()[0].isdigit())
    term.wait_text(f"dom {top[0]} {top[1]}")
    term.keys("Down")
    term.wait(lambda s: f"dom {top[0]} {top[1]}" not in s, what="the cursor to move down")
    term.keys("Up")
    term.wait_text(f"dom {top[0]} {top[1]}")
    # to web01 by the filter, attach, type a command, escape
    term.keys("/")
    term.wait_text("filter: name, domid or verdict")
    term.keys("w", "e", "b", "0", "1", "Enter")
    term.wait_text("dom 1 web01", "filter 'web01'")
    term.keys("Escape")  # the filter goes; the cursor stays on web01
    term.wait(lambda s: "filter 'web01'" not in s and "dom 1 web01" in s, what="filter cleared")
    term.keys("a")
    term.wait_text("Escape character is ^]", "keys go to the guest")
    term.wait_text("login")
    term.type("uname -a")
    term.keys("Enter")
    term.wait_text("Linux web01")
    term.keys("C-]")
    s = term.wait_text("verdict", "out fill")
    assert "keys go to the guest" not in s
    # connect the stuck domain: filter to it, c, confirm
    # typed ahead, in one write as a fast typist or a paste does: "/stuck", Enter, c.
    # (The slash and Enter used to move focus through a message: the "s" of "stuck" went
    # to the table, the "c" to the filter.)
    term.keys("/", "s", "t", "u", "c", "k", "Enter", "c")
    s = term.wait_text("Connect the console of dom 4 (stuck-boot)?")
    assert "stuckc" not in s
    term.keys("y")
    term.wait_text("filter 'stuck'")  # (the status bar under the dialog may lag a frame)
    term.wait(lambda s: "serviced" in line_with(s, "stuck-boot"), timeout=30, what="stuck-boot serviced")
    # quit: the demo world goes away with the app
    term.keys("q")
    term.wait_text("XCI-EXIT=0", timeout=30)


def test_bad_theme_is_one_line_and_exit_2(term):
    term.start("xcinspect --sim --theme mauve 2>&1")
    s = term.wait_text("XCI-EXIT=2", timeout=30)
    errors = [line for line in s.splitlines() if line.startswith("xcinspect:")]
    assert len(errors) == 1 and "unknown theme 'mauve'" in errors[0]


def test_high_contrast_theme_and_narrow_terminal(term):
    term.start("xcinspect --sim --theme high-contrast", width=80, height=24)
    s = term.wait_text("web01", "stuck-boot", timeout=30)
    assert "Connect" in s and "Quit" in s  # the footer fits at 80 columns
    term.keys("q")
    term.wait_text("XCI-EXIT=0", timeout=30)

