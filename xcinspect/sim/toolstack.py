"""What the toolstack (xl and libxl, libxenguest) does for a domain of the sim world before
its guest runs: the domain's config filled in (ports, frame numbers, uuid), its console page
file as libxenguest leaves it, and the xenstore keys libxl writes before the introduce."""

from __future__ import annotations

import os
import uuid

from xcinspect.core import flags
from xcinspect.core.ring import blank_page
from xcinspect.sim.common import Paths

CONSOLE_PORT = 2  # the console's guest-side event channel (port 1 is xenstore's)
XENSTORE_PORT = 1
CONSOLE_LIMIT = 1048576


def fill_config(world_id: str, d: int, cfg: dict) -> None:
    """The defaults the toolstack picks for domain ``d`` (what the spec leaves out)."""
    cfg.setdefault("port", CONSOLE_PORT)
    cfg.setdefault("ring_ref", 0x9F000 + d * 0x41)  # a fake frame number (GFN), as libxl writes
    cfg.setdefault("store_mfn", 0x9E000 + d * 0x41)
    cfg.setdefault("uuid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"xcinspect-sim:{world_id}/{d}/{cfg['name']}")))


def write_page(paths: Paths, d: int, cfg: dict) -> None:
    """The console page file of domain ``d`` and its layout file."""
    layout = cfg["layout"]
    # libxenguest: a zeroed page; >= 4.21 sets connection = 1 (disconnected).
    flag = cfg.get("flag") or (flags.DISCONNECTED if layout == flags.XEN_421 else None)
    page = blank_page(layout, flag)
    tmp = paths.page(d) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(page)
    os.replace(tmp, paths.page(d))
    with open(paths.layout(d), "w", encoding="ascii") as f:
        f.write(layout + "\n")


def domain_keys(domains: dict[int, dict], domids: list[int]) -> list[tuple[str, str]]:
    """What libxl writes for these domains (the console keys before the introduce)."""
    items: list[tuple[str, str]] = []
    for d in domids:
        cfg = domains[d]
        base = f"/local/domain/{d}"
        back = f"/local/domain/0/backend/console/{d}/0"
        vm = f"/vm/{cfg['uuid']}"
        items += [
            (f"{vm}/uuid", cfg["uuid"]), (f"{vm}/name", cfg["name"]),
            (f"{base}/name", cfg["name"]), (f"{base}/domid", str(d)), (f"{base}/vm", vm),
            (f"{base}/memory/target", str(1048576 * (1 + d % 4))),
            (f"{base}/cpu/0/availability", "online"),
            (f"{base}/store/ring-ref", str(cfg["store_mfn"])), (f"{base}/store/port", str(XENSTORE_PORT)),
            (f"{back}/frontend", f"{base}/console"), (f"{back}/frontend-id", str(d)),
            (f"{back}/online", "1"), (f"{back}/state", "1"), (f"{back}/protocol", "vt100"),
            (f"{base}/console/backend", back), (f"{base}/console/backend-id", "0"),
            (f"{base}/console/limit", str(CONSOLE_LIMIT)), (f"{base}/console/type", "xenconsoled"),
            (f"{base}/console/output", "pty"), (f"{base}/console/tty", ""),
            (f"{base}/console/port", str(cfg["port"])), (f"{base}/console/ring-ref", str(cfg["ring_ref"])),
        ]
    return items


def domain_paths(d: int, cfg: dict) -> tuple[str, ...]:
    """The xenstore subtrees libxl removes when domain ``d`` is destroyed."""
    return (f"/local/domain/{d}", f"/vm/{cfg.get('uuid')}", f"/local/domain/0/backend/console/{d}")
