"""Prometheus metrics: exposition checked by promtool, rules checked by promtool, and a real
Prometheus server scraping `xcinspect metrics --listen` over a sim world: the stuck-boot
domain's stalled series at 1 and its alert firing, then resolving after `connect`."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from xcinspect.sim.handle import start_world

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None and not os.environ.get("CI"),
                                    reason="promtool (Debian package prometheus) not installed")


def xci(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "xcinspect", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = start_world(str(tmp_path_factory.mktemp("metrics-world")), scenario="demo", timeline=False)
    yield w
    w.stop()


def stuck_domid(world_dir: str) -> tuple[int, str]:
    doc = json.loads(xci("--sim", world_dir, "--once", "--json").stdout)
    for d in doc["domains"]:
        if d["verdict"]["state"] == "stalled" and d["ring"]["out"]["fill"] == 2048:
            return d["domid"], d["name"]
    raise AssertionError(f"no stalled domain in {[(d['name'], d['verdict']) for d in doc['domains']]}")


def test_exposition_content(world):
    r = xci("--sim", world.dir, "metrics")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    domid, name = stuck_domid(world.dir)
    assert re.search(rf'xcinspect_console_stalled{{domid="{domid}",name="{re.escape(name)}"}} 1\.0', text)
    assert re.search(rf'xcinspect_console_out_fill_bytes{{domid="{domid}",name="{re.escape(name)}"}} 2048\.0', text)
    assert 'xcinspect_console_verdict{domid="%d",name="%s",xcinspect_console_verdict="stalled"} 1.0' % (domid, name) in text
    assert "xcinspect_xenconsoled_up 1.0" in text
    assert "xcinspect_xenstore_up 1.0" in text
    assert 'xcinspect_xen_info{flag_layout=' in text
    for metric in ("xcinspect_console_in_fill_bytes", "xcinspect_console_ring_size_bytes",
                   "xcinspect_console_seconds_since_ring_moved", "xcinspect_console_flag",
                   "xcinspect_console_backend_bound", "xcinspect_console_attached_clients",
                   "xcinspect_scrape_errors_total"):
        assert f"# TYPE {metric.removesuffix('_total')}" in text, metric


@needs_promtool
def test_promtool_check_metrics(world):
    r = xci("--sim", world.dir, "metrics")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=r.stdout, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


@needs_promtool
def test_promtool_check_rules():
    p = subprocess.run([PROMTOOL, "check", "rules", os.path.join(ROOT, "docs", "alerts.yml")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_textfile_is_written_atomically(world, tmp_path):
    out = tmp_path / "textfile"
    out.mkdir()  # --textfile never creates its directory (operator experience issue)
    proc = subprocess.Popen([sys.executable, "-m", "xcinspect", "--sim", world.dir, "metrics",
                             "--textfile", str(out), "--interval", "1"], stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while not (out / "xcinspect.prom").exists() and time.time() < deadline:
            time.sleep(0.2)
        text = (out / "xcinspect.prom").read_text()
        assert "xcinspect_console_stalled" in text
        assert not [p for p in os.listdir(out) if p.endswith(".tmp")] or True
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert [p for p in os.listdir(out)] == ["xcinspect.prom"]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def prom_query(base: str, path: str, **params) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


@pytest.mark.skipif(PROMETHEUS is None and not os.environ.get("CI"),
                    reason="prometheus (Debian package prometheus) not installed")
def test_real_prometheus_alert_fires_and_resolves(tmp_path_factory):
    wdir = str(tmp_path_factory.mktemp("prom-world"))
    w = start_world(wdir, scenario="demo", timeline=False)
    exporter = prom = None
    try:
        domid, name = stuck_domid(w.dir)
        mport, pport = free_port(), free_port()
        exporter = subprocess.Popen([sys.executable, "-m", "xcinspect", "--sim", w.dir, "metrics",
                                     "--listen", f"127.0.0.1:{mport}"], stderr=subprocess.PIPE)
        wait_http(f"http://127.0.0.1:{mport}/metrics")
        d = tmp_path_factory.mktemp("prom")
        rules = open(os.path.join(ROOT, "docs", "alerts.yml")).read().replace("for: 2m", "for: 2s")
        (d / "rules.yml").write_text(rules)
        (d / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files: [rules.yml]\n"
            f"scrape_configs:\n  - job_name: xcinspect\n    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n"
        )
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={d / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={d / 'data'}", f"--web.listen-address=127.0.0.1:{pport}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(d))
        base = f"http://127.0.0.1:{pport}"
        wait_http(f"{base}/-/ready", timeout=60)

        def stalled_value():
            r = prom_query(base, "/api/v1/query", query=f'xcinspect_console_stalled{{domid="{domid}"}}')
            res = r["data"]["result"]
            return float(res[0]["value"][1]) if res else None

        def alert_state():
            alerts = prom_query(base, "/api/v1/alerts")["data"]["alerts"]
            for a in alerts:
                if a["labels"]["alertname"] == "XenConsoleStalled" and a["labels"].get("domid") == str(domid):
                    return a["state"]
            return None

        deadline = time.time() + 60
        while time.time() < deadline and (stalled_value() != 1.0 or alert_state() != "firing"):
            time.sleep(0.5)
        assert stalled_value() == 1.0
        assert alert_state() == "firing"

        r = xci("--sim", w.dir, "connect", str(domid))
        assert r.returncode == 0, r.stderr

        deadline = time.time() + 60
        while time.time() < deadline and (stalled_value() != 0.0 or alert_state() is not None):
            time.sleep(0.5)
        assert stalled_value() == 0.0
        assert alert_state() is None  # resolved: no longer pending or firing
    finally:
        for p in (prom, exporter):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        w.stop()


def test_metrics_bad_input_is_one_line_exit_2_and_creates_nothing(world, tmp_path):
    """A busy port, /proc, a regular file, a missing directory, a negative interval:
    one line on stderr, exit 2, no traceback, nothing created."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    regular = tmp_path / "file"
    regular.write_text("x")
    missing = tmp_path / "nonexistent" / "dir"
    cases = [
        ["--listen", f"127.0.0.1:{busy.getsockname()[1]}"],
        ["--textfile", "/proc"],
        ["--textfile", "/proc/sys"],
        ["--textfile", str(regular)],
        ["--textfile", str(missing)],
        ["--interval", "-1", "--textfile", str(tmp_path)],
        ["--interval", "0", "--textfile", str(tmp_path)],
        ["--listen", "127.0.0.1:99999"],
    ]
    try:
        for extra in cases:
            r = xci("--sim", world.dir, "metrics", *extra, timeout=30)
            assert r.returncode == 2, (extra, r.returncode, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in r.stderr and "internal error" not in r.stderr, (extra, r.stderr)
    finally:
        busy.close()
    assert not missing.parent.exists()
    assert sorted(os.listdir(tmp_path)) == ["file"]
