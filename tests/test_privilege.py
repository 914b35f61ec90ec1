"""Privilege and input checks, and the audit log.

* Not root (a real uid 65534 process on a host that looks like dom0), not dom0 (root on
  this machine, which is no dom0), a wrong ``--page`` file (missing, empty, short, long,
  a directory, a FIFO, a device), a bad config file, an unknown theme or a broken theme
  file: **one line on stderr, exit 2**, nothing on stdout, no traceback. Where the TUI
  would start, the command runs on a pty and must fail before the screen switches (no
  escape sequence reaches the terminal).
* Every action -- connect, attach, disconnect, set-flag -- is in the audit log, whether
  it went through, was refused (already serviced, nothing to do, read-only mode, unknown
  domain) or failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from hostile_corpus import PtyRun

PY = sys.executable


def xci(*args: str, env: dict | None = None, timeout: float = 60, input_text: str | None = None):
    return subprocess.run([PY, "-m", "xcinspect", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, input=input_text if input_text is not None else "")


def one_line(r, code: int = 2) -> str:
    """The command failed the way an operator wants it to: one line, the exit status."""
    assert r.returncode == code, (r.returncode, r.stdout[-300:], r.stderr[-600:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert lines[0].startswith("xcinspect: ")
    return lines[0]


def env_with(tmp_path, **extra) -> dict:
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), TERM="xterm-256color")
    for var in ("NO_COLOR", "TEXTUAL_DRIVER", "XCINSPECT_DEBUG", "XCINSPECT_SIM_DIR"):
        env.pop(var, None)
    env.update(extra)
    return env


def tui_fails_before_the_screen(argv: list[str], env: dict) -> str:
    """Run what would start the TUI on a pty: one line, exit 2, and no escape sequence
    (the alternate screen was never entered)."""
    run = PtyRun([PY, "-m", "xcinspect", *argv], env=env)
    rc = run.finish(60)
    out = bytes(run.data).decode(errors="replace")
    assert rc == 2, out
    assert "\x1b" not in out, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xcinspect: "), out
    return lines[0]


# -- not root, not dom0 ---------------------------------------------------------------------------
AS_NOBODY = textwrap.dedent("""
    # Import as root (this test's Python lives where uid 65534 cannot read), then become
    # uid 65534 for real and run the CLI as an unprivileged user would.
    import os, sys
    from xcinspect import cli
    import xcinspect.platform.dom0, xcinspect.engine.monitor, xcinspect.engine.actions, xcinspect.platform.xenlibs
    import xcinspect.metrics, xcinspect.tui.app, xcinspect.tui.serve, xcinspect.engine.gc_policy
    # ... and its data files: the shipped themes (a clone in a 0700 directory, as
    # `mktemp -d` makes, is unreadable to uid 65534 as a whole).
    from xcinspect.tui import themes
    _shipped = themes.load_themes([themes.shipped_dir()])
    _load = themes.load_themes
    themes.load_themes = lambda dirs=None: {**_shipped, **_load([themes.user_dir()])} if dirs is None else _load(dirs)
    xcinspect.tui.app.load_themes = themes.load_themes
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    assert os.geteuid() == 65534
    sys.exit(cli.main(sys.argv[1:]))
