"""Config file and theme files: loading, validation, one-line errors (no app needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xcinspect.tui import bindings
from xcinspect.tui import themes as tui_themes
from xcinspect.tui.config import ConfigError, config_path, escape_key, load_config


def write(tmp_path, text: str):
    p = tmp_path / "xdg" / "xcinspect" / "config.toml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_missing_config_is_empty(tmp_path):
    cfg = load_config()
    assert cfg.keymap == {} and cfg.interval == 1.0 and cfg.theme is None
    assert config_path() == tmp_path / "xdg" / "xcinspect" / "config.toml"


def test_full_config(tmp_path):
    write(tmp_path, 'theme = "light"\ninterval = 0.5\n[keymap]\nconnect = "C"\nsort = "o, O"\n'
                    '[attach]\nescape = "^x"\nscrollback = 500\n')
    cfg = load_config()
    assert cfg.theme == "light" and cfg.interval == 0.5 and cfg.scrollback == 500
    assert cfg.keymap == {"connect": "C", "sort": "o,O"}
    assert cfg.escape == "ctrl+x"
    assert cfg.effective_keymap()["detach"] == "ctrl+x"


@pytest.mark.parametrize("text, words", [
    ("theme = [", "not valid TOML"),
    ("colour = 1", "unknown setting 'colour'"),
    ("interval = 0", "interval must be"),
    ("interval = true", "interval must be"),
    ("[keymap]\nfly = \"f\"", "unknown binding id 'fly'"),
    ("[keymap]\nconnect = 3", "connect must be a string"),
    ("[keymap]\nconnect = \"c,,\"", "connect must be a string"),
    ("[attach]\nescape = \"^1\"", "bad escape key"),
    ("[attach]\nscrollback = 5", "scrollback must be"),
    ("[attach]\nmouse = true", "unknown setting 'mouse'"),
    ("keymap = 3", "[keymap] must be a table"),
])
def test_bad_config_is_one_clear_line(tmp_path, text, words):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config()
    msg = exc.value.message
    assert words in msg and str(p) in msg and "\n" not in msg


def test_escape_key_hat_notation():
    assert escape_key("^]") == "ctrl+right_square_bracket"
    assert escape_key("^A") == "ctrl+a"
    assert escape_key("^\\") == "ctrl+backslash"
    assert escape_key("^_") == "ctrl+underscore"
    assert escape_key("ctrl+x") == "ctrl+x"
    with pytest.raises(ValueError):
        escape_key("^?")


def test_binding_ids_unique_and_complete():
    ids = [s.id for specs in bindings.SCREENS.values() for s in specs]
    assert len(ids) == len(set(ids))
    for needed in ("connect", "attach", "force-disconnect", "filter", "sort", "pause", "faster", "slower",
                   "help", "quit", "detach", "search", "save", "copy"):
        assert needed in ids


def test_shipped_themes_load_and_resolve():
    themes = tui_themes.load_themes()
    names = {s.alias: s.name for s in themes.values()}
    assert {"dark", "light", "high-contrast"} <= set(names)
    assert tui_themes.check_theme("dark") == "xcinspect-dark"
    assert tui_themes.check_theme("xcinspect-light") == "xcinspect-light"
    assert tui_themes.check_theme("nord") == "nord"
    assert tui_themes.check_theme(None) == tui_themes.DEFAULT_THEME
    assert not themes["xcinspect-light"].dark


def test_unknown_theme_is_one_clear_line():
    with pytest.raises(ConfigError) as exc:
        tui_themes.check_theme("mauve")
    assert "unknown theme 'mauve'" in exc.value.message and "dark" in exc.value.message


def test_builtin_list_matches_textual():
    from textual.theme import BUILTIN_THEMES

    assert set(tui_themes.TEXTUAL_BUILTIN) == set(BUILTIN_THEMES)


def test_user_theme_dir_and_bad_theme(tmp_path):
    d = tmp_path / "xdg" / "xcinspect" / "themes"
    d.mkdir(parents=True)
    (d / "mine.toml").write_text('name = "mine"\nprimary = "#112233"\n')
    assert tui_themes.check_theme("mine") == "mine"
    (d / "broken.toml").write_text('name = "b"\nprimary = "not a colour!"\n')
    with pytest.raises(ConfigError) as exc:
        tui_themes.load_themes()
    assert "broken.toml" in exc.value.message and "not a colour" in exc.value.message


def test_unreadable_theme_dir_is_one_clear_line(tmp_path, monkeypatch):
    """A theme directory xcinspect may not read (an install in a 0700 directory, seen as
    another user) is one line, not an internal error. (Root reads everything, so the
    EACCES is injected.)"""
    d = tmp_path / "themes"
    d.mkdir()
    real = tui_themes.Path.is_dir

    def is_dir(self):
        if self == d:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(tui_themes.Path, "is_dir", is_dir)
    with pytest.raises(ConfigError, match=r"cannot read the theme directory .*themes: Permission denied"):
        tui_themes.load_themes([d])


def test_textual_themes_register():
    from textual.app import App

    app = App()
    for t in tui_themes.textual_themes(tui_themes.load_themes()):
        app.register_theme(t)
    assert "xcinspect-high-contrast" in app.available_themes


def test_themes_ship_with_the_package():
    """The wheel carries the themes: xcinspect/tui/theme_files links to the top-level themes/."""
    from pathlib import Path

    shipped = tui_themes.shipped_dir()
    assert (shipped / "dark.toml").is_file()
    assert Path(tui_themes.__file__).resolve().parent.joinpath("theme_files").resolve() == shipped.resolve()


def test_config_and_themes_need_no_textual():
    code = ("import sys, xcinspect.tui.config, xcinspect.tui.themes, xcinspect.tui.bindings, "
            "xcinspect.tui.render, xcinspect.tui.poller, xcinspect.tui.attach_io; "
            "xcinspect.tui.themes.check_theme('dark'); print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_key_bound_twice_is_refused(tmp_path):
    """connect = "a" would silently take attach's key: one line, exit 2 (ConfigError)."""
    p = write(tmp_path, '[keymap]\nconnect = "a"\n')
    with pytest.raises(ConfigError, match="key 'a' is bound to both connect and attach"):
        load_config(p)
    # the same key on two different screens is fine (the attach screen's s is save)
    p = write(tmp_path, '[keymap]\nsave = "s"\n')
    load_config(p)
