"""Flag names and values: checked before they reach a file, a command or the ledger.

A dotenv name is a shell variable name; a flagd key is a little wider (dots and dashes).
A value is one line of printable text, normalised by the flag's type so that the ledger,
the files and the comparisons all see one spelling (`True` -> `true`, `010` -> `10`)."""

from __future__ import annotations

import re

from releasegate.errors import BadInput

DOTENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
FLAGD_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
VARIANT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,12})?")
MAX_VALUE = 1024  # characters of a string flag's value
TYPES = ("bool", "string", "number")
_TRUE = ("true", "on", "yes", "1")
_FALSE = ("false", "off", "no", "0")


def check_name(name: str, *, dotenv: bool) -> str:
    """`name` if it is a valid flag name for the stores it lives in, else BadInput."""
    pattern, rule = (
        (DOTENV_NAME, "letters, digits and '_', not starting with a digit (a variable name)")
        if dotenv
        else (FLAGD_KEY, "letters, digits, '_', '.' and '-'")
    )
    if not name or not pattern.fullmatch(name) or ".." in name:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise BadInput(f"flag name {shown!r} is not allowed: use {rule}, at most 128")
    return name


def check_variant(name: str) -> str:
    if not VARIANT.fullmatch(name):
        raise BadInput(f"variant {name[:60]!r} is not allowed: use letters, digits, '_.-'")
    return name


def normalize(kind: str, value: str) -> str:
    """The canonical text of `value` for a flag of type `kind`; BadInput if it is not one."""
    if not isinstance(value, str):
        raise BadInput(f"a flag value is text, not {type(value).__name__}")
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise BadInput(
            f"flag value contains the control character {bad!r} (a newline would add a line "
            "to the file): a value is one line of text"
        )
    if kind == "bool":
        low = value.strip().lower()
        if low in _TRUE:
            return "true"
        if low in _FALSE:
            return "false"
        raise BadInput(f"{value[:60]!r} is not a bool: use true or false")
    if kind == "number":
        if not NUMBER.fullmatch(value.strip()):
            raise BadInput(f"{value[:60]!r} is not a number (e.g. 10, -2, 0.25)")
        text = value.strip()
        return str(float(text)) if "." in text else str(int(text))
    if kind == "string":
        if len(value) > MAX_VALUE:
            raise BadInput(f"flag value is {len(value)} characters: at most {MAX_VALUE}")
        return value
    raise BadInput(f"unknown flag type {kind!r}: use one of {', '.join(TYPES)}")


def typed(kind: str, text: str) -> bool | float | int | str:
    """A canonical value as the JSON value a flagd variant holds."""
    if kind == "bool":
        return text == "true"
    if kind == "number":
        return float(text) if "." in text else int(text)
    return text


def as_text(value: object) -> str | None:
    """A flagd variant's JSON value as canonical text (None: not a scalar)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    return None