""")


def fake_dom0_namespace(inner: list[str]) -> list[str]:
    """``inner`` in a private mount namespace whose /proc says this is dom0
    (/proc/xen/capabilities = control_d), so the root check is the one that speaks."""
    script = ("mount -t tmpfs -o size=64k xci-fake-proc /proc && mkdir /proc/xen && "
              "echo control_d > /proc/xen/capabilities && exec \"$@\"")
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *inner]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs none /mnt && test -d /proc/self"], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs root and mount namespaces")
@pytest.mark.parametrize("args", [["--once", "--json"], ["--batch"], ["connect", "3"], ["attach", "3"],
                                  ["disconnect", "3", "--force"], ["metrics"]])
def test_not_root(args):
    r = subprocess.run(fake_dom0_namespace([PY, "-c", AS_NOBODY, *args]), capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    line = one_line(r)
    assert line == "xcinspect: xcinspect needs root on dom0 (running as uid 65534) (run it with sudo, or try --sim for a demo)"


@pytest.mark.skipif(not _can_unshare(), reason="needs root and mount namespaces")
def test_not_root_tui_fails_before_the_screen(tmp_path):
    env = env_with(tmp_path, XDG_CONFIG_HOME="/nonexistent/xcinspect-test")  # readable by nobody: absent
    run = PtyRun(fake_dom0_namespace([PY, "-c", AS_NOBODY]), env=env)
    assert run.finish(60) == 2
    out = bytes(run.data).decode(errors="replace")
    assert "\x1b" not in out and out.strip().splitlines() == [
        "xcinspect: xcinspect needs root on dom0 (running as uid 65534) (run it with sudo, or try --sim for a demo)"]


@pytest.mark.skipif(os.path.exists("/proc/xen/capabilities"), reason="this machine may be a dom0")
@pytest.mark.parametrize("args", [["--once", "--json"], ["--batch", "-n", "1"], ["connect", "3"], ["attach", "3"],
                                  ["disconnect", "3"], ["metrics"], ["serve"], ["_backend", "3"]])
def test_not_dom0(args):
    r = xci(*args)
    if args[0] == "_backend":  # the internal backend speaks as itself, to connect's status pipe
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [
            "xcinspect backend: this is not a Xen dom0 (no control_d in /proc/xen/capabilities)"]
        return
    line = one_line(r)
    assert line.startswith("xcinspect: this is not a Xen dom0 (no control_d in /proc/xen/capabilities)")
    assert "--sim" in line


@pytest.mark.skipif(os.path.exists("/proc/xen/capabilities"), reason="this machine may be a dom0")
def test_not_dom0_tui_fails_before_the_screen(tmp_path):
    line = tui_fails_before_the_screen([], env_with(tmp_path))
    assert line.startswith("xcinspect: this is not a Xen dom0")


# -- input: --page ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing", "empty", "short", "long", "directory", "fifo", "device"])
def test_wrong_page_file(tmp_path, case):
    p = tmp_path / "page.bin"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "short":
        p.write_bytes(b"\0" * 4095)
    elif case == "long":
        p.write_bytes(b"\0" * 4097)
    elif case == "directory":
        p.mkdir()
    elif case == "fifo":
        os.mkfifo(p)
    elif case == "device":
        p = "/dev/zero"
    line = one_line(xci("--page", str(p), timeout=20))
    want = {
        "missing": "No such file or directory", "empty": "0 bytes, expected 4096", "short": "4095 bytes",
        "long": "4097 bytes", "directory": "a directory", "fifo": "no page dump arrived within",
        "device": "not a regular file or a pipe",
    }[case]
    assert want in line


# -- input: config and themes --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from xcinspect.sim.handle import start_world

    d = tmp_path_factory.mktemp("priv-world")
    os.chmod(d, 0o755)
    w = start_world(str(d), scenario="demo", timeline=False)
    try:
        yield w
    finally:
        w.stop()


BAD_CONFIGS = {
    "not-toml": ("theme = [unclosed\n", "is not valid TOML"),
    "unknown-key": ("colour = 'red'\n", "unknown setting 'colour'"),
    "bad-interval": ("interval = -3\n", "interval must be a number"),
    "bad-keymap-id": ("[keymap]\nlaunch-missiles = 'x'\n", "unknown binding id 'launch-missiles'"),
    "bad-escape": ("[attach]\nescape = '^1'\n", "bad escape key"),
    "unknown-theme": ("theme = 'no-such-theme'\n", "unknown theme 'no-such-theme'"),
    "binary-junk": ("\x00\x1b]0;pwned\x07\n", "is not valid TOML"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_file(world, tmp_path, name):
    text, want = BAD_CONFIGS[name]
    cfg = tmp_path / "xdg" / "xcinspect" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(text)
    line = tui_fails_before_the_screen(["--sim", world.dir], env_with(tmp_path))
    assert want in line
    if name != "unknown-theme":
        assert str(cfg) in line


def test_unknown_theme(world, tmp_path):
    line = tui_fails_before_the_screen(["--sim", world.dir, "--theme", "no-such-theme"], env_with(tmp_path))
    assert "unknown theme 'no-such-theme'" in line and "choose from" in line


def test_broken_theme_file(world, tmp_path):
    bad = tmp_path / "xdg" / "xcinspect" / "themes" / "mine.toml"
    bad.parent.mkdir(parents=True)
    bad.write_text("name = 'mine'\nprimary = 'not a colour!'\n")
    line = tui_fails_before_the_screen(["--sim", world.dir, "--theme", "mine"], env_with(tmp_path))
    assert "mine.toml" in line and "is not a colour" in line


def test_serve_checks_config_and_theme_first(world, tmp_path):
    line = one_line(xci("--sim", world.dir, "--theme", "no-such-theme", "serve", "--port", "8765",
                        env=env_with(tmp_path), timeout=30))
    assert "unknown theme" in line


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.org"])
def test_serve_binds_loopback_only(world, tmp_path, host):
    """textual-serve has no authentication: anything but loopback is refused."""
    line = one_line(xci("--sim", world.dir, "serve", "--host", host, "--port", "8765",
                        env=env_with(tmp_path), timeout=30))
    assert f"serve binds to loopback only, not {host!r}" in line and "ssh -L" in line


@pytest.mark.parametrize("args,want", [
    (["--flag-layout", "bogus", "--once"], "invalid choice"),
    (["--no-such-option"], "unrecognized arguments"),
    (["--sim", "/nonexistent/world", "--once"], "no sim world at /nonexistent/world"),
    (["--interval", "soon"], "invalid float value"),
])
def test_bad_arguments(args, want):
    assert want in one_line(xci(*args, timeout=30))


# -- the audit log ------------------------------------------------------------------------------------------
def audit(world) -> list[dict]:
    try:
        with open(os.path.join(world.dir, "audit.log")) as f:
            return [json.loads(line) for line in f]
    except FileNotFoundError:
        return []


def test_every_action_is_audited_including_refused_ones(world):
    def run(*args, code, input=None):
        before = len(audit(world))
        r = subprocess.run([PY, "-m", "xcinspect", "--sim", world.dir, *args], capture_output=True, text=True,
                           timeout=60, input=input if input is not None else "")
        assert r.returncode == code, (args, r.returncode, r.stderr)
        new = audit(world)[before:]
        assert new, f"{args}: nothing in the audit log"
        for rec in new:
            assert {"time", "user", "uid", "pid", "platform", "action", "domid", "result", "detail"} <= set(rec)
        return new

    # refused: serviced by someone else, nothing to disconnect, read-only, unknown domain
    [rec] = run("connect", "web01", code=1)
    assert (rec["action"], rec["result"], rec["domid"]) == ("connect", "refused", 1)
    assert "already serviced by xenconsoled" in rec["detail"]
    [rec] = run("disconnect", "web01", code=1)
    assert (rec["action"], rec["result"]) == ("disconnect", "refused")
    for args in (["connect", "stuck-boot"], ["attach", "web01"], ["disconnect", "web01", "--force"]):
        [rec] = run("--read-only", *args, code=1)
        assert rec["result"] == "refused" and "read-only" in rec["detail"] and rec["action"] == args[0]
    for args in (["connect", "nosuch"], ["attach", "999"], ["disconnect", "nosuch"]):
        [rec] = run(*args, code=2)
        assert rec["action"] == args[0] and rec["result"] == "refused" and "no domain" in rec["detail"]
    # done: connect, attach through our backend, disconnect; a second connect is refused
    [rec] = run("connect", "stuck-boot", code=0)
    assert (rec["action"], rec["result"], rec["how"]) == ("connect", "ok", "backend")
    [rec] = run("connect", "stuck-boot", code=1)
    assert rec["result"] == "refused" and "already serviced by xcinspect" in rec["detail"]
    [rec] = run("attach", "stuck-boot", "--linger", "0.3", code=0, input="")
    assert (rec["action"], rec["result"]) == ("attach", "ok")
    [rec] = run("disconnect", "stuck-boot", code=0)
    assert (rec["action"], rec["result"], rec["how"]) == ("disconnect", "ok", "backend")
    # a destructive one that went through: the flag of a console xenconsoled services
    [rec] = run("disconnect", "db01", "--set-flag", code=0)
    assert (rec["action"], rec["result"], rec["how"]) == ("disconnect", "ok", "flag")
    # and the log says who: the user and uid of the operator
    assert all(r["uid"] == os.getuid() for r in audit(world))


async def test_tui_refusals_are_audited(world, tmp_path, monkeypatch):
    """In the TUI a refused action never reaches ``Actions.connect``: the plan refuses it
    first. It is audited all the same."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    from xcinspect.engine.actions import Actions
    from xcinspect.engine.monitor import Monitor
    from xcinspect.tui.app import make_app

    plat = world.platform()
    mon = Monitor(plat, facts_interval=0.2)
    mon.open()
    acts = Actions(plat, platform_args=["--sim", world.dir])
    app = make_app(mon, actions=acts, interval=0.2)
    before = len(audit(world))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(200):
                if any(r.name == "web01" and r.state in ("serviced", "idle") for r in app.main.rows):
                    break
                await pilot.pause(0.05)
            app.domain_command("show", world.domid("web01"))
            await pilot.pause()
            for key in ("c", "d"):  # connect a serviced console; disconnect with nobody attached
                await pilot.press(key)
                for _ in range(100):
                    if app.ops == 0:
                        break
                    await pilot.pause(0.05)
            await pilot.pause(0.2)
    finally:
        acts.xs.close()
        mon.close()
    new = [(a["action"], a["result"], a["domid"]) for a in audit(world)[before:]]
    assert ("connect", "refused", 1) in new and ("disconnect", "refused", 1) in new, new


