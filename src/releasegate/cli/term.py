"""Text for a terminal: recorded free text (reasons, command output, names read from files)
never reaches it raw.

A reason holding `ESC ] 0 ; ... BEL` retitles the reader's terminal, `ESC [ 2 J` clears it, a
carriage return overprints a line, a bidi override reorders what is seen. Every such
character is shown escaped (`\\x1b`), and text put inside Rich markup has its brackets
escaped too, so data can neither style the output nor break its markup.

- `printable(text)`: control characters escaped (newline and tab kept; releasegate.textsafe).
- `safe(text)`: printable, and Rich markup escaped: for data inside a markup string.
- `echo(text)`: click.echo of printable text.
- `make_console()`: a Rich console that applies `printable` to every string it renders
  (markup strings and table cells included): the net under every Rich print.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import click

from releasegate.textsafe import json_printable, printable

__all__ = ["echo", "json_printable", "make_console", "printable", "safe"]

if TYPE_CHECKING:
    from rich.console import Console


def safe(text: object) -> str:
    """`text` for a Rich markup string: printable, and its brackets taken literally."""
    from rich.markup import escape

    return escape(printable(str(text)))


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
