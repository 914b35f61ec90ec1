"""The CLI against a running sim world: batch output, actions, and every bad-input case."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from xcinspect.platform.xenstore import XsClient
from xcinspect.sim.handle import start_world


def xci(*args, input=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "xcinspect", *args], capture_output=True, text=True,
                          input=input, timeout=timeout)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = start_world(str(tmp_path_factory.mktemp("cli-world")), scenario="demo", timeline=False)
    yield w
    w.stop()


def once(world) -> dict:
    r = xci("--sim", world.dir, "--once", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def by_name(doc) -> dict:
    return {d["name"]: d for d in doc["domains"]}


def wait_state(world, name, states, timeout=20.0) -> dict:
    deadline = time.time() + timeout
    while True:
        d = by_name(once(world))[name]
        if d["verdict"]["state"] in states or time.time() > deadline:
            return d
        time.sleep(0.5)


def test_once_json_shape_and_demo_verdicts(world):
    doc = once(world)
    assert doc["host"]["xen_version"] == "sim"
    assert doc["host"]["flag_layout"] in ("none", "rfc-v2", "xen-4.21")
    doms = by_name(doc)
    for d in doc["domains"]:
        assert set(d) >= {"domid", "name", "console", "ring", "verdict"}
        assert set(d["console"]) == {"ring_ref", "port", "tty", "type"}
        assert set(d["ring"]) == {"out", "in", "valid", "flag"}
        assert set(d["ring"]["out"]) == {"cons", "prod", "fill", "size"}
        assert set(d["ring"]["flag"]) == {"layout", "raw", "state", "byte"}
        assert d["ring"]["flag"]["state"] in ("connected", "disconnected", "invalid", "n/a")
        assert set(d["verdict"]) == {"state", "reason", "flag_effect"}
    stuck = doms["stuck-boot"]
    assert stuck["verdict"]["state"] == "stalled"
    assert stuck["ring"]["out"]["fill"] == 2048
    assert "no backend bound" in stuck["verdict"]["reason"]
    assert doms["web01"]["verdict"]["state"] in ("serviced", "idle")
    assert doms["web01"]["console"]["tty"].startswith("/dev/pts/")
    assert doms["db01"]["ring"]["flag"] == {"layout": "xen-4.21", "raw": 0, "state": "connected", "byte": 0}
    assert doms["rfc-guest"]["ring"]["flag"] == {"layout": "rfc-v2", "raw": 1, "state": "connected", "byte": 1}
    assert doms["hyperlaunch"]["verdict"]["state"] == "disconnected"
    assert doms["hyperlaunch"]["ring"]["flag"]["state"] == "disconnected"
    corrupt = wait_state(world, "corrupt", {"corrupt"})
    assert corrupt["verdict"]["state"] == "corrupt" and corrupt["ring"]["valid"] is False
    chatty = wait_state(world, "chatty", {"backlog"})
    assert chatty["verdict"]["state"] == "backlog"


def test_flag_layout_override_applies_to_every_domain(world):
    r = xci("--sim", world.dir, "--once", "--json", "--flag-layout", "rfc-v2")
    doc = json.loads(r.stdout)
    assert doc["host"]["flag_layout"] == "rfc-v2"
    assert {d["ring"]["flag"]["layout"] for d in doc["domains"]} == {"rfc-v2"}
    # db01's 4.21 "connected" (0) reads as disconnected under the RFC's values
    assert by_name(doc)["db01"]["ring"]["flag"]["state"] == "disconnected"


def test_ndjson_stream(world):
    r = xci("--sim", world.dir, "--json", "--interval", "0.3", "--count", "3")
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    docs = [json.loads(x) for x in lines]
    assert all("domains" in d and "time" in d for d in docs)
    assert docs[0]["time"] < docs[1]["time"] < docs[2]["time"]


def test_batch_table(world):
    r = xci("--sim", world.dir, "--batch", "--count", "2", "--interval", "0.2")
    assert r.returncode == 0
    assert r.stdout.count("DOMID NAME") == 2
    assert "stuck-boot" in r.stdout and "stalled" in r.stdout
    assert "\x1b" not in r.stdout


def test_connect_stuck_boot_then_disconnect(world):
    before = by_name(once(world))["stuck-boot"]
    r = xci("--sim", world.dir, "connect", "stuck-boot")
    assert r.returncode == 0, r.stderr
    log = [ln for ln in r.stdout.splitlines() if ln.startswith("log: ")][0][5:]
    d = wait_state(world, "stuck-boot", {"serviced", "idle"})
    assert d["verdict"]["state"] in ("serviced", "idle"), d["verdict"]
    assert "xcinspect" in d["verdict"]["reason"]
    # the guest resumed: its producer index moved past the full ring
    time.sleep(1.5)
    after = by_name(once(world))["stuck-boot"]
    assert after["ring"]["out"]["prod"] != before["ring"]["out"]["prod"]
    data = open(log, "rb").read()
    assert len(data) > 2048 and b"tick" in data
    # connecting twice is refused with the reason
    r2 = xci("--sim", world.dir, "connect", "stuck-boot")
    assert r2.returncode == 1 and "already serviced by xcinspect" in r2.stderr
    # attach goes through our own backend
    r3 = xci("--sim", world.dir, "attach", "stuck-boot", "--linger", "1.5", input="echo XC-$((6*7))\n")
    assert "XC-42" in r3.stdout, r3.stdout[-500:]
    r4 = xci("--sim", world.dir, "disconnect", "stuck-boot")
    assert r4.returncode == 0, r4.stderr
    d = wait_state(world, "stuck-boot", {"no-backend", "stalled"})
    assert d["verdict"]["state"] in ("no-backend", "stalled")
    deadline = time.time() + 15  # the guest ticks every few seconds; nobody drains it any more
    while d["ring"]["out"]["fill"] == 0 and time.time() < deadline:
        time.sleep(0.5)
        d = by_name(once(world))["stuck-boot"]
    assert d["ring"]["out"]["fill"] > 0
    assert d["verdict"]["state"] in ("no-backend", "stalled")


def test_connect_refused_when_serviced(world):
    r = xci("--sim", world.dir, "connect", "web01")
    assert r.returncode == 1
    assert "already serviced by xenconsoled" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_attach_round_trip_via_pty(world):
    r = xci("--sim", world.dir, "attach", "web01", "--linger", "1.5", input="echo X-ROUNDTRIP\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "X-ROUNDTRIP" in lines, lines[-5:]
    assert "\x1b" not in r.stdout


def test_attach_refused_while_held_then_forced(world):
    holder = subprocess.Popen([sys.executable, "-m", "xcinspect", "--sim", world.dir, "attach", "db01"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = os.path.join(world.dir, "lock", "xenconsole.2")
        deadline = time.time() + 20
        while not os.path.exists(lock) and time.time() < deadline:
            time.sleep(0.1)
        r = xci("--sim", world.dir, "attach", "db01", input="")
        assert r.returncode == 1 and "is attached by pid" in r.stderr
        r = xci("--sim", world.dir, "disconnect", "db01")
        assert r.returncode == 1 and "force" in r.stderr
        r = xci("--sim", world.dir, "disconnect", "db01", "--force")
        assert r.returncode == 0, r.stderr
        assert holder.wait(timeout=10) is not None
        r = xci("--sim", world.dir, "attach", "db01", "--linger", "1", input="echo AFTER\n")
        assert "AFTER" in r.stdout.splitlines()
    finally:
        if holder.poll() is None:
            holder.kill()
    audit = [json.loads(x) for x in open(os.path.join(world.dir, "audit.log"))]
    assert any(a["action"] == "attach" and a["result"] == "refused" for a in audit)
    assert any(a["action"] == "disconnect" and a.get("how") == "kick" for a in audit)


def test_read_only_refuses_actions(world):
    for cmd in (["connect", "hyperlaunch"], ["disconnect", "web01", "--force"], ["attach", "web01"]):
        r = xci("--sim", world.dir, "--read-only", *cmd, input="")
        assert r.returncode == 1, cmd
        assert "read-only" in r.stderr


def test_unknown_domain(world):
    for cmd in (["connect", "nosuch"], ["attach", "999"], ["disconnect", "nosuch"]):
        r = xci("--sim", world.dir, *cmd, input="")
        assert r.returncode == 2, (cmd, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_malformed_xenstore_value_isolates_one_domain(world):
    xs = XsClient(world.xenstore_path)
    path = "/local/domain/8/console/port"
    good = xs.read(path)
    try:
        xs.write(path, "not-a-port")
        deadline = time.time() + 10
        while time.time() < deadline:
            doms = by_name(once(world))
            if doms["ephemeral"]["verdict"]["state"] == "error":
                break
            time.sleep(0.3)
        assert doms["ephemeral"]["verdict"]["state"] == "error"
        assert "console/port is 'not-a-port', not a number" in doms["ephemeral"]["verdict"]["reason"]
        assert doms["web01"]["verdict"]["state"] in ("serviced", "idle")
    finally:
        xs.write(path, good)
        xs.close()


def test_missing_xenstore_socket(tmp_path, world):
    fake = tmp_path / "world"
    fake.mkdir()
    shutil.copy(os.path.join(world.dir, "world.json"), fake / "world.json")
    r = xci("--sim", str(fake), "--once", "--json")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "xenstore" in r.stderr.lower() and "Traceback" not in r.stderr


def _audit(world):
    return [json.loads(x) for x in open(os.path.join(world.dir, "audit.log"))]


def test_flag_both_ways_is_audited_and_undone(world):
    """`xcinspect flag` sets the 4.21 flag of a serviced console to disconnected -- the
    Linux >= 7.1 guest's output is thrown away -- and back, each write in the audit log."""
    r = xci("--sim", world.dir, "flag", "db01", "disconnected")
    assert r.returncode == 0, r.stderr
    assert "to disconnected (raw 0 -> 1)" in r.stdout and "DROP their console output" in r.stderr
    d = by_name(json.loads(xci("--sim", world.dir, "--once", "--json", "--window", "1.5").stdout))["db01"]
    assert d["ring"]["flag"] == {"layout": "xen-4.21", "raw": 1, "state": "disconnected", "byte": 1}
    assert d["verdict"]["state"] == "disconnected" and d["verdict"]["flag_effect"] == "drops-output"
    r = xci("--sim", world.dir, "flag", "db01", "disconnected")
    assert r.returncode == 1 and "already says disconnected" in r.stderr
    r = xci("--sim", world.dir, "flag", "db01", "connected")
    assert r.returncode == 0 and "to connected (raw 1 -> 0)" in r.stdout, r.stderr
    recs = [a for a in _audit(world) if a["action"] == "flag" and a["domid"] == world.domid("db01")]
    ok = [a for a in recs if a["result"] == "ok"]
    assert [(a["state"], a["before"]["raw"], a["after"]["raw"]) for a in ok[-2:]] == [
        ("disconnected", 0, 1), ("connected", 1, 0)]
    assert any(a["result"] == "refused" for a in recs)
    # no flag on a layout-none console: refused, one line, nothing written
    r = xci("--sim", world.dir, "flag", "web01", "disconnected")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "'none'" in r.stderr


