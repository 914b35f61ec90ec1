"""The command palette: per-domain commands (connect, attach, disconnect, show)."""

from __future__ import annotations

from functools import partial

from rich.style import Style
from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider

from xcinspect.tui import bindings

# (action, verb, help, writes): the bindings that have a per-domain entry, and "Show".
PER_DOMAIN = tuple((s.action, s.domain_verb, s.domain_help, s.writes) for s in bindings.MAIN if s.domain_verb) + (
    ("show", "Show", "select this domain in the table", False),
)


def refused(action: str, r) -> bool:
    """Would the engine (or the app) refuse ``action`` on this row as it stands? Then the
    palette does not offer it (the key still says why, when pressed)."""
    if action in ("connect", "attach", "set_flag", "set_flag_connected") and r.qemu:
        return True  # QEMU's console: xcinspect does not act on it
    if action == "connect":
        return bool(r.serviced_by)  # already serviced (xenconsoled, xcinspect, or the port bound)
    if action == "force_disconnect":
        return not r.attached and r.serviced_by != "xcinspect"  # nothing to disconnect
    return False


def highlight(matcher, text: str) -> Text:
    """Like ``Matcher.highlight`` but never parses ``text`` as markup (it holds guest names)."""
    t = Text(text)
    _, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for o in offsets:
        if not text[o].isspace():
            t.stylize(Style(bold=True, underline=True), o, o + 1)
    return t


class DomainCommands(Provider):
    """``Connect dom 7 (web-3)`` and friends, for every domain the table knows."""

    def _rows(self):
        app = self.app
        main = getattr(app, "main", None)
        return main.rows if main is not None else ()

    def _commands(self):
        app = self.app
        for r in self._rows():
            for action, verb, help_text, writes in PER_DOMAIN:
                if writes and (app.read_only or refused(action, r)):
                    continue
                text = f"{verb} dom {r.domid} ({r.name})"
                yield text, partial(app.domain_command, action, r.domid), f"{r.state}: {help_text}"

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, highlight(matcher, text), callback, text=text, help=help_text)

    async def discover(self) -> Hits:
        # Problem domains first: those are what an operator opens the palette for.
        app = self.app
        rows = sorted(self._rows(), key=lambda r: (not r.problem, r.domid))[:20]
        for r in rows:
            if r.action in ("connect", "attach") and not app.read_only:
                verb = "Connect" if r.action == "connect" else "Attach"
                text = f"{verb} dom {r.domid} ({r.name})"
                yield DiscoveryHit(Text(text), partial(app.domain_command, r.action, r.domid), text=text,
                                   help=r.state)
