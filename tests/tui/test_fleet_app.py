"""The fleet screen under pilot, against a stand-in Prometheus that speaks the real HTTP
API (``/api/v1/query`` instant vectors) with answers the test sets."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pilot_wait import until
from textual.widgets import DataTable

from xcinspect.engine import fleet
from xcinspect.tui.fleet import FleetApp


def series(metric: dict, value: float) -> dict:
    return {"metric": metric, "value": [1700000000.0, str(value)]}


class FakePrometheus:
    def __init__(self) -> None:
        self.answers: dict[str, list] = {}
        self.queries: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(url.query).get("query", [""])[0]
                fake.queries.append(q)
                body = json.dumps({"status": "success",
                                   "data": {"resultType": "vector", "result": fake.answers.get(q, [])}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set_fleet(self, consoles, hosts_up, hosts_seen=None):
        """consoles: (instance, domid, name, verdict, fill, seconds, flag)."""
        lab = lambda inst, d, n: {"instance": inst, "job": "xcinspect", "domid": str(d), "name": n}  # noqa: E731
        self.answers = {
            "xcinspect_console_verdict == 1": [
                series({**lab(i, d, n), "xcinspect_console_verdict": v}, 1) for i, d, n, v, *_ in consoles],
            "xcinspect_console_out_fill_bytes": [series(lab(i, d, n), f) for i, d, n, _, f, *_ in consoles],
            "xcinspect_console_verdict_seconds": [series(lab(i, d, n), s) for i, d, n, _, _, s, _ in consoles],
            "xcinspect_console_flag == 1": [
                series({**lab(i, d, n), "xcinspect_console_flag": fl}, 1) for i, d, n, *_, fl in consoles],
            "xcinspect_console_flag_byte": [series(lab(i, d, n), 0) for i, d, n, *_ in consoles],
            "xcinspect_xenstore_up": [series({"instance": h, "job": "xcinspect"}, 1) for h in hosts_up],
        }
        self.answers["last_over_time(xcinspect_xenstore_up[1h])"] = [
            series({"instance": h, "job": "xcinspect"}, 1) for h in (hosts_seen or hosts_up)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prom():
    p = FakePrometheus()
    p.set_fleet([
        ("hostA:9731", 4, "stuck-boot", "stalled", 2048, 300.0, "n/a"),
        ("hostB:9731", 4, "stuck-boot", "stalled", 2048, 30.0, "n/a"),
        ("hostB:9731", 5, "hyperlaunch", "disconnected", 0, 20.0, "disconnected"),
        ("hostA:9731", 1, "web01", "serviced", 0, 90.0, "n/a"),
        ("hostA:9731", 2, "^[]0;evil^G", "corrupt", None, 5.0, "n/a"),
    ], hosts_up=["hostA:9731", "hostB:9731"], hosts_seen=["hostA:9731", "hostB:9731", "hostC:9731"])
    yield p
    p.close()


def cells(app) -> list[list[str]]:
    t = app.query_one(DataTable)
    return [[str(c) for c in t.get_row_at(i)] for i in range(t.row_count)]


async def test_problem_consoles_most_urgent_first_with_header(prom):
    app = FleetApp(fleet.Prometheus(prom.url), interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.query_one(DataTable).row_count == 4, what="four problem rows")
        rows = cells(app)
        assert [r[3] for r in rows] == ["corrupt", "stalled", "stalled", "disconnected"]
        assert rows[1][0] == "hostA:9731" and rows[2][0] == "hostB:9731"  # the longer stall first
        assert rows[0][2] == "^[]0;evil^G"  # a label is shown as text, never as an escape
        header = str(app.query_one("#fleet-header").render())
        assert "3 hosts, 1 down" in header and "2 stalled" in header and "1 healthy" in header
        status = str(app.query_one("#fleet-status").render())
        assert "hostC:9731" in status and "scrape failing" in status
        # healthy consoles are counted, not listed, until h
        await pilot.press("h")
        await until(pilot, lambda: app.query_one(DataTable).row_count == 5, what="healthy shown")
        await pilot.press("h")
        await until(pilot, lambda: app.query_one(DataTable).row_count == 4, what="healthy hidden")


async def test_filter_and_sort(prom):
    app = FleetApp(fleet.Prometheus(prom.url), interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.query_one(DataTable).row_count == 4)
        await pilot.press("slash", *"hostb")
        await until(pilot, lambda: app.query_one(DataTable).row_count == 2, what="filtered to hostB")
        assert {r[0] for r in cells(app)} == {"hostB:9731"}
        await pilot.press("escape")
        await until(pilot, lambda: app.query_one(DataTable).row_count == 4, what="filter cleared")
        await pilot.press("s")  # host
        await until(pilot, lambda: app.sort_key == "host")
        assert [r[0] for r in cells(app)] == sorted(r[0] for r in cells(app))
        await pilot.press("S")
        await until(pilot, lambda: cells(app)[0][0] == "hostB:9731", what="reversed")


async def test_refresh_follows_prometheus_and_errors_are_one_line(prom):
    app = FleetApp(fleet.Prometheus(prom.url), interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.query_one(DataTable).row_count == 4)
        prom.set_fleet([("hostA:9731", 4, "stuck-boot", "stalled", 2048, 301.0, "n/a")],
                       hosts_up=["hostA:9731"])
        n = app.gathered
        await pilot.press("r")
        await until(pilot, lambda: app.gathered > n and app.query_one(DataTable).row_count == 1,
                    what="refreshed")
        prom.close()
        n = app.gathered
        await pilot.press("r")
        await until(pilot, lambda: app.gathered > n and app.error, what="an error line")
        assert "cannot reach Prometheus" in app.error
        assert app.query_one(DataTable).row_count == 1  # the last answer stays on screen


async def test_enter_opens_the_selected_console_with_the_command(prom, tmp_path):
    """Enter on a row runs the configured command with that console's host, domid and
    name (a stand-in that records them); headless, where the app cannot suspend, it runs
    without the terminal and the app keeps how it ended for the status line."""
    import sys

    rec = tmp_path / "args.json"
    stand_in = tmp_path / "open.py"
    stand_in.write_text(f"import json, sys\njson.dump(sys.argv[1:], open({str(rec)!r}, 'w'))\n")
    app = FleetApp(fleet.Prometheus(prom.url), interval=60,
                   command=f"{sys.executable} {stand_in} {{host}} {{domid}} {{name}}")
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.query_one(DataTable).row_count == 4)
        await pilot.press("down")  # the longer stall: hostA's stuck-boot
        await pilot.press("enter")
        await until(pilot, lambda: rec.exists(), what="the stand-in command")
        assert json.loads(rec.read_text()) == ["hostA", "4", "stuck-boot"]
        await until(pilot, lambda: app.last_result.endswith("exited 0"), what="how the command ended")
