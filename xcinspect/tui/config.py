"""The config file: ``$XDG_CONFIG_HOME/xcinspect/config.toml`` (default ``~/.config``).

::

    theme = "dark"            # a theme name or file stem (see themes/), or a Textual theme
    interval = 1.0            # refresh delay in seconds (the CLI's -d wins)

    [keymap]                  # binding id -> keys (comma separated); see `?` in the app
    connect = "C"
    force-disconnect = "ctrl+d"

    [attach]
    escape = "^]"             # detach key: ^X hat notation or a Textual key name
    scrollback = 10000        # lines kept in the console view

    [fleet]                   # `xcinspect fleet`
    prometheus = "http://prometheus.example:9090"
    host_label = "instance"   # the label that names a dom0
    command = "ssh -t {host} xcinspect --select {domid}"
    interval = 15.0

A file that is not valid TOML, an unknown key or a wrong type is one clear line and
exit status 2 (``load_config`` raises ConfigError). No Textual here.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from xcinspect.core.errors import OperatorError
from xcinspect.core.hat import hat_char
from xcinspect.tui import bindings


class ConfigError(OperatorError):
    """A config or theme file the TUI cannot use (one line, exit 2)."""

MIN_INTERVAL, MAX_INTERVAL = 0.1, 60.0
HAT = {"]": "right_square_bracket", "[": "left_square_bracket", "\\": "backslash",
       "^": "circumflex_accent", "_": "underscore", "@": "@"}


@dataclass
class Config:
    theme: str | None = None
    interval: float = 1.0
    sort: str = "verdict"  # the table's first sort column: problems first (a column key)
    keymap: dict[str, str] = field(default_factory=dict)
    escape: str = "ctrl+right_square_bracket"
    scrollback: int = 10000
    path: str | None = None
    fleet: dict = field(default_factory=dict)  # [fleet]: prometheus, host_label, command, interval, lookback

    def effective_keymap(self) -> dict[str, str]:
        km = dict(self.keymap)
        if self.escape != "ctrl+right_square_bracket":
            km.setdefault("detach", self.escape)
        return km


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "xcinspect" / "config.toml"


def escape_key(spec: str) -> str:
    """``^]`` -> ``ctrl+right_square_bracket``; ``^x`` -> ``ctrl+x``; Textual names pass."""
    s = spec.strip()
    c = hat_char(s)
    if c is not None:
        if c.isalpha():
            return f"ctrl+{c.lower()}"
        if c in HAT:
            return f"ctrl+{HAT[c]}"
        raise ValueError(f"bad escape key {spec!r} (use ^X with a letter or one of @[\\]^_)")
    if not s or " " in s:
        raise ValueError(f"bad escape key {spec!r}")
    return s


def _check_conflicts(cfg: Config, bad) -> None:
    """A key bound twice on one screen (``connect = "a"`` takes attach's key): refused."""
    km = cfg.effective_keymap()
    for screen, specs in bindings.SCREENS.items():
        owner: dict[str, str] = {}
        for spec in specs:
            for key in km.get(spec.id, spec.keys).split(","):
                key = key.strip()
                if key in owner and owner[key] != spec.id:
                    raise bad(f"keymap: key {key!r} is bound to both {owner[key]} and {spec.id} "
                              f"({screen}); give one of them another key")
                owner[key] = spec.id


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read the config file (a missing file is an empty config)."""
    p = Path(path) if path else config_path()
    cfg = Config(path=str(p))
    try:
        with open(p, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        return cfg
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None

    def bad(msg: str) -> ConfigError:
        return ConfigError(f"config file {p}: {msg}")

    known = {"theme", "interval", "sort", "keymap", "attach", "fleet"}
    for key in doc:
        if key not in known:
            raise bad(f"unknown setting {key!r} (known: {', '.join(sorted(known))})")
    if "theme" in doc:
        if not isinstance(doc["theme"], str):
            raise bad("theme must be a string")
        cfg.theme = doc["theme"]
    if "interval" in doc:
        v = doc["interval"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not MIN_INTERVAL <= v <= MAX_INTERVAL:
            raise bad(f"interval must be a number of seconds from {MIN_INTERVAL} to {MAX_INTERVAL}")
        cfg.interval = float(v)
    if "sort" in doc:
        from xcinspect.tui.columns import SORT_LABEL

        if doc["sort"] not in SORT_LABEL:
            raise bad(f"sort must be a column: one of {', '.join(SORT_LABEL)}")
        cfg.sort = doc["sort"]
    km = doc.get("keymap", {})
    if not isinstance(km, dict):
        raise bad("[keymap] must be a table of binding id = \"keys\"")
    for bid, keys in km.items():
        if bid not in bindings.ALL:
            raise bad(f"keymap: unknown binding id {bid!r} (known: {', '.join(sorted(bindings.ALL))})")
        if not isinstance(keys, str) or not keys.strip() or any(not k.strip() for k in keys.split(",")):
            raise bad(f"keymap: {bid} must be a string of comma-separated keys")
        cfg.keymap[bid] = ",".join(k.strip() for k in keys.split(","))
    _check_conflicts(cfg, bad)
    att = doc.get("attach", {})
    if not isinstance(att, dict):
        raise bad("[attach] must be a table")
    for key in att:
        if key not in ("escape", "scrollback"):
            raise bad(f"[attach]: unknown setting {key!r} (known: escape, scrollback)")
    if "escape" in att:
        if not isinstance(att["escape"], str):
            raise bad("[attach] escape must be a string such as \"^]\"")
        try:
            cfg.escape = escape_key(att["escape"])
        except ValueError as exc:
            raise bad(f"[attach] {exc}") from None
    if "scrollback" in att:
        v = att["scrollback"]
        if isinstance(v, bool) or not isinstance(v, int) or not 100 <= v <= 1_000_000:
            raise bad("[attach] scrollback must be a whole number of lines from 100 to 1000000")
        cfg.scrollback = v
    fl = doc.get("fleet", {})
    if not isinstance(fl, dict):
        raise bad("[fleet] must be a table")
    for key, v in fl.items():
        if key in ("prometheus", "host_label", "command", "lookback"):
            if not isinstance(v, str) or not v.strip():
                raise bad(f"[fleet] {key} must be a non-empty string")
        elif key == "interval":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 1 <= v <= 3600:
                raise bad("[fleet] interval must be a number of seconds from 1 to 3600")
            v = float(v)
        else:
            raise bad(f"[fleet]: unknown setting {key!r} (known: command, host_label, interval, lookback, prometheus)")
        cfg.fleet[key] = v
    return cfg
