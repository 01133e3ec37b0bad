"""Recorded text on a terminal: control characters escaped, markup taken literally."""

import io

import pytest

from releasegate.cli.term import json_printable, make_console, printable, safe


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("plain text", "plain text"),
        ("line\nnext\ttab", "line\nnext\ttab"),  # kept
        ("\x1b]0;pwned\x07title", "\\x1b]0;pwned\\x07title"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("over\rwrite", "over\\x0dwrite"),
        ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),  # NUL, DEL, C1 (NEL, CSI)
        ("abc\u202edcba", "abc\\u202edcba"),  # a bidi override
        ("é ✔ 日本", "é ✔ 日本"),  # ordinary text untouched
    ],
)
def test_printable(raw, shown):
    assert printable(raw) == shown


def test_safe_escapes_markup_too():
    assert safe("[/] [bold]x\x1b") == "\\[/] \\[bold]x\\x1b"


def test_the_console_escapes_every_string_it_renders():
    from rich.table import Table

    out = io.StringIO()
    console = make_console(file=out, width=200, color_system=None)
    console.print("a \x1b[2J b")
    table = Table()
    table.add_column("notes")
    table.add_row("x\x07y")
    console.print(table)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "a \\x1b[2J b" in text and "x\\x07y" in text


def test_json_lines_escape_what_json_dumps_leaves_raw():
    import json

    line = json.dumps({"reason": "a\x9bb\u202ec\x1b"}, ensure_ascii=False)
    shown = json_printable(line)
    assert "\x9b" not in shown and "\u202e" not in shown and "\x1b" not in shown
    assert json.loads(shown) == {"reason": "a\x9bb\u202ec\x1b"}
