"""The sim world's scenarios: which domains a world starts with (``demo``, ``scale``),
what each one is, as a typed domain spec, and the timeline (what appears or dies later).
The controller (``world``) builds them; the world description (``world.json``) records
each spec with what the controller added (page, ports, store mfn)."""

from __future__ import annotations

from typing import TypedDict

from xcinspect.core import flags

# Past ~1,040 domains `DIRECTORY /local/domain` no longer fits one 4096-byte reply (E2BIG,
# as on a real xenstored); clients list with DIRECTORY_PART then. 5,000 is what the
# benchmarks use (a sim console needs a pty: past kernel.pty.max, 4096 by default, the
# sim xenconsoled cannot give the rest a tty, as a real one could not).
MAX_DOMAINS = 5000


class DomainSpec(TypedDict, total=False):
    """One simulated domain."""

    name: str
    kernel: str  # legacy | xen-4.21 | rfc-v2: how the guest treats the connection flag
    layout: str  # the flag layout the page is written with (flags.NONE, XEN_421, RFC_V2)
    behaviour: str  # normal | quiet | chatty | corrupt
    consoled: bool  # xenconsoled services it
    tick: float  # seconds between the guest's lines
    shows: str  # what the domain demonstrates (the world summary says it)
    flag: str | None  # the flag as the world starts, instead of what libxenguest writes
    # added by the controller:
    port: int
    store_mfn: int
    page: str


def domain_spec(name: str, kernel="legacy", layout=flags.NONE, behaviour="normal", consoled=True, tick=2.0, shows="",
         flag: str | None = None) -> DomainSpec:
    # flag: the page's flag as the world starts, instead of what libxenguest writes
    # ("connected" on a 4.21 domain nobody services: xenconsoled connected once, then died).
    return {"name": name, "kernel": kernel, "layout": layout, "behaviour": behaviour,
            "consoled": consoled, "tick": tick, "shows": shows, "flag": flag}


def demo_domains() -> dict[int, DomainSpec]:
    return {
        1: domain_spec("web01", shows="healthy console (no flag), serviced by xenconsoled"),
        2: domain_spec("db01", kernel="xen-4.21", layout=flags.XEN_421, tick=3.0,
                shows="Xen 4.21 layout, 4.21-aware kernel, serviced: connection=0 (connected)"),
        3: domain_spec("rfc-guest", kernel="rfc-v2", layout=flags.RFC_V2, tick=2.5,
                shows="RFC v2 layout, serviced: flag=1 (connected)"),
        4: domain_spec("stuck-boot", consoled=False, tick=1.0,
                shows="stuck boot: no backend, out full (2048), guest blocked; resumes when drained"),
        5: domain_spec("hyperlaunch", kernel="xen-4.21", layout=flags.XEN_421, consoled=False,
                shows="Xen 4.21 layout, no backend: connection=1, guest drops writes (ring empty)"),
        6: domain_spec("chatty", behaviour="chatty", shows="flooding guest held by the rate limit"),
        7: domain_spec("corrupt", behaviour="corrupt", shows="corrupt indices (fill > 2048)"),
        8: domain_spec("ephemeral", tick=1.5, shows="dies ~20 s after start"),
    }


DEMO_LATECOMER = (9, domain_spec("latecomer", kernel="xen-4.21", layout=flags.XEN_421, tick=2.0,
                          shows="appears ~10 s after start"))
DEMO_EPHEMERAL = 8

ROLES = ("web", "app", "db", "cache", "mq", "build", "ci", "mail", "dns", "lb", "api", "batch")


def scale_domains(n: int) -> dict[int, DomainSpec]:
    """n domains, mostly healthy and quiet-ish, with a sprinkling of each problem case."""
    out: dict[int, DomainSpec] = {}
    chatty = 0
    for d in range(1, n + 1):
        name = f"{ROLES[d % len(ROLES)]}{d:04d}"
        tick = 2.0 + (d * 7919 % 40) / 10.0  # a line every 2..6 s
        if d % 97 == 13:
            out[d] = domain_spec(f"stuck{d:04d}", consoled=False, tick=1.0, shows="stuck boot")
        elif d % 89 == 29:
            out[d] = domain_spec(f"hl{d:04d}", kernel="xen-4.21", layout=flags.XEN_421, consoled=False,
                          shows="4.21, no backend: dropping")
        elif d % 83 == 41:
            out[d] = domain_spec(f"bad{d:04d}", behaviour="corrupt", shows="corrupt indices")
        elif d % 211 == 17 and chatty < 3:
            chatty += 1
            out[d] = domain_spec(f"chatty{d:04d}", behaviour="chatty", shows="rate-limited flood")
        elif d % 71 == 5:
            out[d] = domain_spec(name, kernel="rfc-v2", layout=flags.RFC_V2, tick=tick, shows="rfc-v2, serviced")
        elif d % 7 == 3:
            out[d] = domain_spec(name, kernel="xen-4.21", layout=flags.XEN_421, tick=tick, shows="4.21, serviced")
        else:
            out[d] = domain_spec(name, tick=tick, behaviour="quiet" if d % 5 == 0 else "normal", shows="healthy")
    return out


def timeline(demo: bool, domains: dict[int, DomainSpec]) -> list[tuple[float, str, object]]:
    """What happens once the world is ready, seconds after it: a domain appears at +10 s
    and one dies at +20 s (the demo's latecomer and ephemeral, else one past the last
    domain and the last one)."""
    if demo:
        return [(10.0, "create", DEMO_LATECOMER), (20.0, "destroy", DEMO_EPHEMERAL)]
    last = max(domains)
    return [(10.0, "create", (last + 1, domain_spec(f"late{last + 1:04d}", shows="appears later"))),
            (20.0, "destroy", last)]


def summary(domains: dict[int, DomainSpec], timeline: list[tuple[float, str, object]]) -> list[str]:
    """The world's domains and what each shows (up to 20 one a line, else counted by what
    they show), and the timeline, as the controller prints them once the world is ready."""
    lines = []
    if len(domains) <= 20:
        for d, c in sorted(domains.items()):
            backend = "xenconsoled" if c.get("consoled", True) else "none"
            lines.append(f"  {d:>4}  {c['name']:<12} {c['kernel']:<9} {c['layout']:<9} {backend:<12} {c.get('shows', '')}")
        lines.insert(0, f"  {'dom':>4}  {'name':<12} {'kernel':<9} {'layout':<9} {'backend':<12} shows")
    else:
        kinds: dict[str, int] = {}
        for c in domains.values():
            kinds[c.get("shows", "")] = kinds.get(c.get("shows", ""), 0) + 1
        lines += [f"  {n:>5}  {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])]
    if timeline:
        lines.append("  timeline: " + ", ".join(f"{a} at +{t:g} s" for t, a, _ in timeline))
    return lines
