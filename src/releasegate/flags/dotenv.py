"""A dotenv file edited as text: one key's value read, replaced, added or removed, and every
other byte of the file (comments, blank lines, order, other keys' quoting, line endings,
`export `) kept as it was.

Readers differ (docker compose, python-dotenv, django-environ, `set -a; . ./.env`), so a
value is written in the one form they all read the same way: bare when it is made of safe
characters, else in single quotes (no escapes, no interpolation anywhere). A value holding
a single quote and needing quotes is refused rather than written in a form some reader
would misread. An existing line keeps its quote style where that style can hold the value."""

from __future__ import annotations

import re

from releasegate.errors import BadInput

_LINE = re.compile(r"^(?P<lead>[ \t]*(?:export[ \t]+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=")
_BARE = re.compile(r"[A-Za-z0-9_.,:/@%+\-]*")
_DOUBLE_SAFE = re.compile(r'[^"\\$`]*')


def _lines(text: str) -> list[str]:
    """Lines with their endings; only `\n` ends a line (`\r\n` keeps its `\r`)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _split_ending(line: str) -> tuple[str, str]:
    for ending in ("\r\n", "\n"):
        if line.endswith(ending):
            return line[: -len(ending)], ending
    return line, ""


def _parse_value(rest: str) -> tuple[str, str, str]:
    """(value, quote, trailer) of what follows `KEY=`: the quote used ('' for none) and what
    comes after the value (an inline comment) kept for the rewrite."""
    stripped = rest.lstrip(" \t")
    if stripped[:1] in ("'", '"'):
        quote = stripped[0]
        i, out = 1, []
        while i < len(stripped):
            c = stripped[i]
            if quote == '"' and c == "\\" and i + 1 < len(stripped):
                nxt = stripped[i + 1]
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                i += 2
                continue
            if c == quote:
                return "".join(out), quote, stripped[i + 1 :]
            out.append(c)
            i += 1
        return stripped[1:], "", ""  # unclosed: read as written
    found = re.search(r"[ \t]+#", rest)
    value, trailer = (rest[: found.start()], rest[found.start() :]) if found else (rest, "")
    return value.strip(" \t"), "", trailer


def _assignments(text: str) -> list[tuple[int, str, str, str, str]]:
    """(line index, key, lead, value, quote) of each KEY=VALUE line."""
    found = []
    for i, raw in enumerate(_lines(text)):
        line = _split_ending(raw)[0]
        m = _LINE.match(line)
        if m:
            value, quote, _ = _parse_value(line[m.end() :])
            found.append((i, m["key"], m["lead"], value, quote))
    return found


def read_values(text: str) -> dict[str, str]:
    """Every key's value (the last assignment wins, as every reader has it)."""
    return {key: value for _i, key, _lead, value, _q in _assignments(text)}


def get_value(text: str, name: str) -> str | None:
    return read_values(text).get(name)


def render(value: str, quote: str = "") -> str:
    """`value` as it goes after `NAME=`; BadInput if no quoting keeps it one safe line."""
    if any(c in value for c in "\r\n\0"):
        raise BadInput("a dotenv value must be one line")
    if quote == '"' and _DOUBLE_SAFE.fullmatch(value):
        return f'"{value}"'
    if quote == "'" and "'" not in value:
        return f"'{value}'"
    if _BARE.fullmatch(value) and value:
        return value
    if "'" in value:
        raise BadInput(
            f"the value {value[:60]!r} needs quotes in a .env file and holds a single quote: "
            "readers disagree on escapes, so it cannot be written safely"
        )
    return f"'{value}'"


def set_value(text: str, name: str, value: str | None) -> str:
    """`text` with `name` set to `value` (None: every assignment of `name` removed).

    The effective (last) assignment is rewritten in place, keeping its `export `, its quote
    style and an inline comment; a new key is appended as `NAME=value` with the file's line
    ending. Every other line is kept byte for byte."""
    lines = _lines(text)
    mine = [i for i, key, *_ in _assignments(text) if key == name]
    if value is None:
        return "".join(line for i, line in enumerate(lines) if i not in mine)
    if mine:
        i = mine[-1]
        body, ending = _split_ending(lines[i])
        m = _LINE.match(body)
        assert m is not None  # found by _assignments on this very line
        _old, quote, trailer = _parse_value(body[m.end() :])
        head = body[: m.end()]
        lines[i] = f"{head}{render(value, quote)}{trailer}{ending}"
        return "".join(lines)
    ending = "\n"
    if lines:
        ending = _split_ending(lines[0])[1] or "\n"
        if not _split_ending(lines[-1])[1]:
            lines[-1] += ending
    return "".join(lines) + f"{name}={render(value)}{ending}"
