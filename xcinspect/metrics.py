"""Console health as Prometheus metrics (text exposition via prometheus_client).

``xcinspect metrics`` prints once; ``--textfile DIR`` rewrites ``DIR/xcinspect.prom``
atomically every ``--interval`` for node_exporter's textfile collector; ``--listen``
serves ``/metrics`` over HTTP (loopback unless told otherwise). A sampler thread keeps
the monitor ticking so durations and rates are current at every scrape.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, StateSetMetricFamily

from xcinspect.core import flags, health
from xcinspect.core.errors import UsageError
from xcinspect.core.options import MetricsOptions
from xcinspect.core.sanitize import one_line
from xcinspect.engine.monitor import Monitor, sample_window
from xcinspect.platform.base import Platform

FLAG_STATES = (flags.CONNECTED, flags.DISCONNECTED, flags.INVALID, flags.NOT_APPLICABLE)


def label(text: str) -> str:
    """A guest-controlled string as a label value: the exposition format escapes only
    \\, \" and \n, so anything else (ESC sequences, C1, ...) would reach whoever reads
    the metrics in a terminal (``xcinspect metrics`` prints to one)."""
    return one_line(text)


class ConsoleCollector:
    """A prometheus_client collector reading a Monitor's current state."""

    def __init__(self, monitor: Monitor, lock: threading.Lock) -> None:
        self.monitor = monitor
        self.lock = lock

    def collect(self):
        m = self.monitor
        with self.lock:
            now = m.clock()
            labels = ["domid", "name"]
            out_fill = GaugeMetricFamily("xcinspect_console_out_fill_bytes",
                                         "Unread bytes in the console out ring (guest to dom0).", labels=labels)
            in_fill = GaugeMetricFamily("xcinspect_console_in_fill_bytes",
                                        "Unread bytes in the console in ring (dom0 to guest).", labels=labels)
            size = GaugeMetricFamily("xcinspect_console_ring_size_bytes", "Size of a console ring.",
                                     labels=labels + ["ring"])
            moved = GaugeMetricFamily("xcinspect_console_seconds_since_ring_moved",
                                      "Seconds since any ring index of the console last moved.", labels=labels)
            stalled = GaugeMetricFamily("xcinspect_console_stalled",
                                        "1 when the console is stalled (ring full or output stuck, nothing drains it).",
                                        labels=labels)
            verdict = StateSetMetricFamily("xcinspect_console_verdict", "Health verdict of the console.",
                                           labels=labels)
            flag = StateSetMetricFamily("xcinspect_console_flag", "Connection flag state (per flag layout).",
                                        labels=labels)
            bound = GaugeMetricFamily("xcinspect_console_backend_bound",
                                      "1 when a backend has bound the console's event channel.", labels=labels)
            attached = GaugeMetricFamily("xcinspect_console_attached_clients",
                                         "Console clients attached (xenconsole lock holders).", labels=labels)
            rate = GaugeMetricFamily("xcinspect_console_out_drain_bytes_per_second",
                                     "Rate at which the out ring is drained.", labels=labels)
            since = GaugeMetricFamily("xcinspect_console_verdict_seconds",
                                      "Seconds the console has had its current verdict (since xcinspect "
                                      "started watching, at most).", labels=labels)
            flag_byte = GaugeMetricFamily("xcinspect_console_flag_byte",
                                          "Byte 3088 of the console page (1: Linux >= 7.1 guests drop output).",
                                          labels=labels)
            for e in m.views():
                lv = [str(e.domid), label(e.name)]
                snap = e.snapshot()
                if snap is not None:
                    out_fill.add_metric(lv, snap.out.fill)
                    in_fill.add_metric(lv, snap.in_.fill)
                    size.add_metric(lv + ["out"], snap.out.size)
                    size.add_metric(lv + ["in"], snap.in_.size)
                    moved.add_metric(lv, round(e.track.quiet_for(now), 3))
                    rate.add_metric(lv, round(e.track.rate_at(now), 1))
                stalled.add_metric(lv, 1.0 if e.verdict.state == health.STALLED else 0.0)
                if e.state_since is not None:
                    since.add_metric(lv, round(max(0.0, now - e.state_since), 1))
                if e.flag.byte is not None:
                    flag_byte.add_metric(lv, float(e.flag.byte))
                verdict.add_metric(lv, {s: s == e.verdict.state for s in health.STATES})
                flag.add_metric(lv, {s: s == e.flag.state for s in FLAG_STATES})
                f = e.facts
                if f is not None:
                    b = health.is_bound(f)
                    if b is not None:
                        bound.add_metric(lv, 1.0 if b else 0.0)
                    attached.add_metric(lv, 1.0 if f.lock_holder_pid else 0.0)
            yield from (out_fill, in_fill, size, moved, stalled, verdict, flag, bound, attached, rate, since,
                        flag_byte)

            host = m.host_dict() if m.host else {}
            info = GaugeMetricFamily("xcinspect_xen_info", "Xen version and the flag layout in use (always 1).",
                                     labels=["version", "flag_layout", "platform"])
            info.add_metric([host.get("xen_version", "unknown"), host.get("flag_layout", "unknown"),
                             host.get("kind", "unknown")], 1.0)
            yield info
            up = GaugeMetricFamily("xcinspect_xenconsoled_up", "1 when xenconsoled is running.")
            up.add_metric([], 1.0 if m.consoled_pid else 0.0)
            yield up
            xs = GaugeMetricFamily("xcinspect_xenstore_up", "1 when xenstored answers.")
            xs.add_metric([], 0.0 if m.xs_error else 1.0)
            yield xs
            doms = GaugeMetricFamily("xcinspect_domains", "Domains with a console being watched.")
            doms.add_metric([], float(len(m.entries)))
            yield doms
            errs = CounterMetricFamily("xcinspect_scrape_errors", "Sampling rounds that failed to reach xenstored.")
            errs.add_metric([], float(m.scrape_errors))
            yield errs


