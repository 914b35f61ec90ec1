"""Every key binding of the TUI, as data: id, default keys, action, description.

Screens build their ``BINDINGS`` from this table, the help screen lists it, and the
config loader checks keymap ids against it -- without importing Textual. A keymap in the
config file (``[keymap]``, binding id -> keys) rebinds any of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    id: str
    keys: str  # Textual key names, comma separated
    action: str
    description: str
    help: str
    show: bool = True
    priority: bool = False
    writes: bool = False  # an operator action: hidden and refused under --read-only
    key_display: str | None = None
    group: str | None = None  # footer group: keys shown together under one description
    command: str | None = None  # its title in the command palette (None: not there)
    command_help: str = ""
    domain_verb: str | None = None  # a palette entry per domain: "<verb> dom 7 (web-3)"
    domain_help: str = ""


ON_SELECTED = "Act on the domain under the cursor"
SORT_BY = "sort"  # the binding whose palette entries are "Sort by <column>"

MAIN = (
    Spec("connect", "c", "connect", "Connect", "Service the selected console (confirm first)", writes=True,
         command="Connect selected", command_help=ON_SELECTED,
         domain_verb="Connect", domain_help="service this console (confirm first)"),
    Spec("attach", "a", "attach", "Attach", "Open the selected console: typed keys go to the guest", writes=True,
         command="Attach selected", command_help=ON_SELECTED, domain_verb="Attach", domain_help="open this console"),
    Spec("force-disconnect", "d", "force_disconnect", "Disconnect",
         "Force-disconnect: end an attached client or stop xcinspect's backend (confirm first)", writes=True,
         command="Force-disconnect selected", command_help=ON_SELECTED, domain_verb="Force-disconnect",
         domain_help="end the attached client / stop xcinspect's backend (confirm first)"),
    Spec("set-flag", "D", "set_flag", "Set flag",
         "Write 'disconnected' into the connection flag: Linux >= 7.1 guests drop their output "
         "(confirm first)", show=False, writes=True,
         command="Set flag disconnected on selected", command_help=ON_SELECTED,
         domain_verb="Set flag disconnected on",
         domain_help="write 'disconnected' into the connection flag (confirm first)"),
    Spec("set-flag-connected", "U", "set_flag_connected", "Flag connected",
         "Write 'connected' into the connection flag: the undo of D (confirm first)", show=False, writes=True,
         command="Set flag connected on selected", command_help=ON_SELECTED, domain_verb="Set flag connected on",
         domain_help="write 'connected' into the connection flag (confirm first)"),
    Spec("next-problem", "n", "next_problem", "Next problem",
         "Move the cursor to the next console with a problem (stalled, backlog, ...)", show=False,
         command="Next problem", command_help="Select the next console that needs attention"),
    Spec("prev-problem", "N", "prev_problem", "Prev problem", "Move the cursor to the previous console with a problem",
         show=False),
    Spec("tail", "t", "tail", "Tail", "Follow the selected console's output read-only, without consuming it "
         "(may miss bytes)", show=False, command="Tail selected (read-only)", command_help=ON_SELECTED,
         domain_verb="Tail", domain_help="follow this console's output read-only (may miss bytes)"),
    # priority: run as the app reads the key, so the keys typed after it go to the filter
    Spec("filter", "slash", "filter", "Filter", "Filter by name, domid or verdict (esc clears)", priority=True,
         command="Filter", command_help="Filter domains by name, domid or verdict"),
    # the palette has one "Sort by <column>" entry per sortable column instead (SORT_BY)
    Spec("sort", "s", "sort_next", "Sort", "Sort by the next column (or click a column header)"),
    Spec("sort-reverse", "S", "sort_reverse", "Reverse", "Reverse the sort order", show=False,
         command="Reverse sort order", command_help="Reverse the domain table"),
    Spec("pause", "space", "toggle_pause", "Pause", "Pause or resume sampling", key_display="spc",
         command="Pause / resume", command_help="Freeze or resume sampling"),
    Spec("faster", "plus", "faster", "Faster", "Shorter refresh delay", key_display="+", group="Delay",
         command="Faster refresh", command_help="Shorter refresh delay"),
    Spec("slower", "minus", "slower", "Slower", "Longer refresh delay", key_display="-", group="Delay",
         command="Slower refresh", command_help="Longer refresh delay"),
    Spec("refresh", "r", "refresh", "Refresh", "Sample now (also while paused)", show=False,
         command="Refresh now", command_help="Sample every console once"),
    Spec("zoom", "z", "zoom", "Detail", "Enlarge or restore the detail panel", show=False,
         command="Enlarge detail panel", command_help="Toggle a full-screen detail panel"),
    Spec("help", "question_mark,f1", "help", "Help", "This help: every key and what it does", key_display="?",
         command="Help", command_help="Every key and what it does"),
    Spec("quit", "q", "quit", "Quit", "Quit xcinspect"),
)

ATTACH = (
    Spec("detach", "ctrl+right_square_bracket", "detach", "Detach",
         "Leave the console and return to the table (xl console's ^])", priority=True),
    Spec("scroll-mode", "f2,shift+pageup", "scroll_mode", "Scroll/search",
         "Stop typing to the guest: scroll, search, save and copy the scrollback",
         priority=True, key_display="F2"),
    Spec("search", "slash", "search", "Search", "Scroll mode: search the scrollback"),
    Spec("search-next", "n", "search_next", "Next", "Scroll mode: next match", group="Next/prev"),
    Spec("search-prev", "N", "search_prev", "Prev", "Scroll mode: previous match", group="Next/prev"),
    Spec("save", "s", "save", "Save", "Scroll mode: save the scrollback to a file"),
    Spec("copy", "y", "copy", "Copy", "Scroll mode: copy the current match or the visible lines (OSC 52)"),
    Spec("wrap", "w", "toggle_wrap", "Wrap", "Scroll mode: wrap long lines (as live) or scroll sideways",
         show=False),
    Spec("live", "i,escape", "live", "Type", "Scroll mode: back to typing to the guest", key_display="i"),
)

TAIL = (
    Spec("tail-back", "escape,q", "back", "Back", "Leave the tail and return to the table", key_display="esc"),
)

SCREENS = {"Domain table": MAIN, "Console (attach)": ATTACH, "Console (tail, read-only)": TAIL}

# A verdict's suggested action -> the binding that does it, and what to call it.
ACTION_KEYS = {
    "connect": ("connect", "connect"),
    "attach": ("attach", "attach"),
    "flag-connected": ("set-flag-connected", "set the flag back to connected"),
}


def verdict_sentence(verdict, keys: dict[str, str] | None = None, read_only: bool = False) -> str:
    """The verdict as a sentence with the key that does its suggested action, as the
    operator has it bound (``keys``: binding id -> key as displayed; default keys else)."""
    hint = ACTION_KEYS.get(verdict.action or "")
    if hint is None:
        return verdict.sentence()
    if read_only:
        return f"{verdict.reason} (read-only: actions are disabled)"
    binding, what = hint
    key = (keys or {}).get(binding) or ALL[binding].keys.split(",")[0]
    return f"{verdict.reason}: press {key} to {what}"
ALL = {s.id: s for specs in SCREENS.values() for s in specs}
WRITE_ACTIONS = frozenset(s.action for s in ALL.values() if s.writes)
