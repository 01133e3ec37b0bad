"""Text for a terminal: recorded free text (reasons, command output, names read from files)
never reaches it raw.

A reason holding `ESC ] 0 ; ... BEL` retitles the reader's terminal, `ESC [ 2 J` clears it, a
carriage return overprints a line, a bidi override reorders what is seen. Every such
character is shown escaped (`\\x1b`), and text put inside Rich markup has its brackets
escaped too, so data can neither style the output nor break its markup.

- `printable(text)`: control characters escaped (newline and tab kept).
- `safe(text)`: printable, and Rich markup escaped: for data inside a markup string.
- `echo(text)`: click.echo of printable text.
- `make_console()`: a Rich console that applies `printable` to every string it renders
  (markup strings and table cells included): the net under every Rich print.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

# C0 but newline and tab, DEL, C1; the bidi embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# For JSON output: json.dumps escapes C0 itself; with ensure_ascii=False, not the rest.
_JSON_EXTRA = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character but newline and tab shown as an escape."""
    return _CONTROL.sub(_escaped, text) if _CONTROL.search(text) else text


def safe(text: object) -> str:
    """`text` for a Rich markup string: printable, and its brackets taken literally."""
    from rich.markup import escape

    return escape(printable(str(text)))


def json_printable(line: str) -> str:
    """A JSON text with the controls json.dumps leaves raw written as \\u escapes."""
    return _JSON_EXTRA.sub(lambda m: f"\\u{ord(m[0]):04x}", line)


def echo(text: str, *, err: bool = False, nl: bool = True) -> None:
    click.echo(printable(text), err=err, nl=nl)


def make_console(**options: Any) -> Console:
    return _console_class()(**options)


@cache
def _console_class() -> type[Console]:
    from rich.console import Console
    from rich.text import Text

    class SafeConsole(Console):
        def render_str(self, text: str, **kw: Any) -> Text:
            return super().render_str(printable(text), **kw)

    return SafeConsole
