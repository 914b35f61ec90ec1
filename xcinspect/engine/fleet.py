"""Fleet triage: every dom0's problem consoles, read from Prometheus (no collector of our own).

Every dom0 exports its console health with ``xcinspect metrics`` (``--listen`` or node
exporter's textfile collector); Prometheus gathers it. This module asks Prometheus's HTTP
API (instant queries, a timeout on every request) and folds the answers into one frozen
``FleetSnapshot``: one ``FleetConsole`` per console across all hosts, most urgent first,
and one ``FleetHost`` per host seen (down when its scrape fails or xenstored is down).

Query results are untrusted input: every label value is sanitized like guest output
before it is stored. Nothing here imports Textual.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from xcinspect.core import health
from xcinspect.core.sanitize import one_line

DEFAULT_HOST_LABEL = "instance"
DEFAULT_LOOKBACK = "1h"  # a host scraped within this window and not now is "down"
DEFAULT_COMMAND = "ssh -t {host} xcinspect --select {domid}"
TIMEOUT = 5.0
MAX_REPLY = 32 << 20  # bytes; a larger answer is refused, not read into memory
Sample = dict[str, Any]  # one sample of an instant vector, as Prometheus's JSON has it

# A host name or address as the Enter command may use it (no option-looking values).
SAFE_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-]*|\[[0-9A-Fa-f:.]+\]")
SAFE_INSTANCE = re.compile(r"[A-Za-z0-9_\[][A-Za-z0-9._:\-\[\]]*")


class FleetError(Exception):
    """Prometheus cannot be asked or answers nonsense: one line for the operator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def clean(text: str) -> str:
    return one_line(text)


@dataclass(frozen=True, slots=True)
class FleetConsole:
    host: str  # the host label's value (sanitized)
    domid: int
    name: str
    verdict: str
    fill: int | None  # unread out bytes
    seconds: float | None  # in this verdict for (as far as the exporter watched)
    flag: str  # connected / disconnected / invalid / n/a
    flag_byte: int | None

    @property
    def problem(self) -> bool:
        return self.verdict in health.PROBLEM_STATES

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "domid": self.domid, "name": self.name, "verdict": self.verdict,
                "out_fill": self.fill, "verdict_seconds": self.seconds, "flag": self.flag,
                "flag_byte": self.flag_byte}


@dataclass(frozen=True, slots=True)
class FleetHost:
    host: str
    up: bool
    why: str = ""  # for a host that is down

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "up": self.up, "why": self.why}


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    consoles: tuple[FleetConsole, ...]
    hosts: tuple[FleetHost, ...]
    taken: float = field(default_factory=time.time)

    @property
    def problems(self) -> tuple[FleetConsole, ...]:
        return tuple(c for c in self.consoles if c.problem)

    @property
    def healthy(self) -> int:
        return sum(1 for c in self.consoles if not c.problem)

    @property
    def hosts_down(self) -> tuple[FleetHost, ...]:
        return tuple(h for h in self.hosts if not h.up)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in health.STATES}
        for c in self.consoles:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return {k: v for k, v in out.items() if v}

    def as_dict(self) -> dict[str, Any]:
        return {
            "hosts": [h.as_dict() for h in self.hosts],
            "hosts_seen": len(self.hosts),
            "hosts_down": len(self.hosts_down),
            "counts": self.counts(),
            "consoles": [c.as_dict() for c in self.problems],
            "healthy": self.healthy,
        }

    def exit_code(self) -> int:
        """As ``xcinspect check``: 1 when any console is a problem (or a host is down)."""
        return 1 if self.problems or self.hosts_down else 0


def age_text(seconds: float | None) -> str:
    """How long a console has had its verdict, as the fleet view and --batch show it."""
    return "-" if seconds is None else health.human_duration(seconds)


def urgency(c: FleetConsole) -> tuple[int, float, str, int]:
    """Most urgent first: verdict severity, then longest in it, then host and domid."""
    return (health.SEVERITY.get(c.verdict, len(health.STATES)), -(c.seconds or 0.0), c.host, c.domid)


