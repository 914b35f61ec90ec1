"""`xcinspect fleet` with real parts: a real Prometheus on loopback scraping three sim
worlds, each with its own `xcinspect metrics --listen` and its own instance label."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from xcinspect.engine import fleet
from xcinspect.sim.handle import start_world

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None and not os.environ.get("CI"),
                                reason="prometheus (Debian package prometheus) not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def xci(*args, timeout=60, env=None):
    return subprocess.run([sys.executable, "-m", "xcinspect", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def wait_http(url, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def until(cond, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


class Fleet:
    """Three sim worlds (hosts a, b, c), their exporters and one Prometheus."""

    def __init__(self, root):
        self.procs = []
        self.worlds = {}
        self.exporters = {}
        targets = []
        for host in ("a", "b", "c"):
            w = start_world(str(root / f"world-{host}"), scenario="demo", timeline=False)
            self.worlds[host] = w
            port = free_port()
            p = subprocess.Popen([sys.executable, "-m", "xcinspect", "--sim", w.dir, "metrics",
                                  "--listen", f"127.0.0.1:{port}", "--interval", "1"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.exporters[host] = p
            wait_http(f"http://127.0.0.1:{port}/metrics")
            targets.append((host, port))
        d = root / "prom"
        d.mkdir()
        cfg = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
        for host, port in targets:
            cfg += (f"  - job_name: xcinspect-{host}\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{port}']\n        labels: {{dom0: 'dom0-{host}'}}\n")
        (d / "prometheus.yml").write_text(cfg)
        self.pport = free_port()
        self.prom = subprocess.Popen([PROMETHEUS, f"--config.file={d / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={d / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.pport}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(d))
        self.url = f"http://127.0.0.1:{self.pport}"
        wait_http(f"{self.url}/-/ready", timeout=60)

    def snapshot(self, host_label="dom0"):
        return fleet.gather(fleet.Prometheus(self.url), host_label)

    def close(self):
        for p in [self.prom, *self.exporters.values()]:
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        for w in self.worlds.values():
            w.stop()


@pytest.fixture(scope="module")
def world3(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    yield f
    f.close()


def stuck(snap, host):
    return [c for c in snap.problems if c.host == f"dom0-{host}" and c.name == "stuck-boot"]


def test_stuck_boots_of_every_host_with_the_host(world3):
    snap = until(lambda: (s := world3.snapshot()) and all(stuck(s, h) for h in "abc") and s,
                 what="the three stuck boots in Prometheus")
    assert {h.host for h in snap.hosts} == {"dom0-a", "dom0-b", "dom0-c"} and not snap.hosts_down
    for h in "abc":
        [c] = stuck(snap, h)
        assert c.verdict == "stalled" and c.fill == 2048 and c.seconds is not None
    # most urgent first; healthy consoles are counted, not listed
    sev = [fleet.health.SEVERITY[c.verdict] for c in snap.problems]
    assert sev == sorted(sev)
    assert all(c.problem for c in snap.problems) and snap.healthy > 0
    assert snap.counts()["stalled"] >= 3
    # the CLI: JSON and batch, with the check-style exit code
    r = xci("fleet", "--prometheus", world3.url, "--host-label", "dom0", "--once", "--json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["hosts_seen"] == 3 and doc["hosts_down"] == 0
    assert {(c["host"], c["name"]) for c in doc["consoles"]} >= {(f"dom0-{h}", "stuck-boot") for h in "abc"}
    r = xci("fleet", "--prometheus", world3.url, "--host-label", "dom0", "--batch")
    assert r.returncode == 1 and "3 hosts, 0 down" in r.stdout
    assert any("dom0-b" in ln and "stuck-boot" in ln and "stalled" in ln for ln in r.stdout.splitlines())


def test_connect_on_one_world_makes_its_row_go(world3):
    until(lambda: stuck(world3.snapshot(), "b"), what="b's stuck boot")
    r = xci("--sim", world3.worlds["b"].dir, "connect", "stuck-boot")
    assert r.returncode == 0, r.stderr
    snap = until(lambda: (s := world3.snapshot()) and not stuck(s, "b") and s,
                 what="b's stuck boot to leave the fleet view")
    assert stuck(snap, "a") and stuck(snap, "c")


def test_tmux_installed_fleet_enter_runs_the_command(world3, tmp_path):
    """The installed command in a real terminal: the stuck boots show with their host;
    Enter suspends the screen and runs the configured command, here a stand-in that
    records its arguments; the screen comes back."""
    tmux, xcinspect = shutil.which("tmux"), shutil.which("xcinspect")
    if not (tmux and xcinspect):
        pytest.skip("tmux or the installed xcinspect script is missing")
    rec = tmp_path / "args.json"
    stand_in = tmp_path / "open.py"
    stand_in.write_text(f"import json, sys\njson.dump(sys.argv[1:], open({str(rec)!r}, 'w'))\n")
    sock = f"xcf-{os.getpid()}"

    def t(*a):
        return subprocess.run([tmux, "-L", sock, "-f", "/dev/null", *a], capture_output=True, text=True,
                              timeout=10).stdout

    cmd = (f"env TERM=xterm-256color XDG_CONFIG_HOME={tmp_path}/xdg {xcinspect} fleet --prometheus {world3.url} "
           f"--host-label dom0 -d 1 --command '{sys.executable} {stand_in} {{host}} {{domid}} {{name}}'")
    t("new-session", "-d", "-s", "f", "-x", "120", "-y", "30", cmd + "; echo XCI-EXIT=$?; sleep 30")
    try:
        screen = until(lambda: (s := t("capture-pane", "-p", "-t", "f")) and "dom0-a" in s and "stuck-boot" in s
                       and s, timeout=60, what="the fleet screen")
        assert "hosts" in screen and "stalled" in screen
        t("send-keys", "-t", "f", "/")
        # keys typed before the slash's action has run go to the table (Textual runs a
        # binding after forwarding the key): type once the filter line is there, as a person does
        until(lambda: "filter: host" in t("capture-pane", "-p", "-t", "f"), timeout=30, what="the filter line")
        t("send-keys", "-t", "f", "-l", "dom0-a stuck")

        def rows():
            import re

            return [ln for ln in t("capture-pane", "-p", "-t", "f").splitlines()
                    if re.match(r"\s*dom0-\w+\s+\d+\s", ln)]

        try:
            until(lambda: (r := rows()) and all(ln.strip().startswith("dom0-a") and "stuck-boot" in ln for ln in r),
                  timeout=30, what="the filter")
        except AssertionError:
            raise AssertionError("the filter did not apply:\n" + t("capture-pane", "-p", "-t", "f")) from None
        t("send-keys", "-t", "f", "Enter")  # leave the filter line
        time.sleep(0.5)
        t("send-keys", "-t", "f", "Enter")  # open the selected console
        try:
            until(lambda: rec.exists(), timeout=20, what="the stand-in command")
        except AssertionError:
            raise AssertionError("Enter ran nothing:\n" + t("capture-pane", "-p", "-t", "f")) from None
        host, domid, name = json.loads(rec.read_text())
        assert (host, name) == ("dom0-a", "stuck-boot") and domid == str(world3.worlds["a"].domid("stuck-boot"))
        until(lambda: "exited 0" in t("capture-pane", "-p", "-t", "f"), timeout=20, what="the screen back")
        t("send-keys", "-t", "f", "q")
        until(lambda: "XCI-EXIT=0" in t("capture-pane", "-p", "-t", "f"), timeout=20, what="a clean exit")
    finally:
        t("kill-server")


def test_a_stopped_world_is_a_host_down(world3):
    """World b stops (its xenstored gone: the exporter says xenstore down), then world c's
    exporter stops too (its scrape fails): both hosts show as down, nothing of them listed."""
    world3.worlds["b"].stop()
    snap = until(lambda: (s := world3.snapshot()) and any(h.host == "dom0-b" for h in s.hosts_down) and s,
                 what="dom0-b down")
    [h] = [h for h in snap.hosts if h.host == "dom0-b"]
    assert "xenstore" in h.why or "scrape" in h.why
    p = world3.exporters["c"]
    p.terminate()
    p.wait(timeout=10)
    snap = until(lambda: (s := world3.snapshot()) and any(h.host == "dom0-c" for h in s.hosts_down) and s,
                 what="dom0-c down")
    assert not stuck(snap, "c")  # a host that is down lists nothing stale
    [h] = [h for h in snap.hosts if h.host == "dom0-c"]
    assert "scrape" in h.why
    r = xci("fleet", "--prometheus", world3.url, "--host-label", "dom0", "--once", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["hosts_down"] == 2


def test_unreachable_or_wrong_url_is_one_line_exit_2(tmp_path):
    port = free_port()
    for url in (f"http://127.0.0.1:{port}", "ftp://x", "not a url"):
        r = xci("fleet", "--prometheus", url, "--once", "--json", timeout=30)
        assert r.returncode == 2, (url, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    # an HTTP server that is not Prometheus
    srv = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                           cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        r = xci("fleet", "--prometheus", f"http://127.0.0.1:{port}", "--batch")
        assert r.returncode == 2 and "Prometheus" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    finally:
        srv.terminate()
        srv.wait()
    r = xci("fleet", "--once")
    assert r.returncode == 2 and "--prometheus" in r.stderr


def test_open_command_refuses_hostile_labels():
    c = fleet.FleetConsole(host="10.0.0.7:9731", domid=4, name="web01", verdict="stalled", fill=2048,
                           seconds=3.0, flag="n/a", flag_byte=0)
    assert fleet.open_command(fleet.DEFAULT_COMMAND, c) == ["ssh", "-t", "10.0.0.7", "xcinspect", "--select", "4"]
    for bad in ("-oProxyCommand=touch /tmp/x", "a b", "host;reboot", "^[]0;x"):
        with pytest.raises(fleet.FleetError):
            fleet.open_command(fleet.DEFAULT_COMMAND,
                               fleet.FleetConsole(bad, 4, "web01", "stalled", 2048, 3.0, "n/a", 0))
    with pytest.raises(fleet.FleetError, match="not plain"):
        fleet.open_command("ssh {host} xcinspect --select {name}",
                           fleet.FleetConsole("h1", 4, "x;reboot", "stalled", 2048, 3.0, "n/a", 0))
