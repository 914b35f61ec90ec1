"""Modal screens: the confirm dialog, a one-line prompt, and the help screen."""

from __future__ import annotations

from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from xcinspect.tui import bindings


class ConfirmModal(ModalScreen[bool]):
    """Yes/no before any write. Says exactly what will happen; ``n``/``esc`` = no.

    The prompt is plain ``Text`` (it may quote domain names and process names), and a
    destructive action starts with the focus on "No".
    """

    BINDINGS = [
        Binding("escape,n", "answer(False)", "No", show=False),
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("left,h", "app.focus_previous", show=False),
        Binding("right,l", "app.focus_next", show=False),
    ]

    def __init__(self, title: str, body: str, yes: str = "Yes", *, destructive: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.yes = yes
        self.destructive = destructive

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="-destructive" if self.destructive else ""):
            yield Label(Text(self.title_text, style=Style(bold=True)), id="confirm-title")
            yield Static(Text(self.body), id="confirm-body")
            with Horizontal(id="confirm-buttons"):
                yield Button(Text("No [n]"), id="no")
                yield Button(Text(f"{self.yes} [y]"), id="yes", variant="error" if self.destructive else "primary")

    def on_mount(self) -> None:
        self.query_one("#no" if self.destructive else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class PromptModal(ModalScreen[str | None]):
    """One line of input (a file name); enter accepts, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, title: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(Text(self.title_text, style=Style(bold=True)))
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Label(Text("enter: ok   esc: cancel"), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def key_list(keys: str, app) -> str:
    from textual.binding import Binding as _B

    return "  ".join(app.get_key_display(_B(k.strip(), "x")) for k in keys.split(","))


class HelpScreen(ModalScreen[None]):
    """Every key, grouped by screen, with its binding id for the keymap."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close", show=False)]

    def __init__(self, keymap: dict[str, str], read_only: bool, config_path: str | None) -> None:
        super().__init__()
        self.keymap = keymap
        self.read_only = read_only
        self.config_path = config_path

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self._body(), id="help-body")

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "xcinspect keys"
        self.query_one("#help").border_subtitle = "esc closes"

    def _body(self) -> Group:
        parts: list = []

        id_width = max(len(s.id) for s in bindings.ALL.values())

        def grid() -> Table:
            g = Table.grid(padding=(0, 2))
            g.add_column(no_wrap=True, style=Style(bold=True), width=14)
            g.add_column(ratio=1)
            g.add_column(no_wrap=True, style=Style(dim=True), width=id_width)
            return g

        for title, specs in bindings.SCREENS.items():
            parts.append(Text(title, style=Style(bold=True, underline=True)))
            g = grid()
            for s in specs:
                keys = key_list(self.keymap.get(s.id, s.keys), self.app)
                desc = s.help + ("  (off: --read-only)" if s.writes and self.read_only else "")
                g.add_row(Text(keys), Text(desc), Text(s.id))
            parts.append(g)
            parts.append(Text(""))
        parts.append(Text("Everywhere", style=Style(bold=True, underline=True)))
        g = grid()
        g.add_row(Text("^p"), Text("Command palette: every command, and per domain"), Text("palette"))
        g.add_row(Text("^q"), Text("Quit (except in a live console, where keys go to the guest)"),
                  Text("app-quit"))
        parts.append(g)
        parts.append(Text(""))
        where = self.config_path or "$XDG_CONFIG_HOME/xcinspect/config.toml"
        parts.append(Text(f"Rebind any key by id in {where}, e.g.\n  [keymap]\n  connect = \"C\"\n"
                          "  [attach]\n  escape = \"^]\"", style=Style(dim=True)))
        return Group(*parts)

    def action_close(self) -> None:
        self.dismiss(None)