@pytest.mark.parametrize("target", ["regular-file", "symlink-to-file", "fifo", "dev-null"])
def test_attach_opens_only_a_pty_named_by_xenstore(world, tmp_path, target):
    """console/tty is a xenstore value: attach (root) must not open whatever it names."""
    from xcinspect.platform.xenstore import XsClient

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    if target == "regular-file":
        path = str(victim)
    elif target == "symlink-to-file":
        path = str(tmp_path / "pts-lookalike")
        os.symlink(victim, path)
    elif target == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    else:
        path = "/dev/null"
    d = world.domid("web01")
    key = f"/local/domain/{d}/console/tty"
    xs = XsClient(world.xenstore_path)
    good = xs.read(key)
    xs.write(key, path)
    try:
        line = one_line(xci("--sim", world.dir, "attach", str(d), input_text="typed secret\n"), code=1)
    finally:
        xs.write(key, good)
        xs.close()
    assert "not a pty under /dev/pts" in line
    assert victim.read_bytes() == b"precious\n"
    assert audit(world)[-1]["action"] == "attach" and audit(world)[-1]["result"] == "refused"
    r = xci("--sim", world.dir, "attach", str(d), "--linger", "0.5", input_text="echo STILL-WORKS\n")
    assert "STILL-WORKS" in r.stdout