class Prometheus:
    """Instant queries against Prometheus's HTTP API (``/api/v1/query``)."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise FleetError(f"--prometheus wants an http(s) URL, not {clean(url)!r}")
        self.base = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str) -> list[Sample]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as reply:
                body = reply.read(MAX_REPLY + 1)
        except urllib.error.HTTPError as exc:
            raise FleetError(f"Prometheus at {self.base} answered HTTP {exc.code} to a query "
                             "(is the URL Prometheus's?)") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FleetError(f"cannot reach Prometheus at {self.base}: {clean(str(reason))}") from None
        if len(body) > MAX_REPLY:
            raise FleetError(f"Prometheus at {self.base} sent more than {MAX_REPLY >> 20} MiB for one query")
        try:
            doc = json.loads(body)
        except ValueError:
            raise FleetError(f"{self.base} is not Prometheus: its query answer is not JSON") from None
        if not isinstance(doc, dict) or doc.get("status") != "success":
            err = doc.get("error") if isinstance(doc, dict) else None
            raise FleetError(f"Prometheus at {self.base} refused a query: {clean(str(err or 'no status'))}")
        data = doc.get("data")
        if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise FleetError(f"{self.base} answered a query with something that is not an instant vector")
        return [r for r in data["result"] if isinstance(r, dict) and isinstance(r.get("metric"), dict)]


def _value(sample: Sample) -> float | None:
    try:
        return float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _label(sample: Sample, name: str) -> str:
    v = sample["metric"].get(name)
    return clean(v) if isinstance(v, str) else ""


def gather(prom: Prometheus, host_label: str = DEFAULT_HOST_LABEL, lookback: str = DEFAULT_LOOKBACK) -> FleetSnapshot:
    """One snapshot of the fleet from five instant queries."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", host_label):
        raise FleetError(f"--host-label wants a Prometheus label name, not {clean(host_label)!r}")
    if not re.fullmatch(r"[0-9]+[smhdw]", lookback):
        raise FleetError(f"--lookback wants a Prometheus duration such as 1h, not {clean(lookback)!r}")

    def key(sample: Sample) -> tuple[str, int] | None:
        d = sample["metric"].get("domid")
        if not (isinstance(d, str) and d.isdigit()):
            return None
        return _label(sample, host_label), int(d)

    verdicts: dict[tuple[str, int], tuple[str, str]] = {}
    for s in prom.query("xcinspect_console_verdict == 1"):
        k = key(s)
        state = s["metric"].get("xcinspect_console_verdict")
        if k is not None and isinstance(state, str):
            verdicts[k] = (clean(state), _label(s, "name"))
    def values(expr: str) -> dict[tuple[str, int], float]:
        """Per-console values of one gauge (series without a domid or a number skipped)."""
        return {k: v for s in prom.query(expr) if (k := key(s)) is not None and (v := _value(s)) is not None}

    fills = values("xcinspect_console_out_fill_bytes")
    since = values("xcinspect_console_verdict_seconds")
    flags: dict[tuple[str, int], str] = {}
    for s in prom.query("xcinspect_console_flag == 1"):
        k = key(s)
        state = s["metric"].get("xcinspect_console_flag")
        if k is not None and isinstance(state, str):
            flags[k] = clean(state)
    bytes_ = values("xcinspect_console_flag_byte")

    consoles = []
    for k, (state, name) in verdicts.items():
        fill = fills.get(k)
        b = bytes_.get(k)
        consoles.append(FleetConsole(
            host=k[0], domid=k[1], name=name, verdict=state,
            fill=int(fill) if fill is not None else None, seconds=since.get(k),
            flag=flags.get(k, "n/a"), flag_byte=int(b) if b is not None else None))
    consoles.sort(key=urgency)

    # Hosts: every exporter seen within the lookback; down when its scrape fails now
    # (its series are stale, so the instant query has none) or xenstored is down there.
    seen = {_label(s, host_label) for s in prom.query(f"last_over_time(xcinspect_xenstore_up[{lookback}])")}
    now_up = {}
    for s in prom.query("xcinspect_xenstore_up"):
        now_up[_label(s, host_label)] = _value(s)
    hosts = []
    for h in sorted(seen | set(now_up)):
        v = now_up.get(h)
        if v is None:
            hosts.append(FleetHost(h, False, "scrape failing (no current metrics)"))
        elif v < 1:
            hosts.append(FleetHost(h, False, "xenstored not answering (xcinspect_xenstore_up = 0)"))
        else:
            hosts.append(FleetHost(h, True))
    # a host that is down has no current consoles: nothing of it is listed twice
    return FleetSnapshot(tuple(consoles), tuple(hosts))


def open_command(template: str, c: FleetConsole) -> list[str]:
    """The argv that opens ``c``'s host's xcinspect on its domain (no shell).

    ``{host}`` is the host label without a ``:port``, ``{instance}`` the label as it is,
    ``{domid}`` and ``{name}`` the console's. A label that could be read as an option or
    holds anything but host-name characters is refused: query results are untrusted."""
    import shlex

    instance = c.host
    if not SAFE_INSTANCE.fullmatch(instance):
        raise FleetError(f"host label {instance!r} is not a host name; not running a command for it")
    host = instance
    m = re.fullmatch(r"(\[[^\]]+\]|[^:]+)(?::[0-9]+)?", instance)
    if m:
        host = m.group(1)
    if not SAFE_HOST.fullmatch(host):
        raise FleetError(f"host {host!r} is not a host name; not running a command for it")
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise FleetError(f"the fleet command {template!r} cannot be split: {exc}") from None
    if not words:
        raise FleetError("the fleet command is empty")
    if "{name}" in template and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._\-]*", c.name):
        # ssh hands its words to a remote shell: a name is used only when it is plain
        raise FleetError(f"domain name {c.name!r} is not plain; use {{domid}} in the fleet command")
    values = {"host": host, "instance": instance, "domid": str(c.domid), "name": c.name}
    try:
        return [w.format(**values) for w in words]
    except (KeyError, IndexError, ValueError) as exc:
        raise FleetError(f"the fleet command {template!r} uses an unknown field: {exc}") from None