def exposition(monitor: Monitor, lock: threading.Lock | None = None) -> bytes:
    reg = CollectorRegistry()
    reg.register(ConsoleCollector(monitor, lock or threading.Lock()))
    return generate_latest(reg)


def check_textfile_dir(directory: str) -> None:
    """``--textfile DIR`` must be an existing, writable directory on a real file system
    (not /proc or /sys): one line and exit 2 otherwise, and nothing is created."""
    import stat

    try:
        st = os.stat(directory)
    except FileNotFoundError:
        raise UsageError(f"--textfile {directory}: no such directory (create it first; node_exporter's "
                         "--collector.textfile.directory)") from None
    except OSError as exc:
        raise UsageError(f"--textfile {directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"--textfile {directory}: not a directory")
    real = os.path.realpath(directory)
    if real in ("/proc", "/sys") or real.startswith(("/proc/", "/sys/")):
        raise UsageError(f"--textfile {directory}: a kernel file system, not a directory for files")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"--textfile {directory}: not writable")


def write_textfile(directory: str, data: bytes, name: str = "xcinspect.prom") -> str:
    """Atomically replace DIR/NAME (write a temp file in DIR, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".xcinspect.", suffix=".tmp", dir=directory)
    try:
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.chmod(tmp, 0o644)
        final = os.path.join(directory, name)
        os.replace(tmp, final)
        return final
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _parse_listen(spec: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen wants ADDR:PORT or :PORT, not {spec!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def check_options(options: MetricsOptions) -> None:
    """Bad options are one line and exit 2, before anything is opened or created."""
    if not (options.interval > 0) or options.interval > 86400:
        raise UsageError(f"--interval must be from more than 0 to 86400 seconds, not {options.interval:g}")
    if options.textfile:
        check_textfile_dir(options.textfile)
    if options.listen:
        _parse_listen(options.listen)


def run(options: MetricsOptions, platform: Platform) -> int:
    check_options(options)
    monitor = Monitor(platform, flag_layout=options.flag_layout)
    monitor.open()
    lock = threading.Lock()
    try:
        sample_window(monitor, 0.6)
        if not options.textfile and not options.listen:
            sys.stdout.buffer.write(exposition(monitor, lock))
            sys.stdout.flush()
            return 0
        stop = threading.Event()
        server = None
        if options.listen:
            from http.server import ThreadingHTTPServer

            from prometheus_client.exposition import MetricsHandler

            reg = CollectorRegistry()
            reg.register(ConsoleCollector(monitor, lock))
            host, port = _parse_listen(options.listen)
            try:
                server = ThreadingHTTPServer((host, port), MetricsHandler.factory(reg))
            except OSError as exc:
                raise UsageError(f"--listen {options.listen}: cannot listen there: {exc.strerror or exc}") from None
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True, name="metrics-http").start()
            print(f"xcinspect: serving metrics on http://{host}:{server.server_address[1]}/metrics", file=sys.stderr)
        next_write = 0.0
        try:
            while not stop.is_set():
                with lock:
                    monitor.tick()
                if options.textfile and time.monotonic() >= next_write:
                    try:
                        write_textfile(options.textfile, exposition(monitor, lock))
                    except OSError as exc:
                        raise UsageError(f"--textfile {options.textfile}: cannot write: {exc.strerror or exc}") from None
                    next_write = time.monotonic() + options.interval
                time.sleep(1.0)
        finally:
            if server is not None:
                server.shutdown()
        return 0
    finally:
        monitor.close()