def test_connect_sets_a_disconnected_flag_to_connected(world):
    """hyperlaunch: a 4.21 domain nobody connected (flag 1, its guest dropping): connect
    says in its plan that it will set the flag, and afterwards the flag says connected."""
    d = by_name(once(world))["hyperlaunch"]
    assert d["ring"]["flag"]["state"] == "disconnected"
    r = xci("--sim", world.dir, "connect", "hyperlaunch")
    assert r.returncode == 0, r.stderr
    d = wait_state(world, "hyperlaunch", {"serviced", "idle", "backlog"})
    assert d["ring"]["flag"]["state"] == "connected", d
    # its backend stops like xenconsoled would: the flag is left connected (not muted again)
    assert xci("--sim", world.dir, "disconnect", "hyperlaunch").returncode == 0
    time.sleep(1.0)
    assert by_name(once(world))["hyperlaunch"]["ring"]["flag"]["state"] == "connected"


def test_check_exit_codes(world, tmp_path):
    """`xcinspect check`: 1 while a console is stalled (the demo has one), with one line per
    problem console; 2 for an unusable environment."""
    r = xci("--sim", world.dir, "check")
    assert r.returncode == 1, r.stderr
    assert "with a problem" in r.stdout.splitlines()[0]
    assert any("corrupt: corrupt: out indices corrupt" in ln for ln in r.stdout.splitlines()), r.stdout
    r = xci("--sim", world.dir, "check", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["problems"] >= 1
    r = xci("--sim", str(tmp_path / "nothing"), "check")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_batch_has_a_timestamp_per_block_and_an_attached_column(world):
    r = xci("--sim", world.dir, "--batch", "--count", "2", "--interval", "0.2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    stamps = [ln for ln in lines if ln.startswith("# ")]
    assert len(stamps) == 2 and all(time.strptime(ln[2:], "%Y-%m-%dT%H:%M:%S%z") for ln in stamps)
    heads = [ln for ln in lines if ln.lstrip().startswith("DOMID")]
    assert heads and all("ATTACHED" in h for h in heads)
    # someone holds web01's console: the column says who, by name and pid
    lock = world.platform().lock_path(world.domid("web01"))
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    with open(lock, "a") as f:
        import fcntl

        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = xci("--sim", world.dir, "--batch", "--once")
    row = [ln for ln in r.stdout.splitlines() if " web01 " in ln][0]
    assert f":{os.getpid()}" in row


def test_one_look_registers_no_watches(world, monkeypatch, capsys):
    """--once and check look once: no watch registered (a real xenstored fires each one
    back, two round trips per domain for nothing), and the same domains and verdicts as a
    watching monitor sees."""
    from xcinspect import cli
    from xcinspect.engine.monitor import Monitor, sample_window
    from xcinspect.platform.xenstore import XsClient
    from xcinspect.sim.platform import SimPlatform

    watched: list = []
    real = XsClient.watch_many
    monkeypatch.setattr(XsClient, "watch_many", lambda self, pairs: (watched.extend(pairs), real(self, pairs)))

    seen = {}
    for watch in (True, False):
        watched.clear()
        mon = Monitor(SimPlatform(world.dir), watch=watch)
        mon.open()
        try:
            sample_window(mon, 0)
            seen[watch] = {e.domid: e.name for e in mon.views()}
            assert mon.tick() is not None
        finally:
            mon.close()
        assert bool(watched) == watch, watched
    assert seen[True] == seen[False] and len(seen[False]) >= 8

    watched.clear()
    assert cli.main(["--sim", world.dir, "--once", "--json", "--window", "0"]) == 0
    assert {d["name"] for d in json.loads(capsys.readouterr().out)["domains"]} == set(seen[False].values())
    assert cli.main(["--sim", world.dir, "--window", "0", "check"]) in (0, 1)
    assert watched == []
    # a stream keeps watching: it must see domains come and go
    assert cli.main(["--sim", world.dir, "--json", "--count", "2", "--interval", "0.1"]) == 0
    assert watched
