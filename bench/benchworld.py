"""A sim world with a domain table the benchmark chooses (run as a separate process).

    python bench/benchworld.py --world DIR --spec FILE [--parent-pid PID]

It is the regular sim world controller (``xcinspect.sim.world.Controller``: the same
xenstored, xenconsoled and guest processes, the same pages) with two differences only
the benchmarks need:

* the domain table comes from the JSON file ``--spec``
  (``{"domains": {"1": {...}}, "external": [1]}``),
  each domain filled in with the same defaults as the scenarios' (``scenarios.domain_spec``);
* an *external* domain has its console keys, page and introduce like any other, but no
  sim guest process: the benchmark itself plays its guest (a fast producer), through the
  same page file and the same sim event channel (the guest's end is free for it).

No timeline: nothing appears or dies while a benchmark runs. Use ``common.custom_world``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xcinspect.sim import scenarios, world  # noqa: E402


class BenchController(world.Controller):
    def __init__(self, directory: str, domains: dict[int, dict], external: set[int]) -> None:
        super().__init__(directory, scenario="demo", domains=None, timeline=False)
        self._table = domains
        self.external = external

    def setup(self) -> None:
        table = self._table
        saved = scenarios.demo_domains
        scenarios.demo_domains = lambda: {d: dict(cfg) for d, cfg in table.items()}  # what setup() builds on
        try:
            super().setup()
        finally:
            scenarios.demo_domains = saved
        # An external domain's "guest" is the benchmark: nothing will report its boot.
        self.booted |= self.external & self.initial

    def start_guests(self, domids: list[int]) -> None:
        mine = [d for d in domids if d not in self.external]
        if mine:
            super().start_guests(mine)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/benchworld.py")
    ap.add_argument("--world", required=True)
    ap.add_argument("--spec", required=True, help="JSON file: {domains: {domid: cfg}, external: [domid]}")
    ap.add_argument("--parent-pid", type=int)
    a = ap.parse_args(argv)
    if a.parent_pid:
        from xcinspect.sim.common import die_with_parent

        die_with_parent(a.parent_pid)
    with open(a.spec, encoding="utf-8") as f:
        spec = json.load(f)
    domains = {}
    for k, cfg in spec["domains"].items():
        base = scenarios.domain_spec(cfg.get("name") or f"dom{k}")
        base.update(cfg)
        domains[int(k)] = base
    external = {int(d) for d in spec.get("external", [])}
    if not domains.keys() - external:
        ap.error("at least one domain needs a sim guest (it reports the world ready)")
    return BenchController(a.world, domains, external).run()


if __name__ == "__main__":
    sys.exit(main())
