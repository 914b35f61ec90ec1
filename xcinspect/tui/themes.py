"""Theme files: TOML under ``themes/``, registered with Textual at start.

Lookup order (later wins on a name clash): the themes shipped with xcinspect (the
repository's top-level ``themes/``, reached through the ``xcinspect/tui/theme_files`` link
that also ships in the wheel), then the operator's
``$XDG_CONFIG_HOME/xcinspect/themes/*.toml``.

A theme file holds Textual theme tokens::

    name = "xcinspect-dark"      # also selectable by its file stem: --theme dark
    dark = true
    primary = "#4FA3E0"
    ...                          # secondary accent warning error success foreground
                                 # background surface panel boost
    [variables]                  # optional extra CSS variables
    ring-unread = "#E5B84B"

Parsing needs no Textual (the CLI checks ``--theme`` before the app starts);
``textual_themes()`` builds ``textual.theme.Theme`` objects for the app.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from xcinspect.tui.config import ConfigError

DEFAULT_THEME = "xcinspect-dark"
COLOR_KEYS = ("primary", "secondary", "accent", "warning", "error", "success", "foreground",
              "background", "surface", "panel", "boost")
OTHER_KEYS = {"name", "dark", "luminosity_spread", "text_alpha", "variables"}
# Textual's own themes, accepted by --theme as well (checked without importing Textual).
TEXTUAL_BUILTIN = (
    "ansi-dark", "ansi-light", "atom-one-dark", "atom-one-light", "catppuccin-frappe",
    "catppuccin-latte", "catppuccin-macchiato", "catppuccin-mocha", "dracula", "flexoki",
    "gruvbox", "monokai", "nord", "rose-pine", "rose-pine-dawn", "rose-pine-moon",
    "solarized-dark", "solarized-light", "textual-dark", "textual-light", "tokyo-night",
)


@dataclass(frozen=True)
class ThemeSpec:
    name: str
    path: str
    dark: bool
    colors: dict[str, str]
    variables: dict[str, str] = field(default_factory=dict)
    luminosity_spread: float | None = None
    text_alpha: float | None = None

    @property
    def alias(self) -> str:
        return Path(self.path).stem


def shipped_dir() -> Path:
    """The themes shipped with xcinspect."""
    here = Path(__file__).resolve().parent
    for cand in (here / "theme_files", here.parent.parent / "themes"):
        try:
            if cand.is_dir():
                return cand
        except OSError:  # not readable by this user: load_themes says so, in one line
            return cand
    return here / "theme_files"


def user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "xcinspect" / "themes"


def parse_theme(path: Path) -> ThemeSpec:
    """One theme file; ConfigError (one line) when it is not a usable theme."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read theme file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"theme file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - set(COLOR_KEYS) - OTHER_KEYS)
    if unknown:
        raise ConfigError(f"theme file {path}: unknown key {unknown[0]!r} "
                            f"(known: {', '.join(COLOR_KEYS)}, dark, variables)")
    name = doc.get("name") or path.stem
    if not isinstance(name, str):
        raise ConfigError(f"theme file {path}: 'name' must be a string")
    if "primary" not in doc:
        raise ConfigError(f"theme file {path}: 'primary' is required")
    colors = {}
    for key in COLOR_KEYS:
        if key in doc:
            value = doc[key]
            if not isinstance(value, str) or not _looks_like_color(value):
                raise ConfigError(f"theme file {path}: {key} = {value!r} is not a colour")
            colors[key] = value
    variables = doc.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ConfigError(f"theme file {path}: [variables] must map names to strings")
    dark = doc.get("dark", True)
    if not isinstance(dark, bool):
        raise ConfigError(f"theme file {path}: 'dark' must be true or false")
    return ThemeSpec(name, str(path), dark, colors, dict(variables),
                     doc.get("luminosity_spread"), doc.get("text_alpha"))


def _looks_like_color(value: str) -> bool:
    v = value.strip()
    if v.startswith("#"):
        return len(v) in (4, 5, 7, 9) and all(c in "0123456789abcdefABCDEF" for c in v[1:])
    return v.startswith(("rgb", "hsl", "ansi_")) or v.isalpha()


def load_themes(dirs: list[Path] | None = None) -> dict[str, ThemeSpec]:
    """Every theme file, by name. Raises ConfigError on a broken file."""
    dirs = dirs if dirs is not None else [shipped_dir(), user_dir()]
    out: dict[str, ThemeSpec] = {}
    for d in dirs:
        try:
            if not d.is_dir():
                continue
            paths = sorted(d.glob("*.toml"))
        except OSError as exc:
            raise ConfigError(f"cannot read the theme directory {d}: {exc.strerror or exc}") from None
        for path in paths:
            spec = parse_theme(path)
            out[spec.name] = spec
    return out


def resolve_theme(name: str | None, themes: dict[str, ThemeSpec] | None = None) -> str:
    """The registered name for ``--theme NAME`` (a theme name, a file stem, or one of
    Textual's own themes). Raises ConfigError naming the choices."""
    themes = load_themes() if themes is None else themes
    if not name:
        return DEFAULT_THEME if DEFAULT_THEME in themes else "textual-dark"
    if name in themes or name in TEXTUAL_BUILTIN:
        return name
    for spec in themes.values():
        if spec.alias == name:
            return spec.name
    choices = sorted({s.alias for s in themes.values()}) + ["or a Textual theme such as nord"]
    raise ConfigError(f"unknown theme {name!r} (choose from {', '.join(choices)})")


def check_theme(name: str | None) -> str:
    """For the CLI: load every theme file and resolve ``name``; ConfigError otherwise."""
    return resolve_theme(name, load_themes())


def textual_themes(themes: dict[str, ThemeSpec]):
    """``textual.theme.Theme`` objects for ``App.register_theme``."""
    from textual.theme import Theme

    out = []
    for spec in themes.values():
        kw = dict(spec.colors)
        if spec.luminosity_spread is not None:
            kw["luminosity_spread"] = spec.luminosity_spread
        if spec.text_alpha is not None:
            kw["text_alpha"] = spec.text_alpha
        out.append(Theme(name=spec.name, dark=spec.dark, variables=dict(spec.variables), **kw))
    return out
