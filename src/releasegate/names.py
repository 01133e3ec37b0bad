"""Strict patterns for every name that can reach a command line or a path.

Stack, env and version names end up in argv elements, directory names and
ledger rows, so they are checked here once, before anything else happens.
"""

from __future__ import annotations

import re

from releasegate.errors import BadInput

STACK_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ENV_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# An image tag (Docker's grammar), or a content digest.
VERSION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[0-9a-f]{64}")
USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")

_KINDS = {
    "stack": (
        STACK_RE,
        "lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63",
    ),
    "env": (ENV_RE, "lowercase letters, digits, '-' and '_', starting with a letter, at most 32"),
    "version": (VERSION_RE, "letters, digits, '.', '-' and '_' (at most 128), or sha256:<64 hex>"),
    "user": (USER_RE, "letters, digits, '.', '@', '-' and '_', at most 64"),
}


def check(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid ``kind`` name, else raise BadInput saying why."""
    pattern, rule = _KINDS[kind]
    if not value:
        raise BadInput(f"{kind} name is empty")
    if ".." in value:
        raise BadInput(f"{kind} {value!r} contains '..'")
    if not pattern.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise BadInput(f"{kind} {shown!r} is not allowed: use {rule}")
    return value


def is_valid(kind: str, value: str) -> bool:
    try:
        check(kind, value)
    except BadInput:
        return False
    return True
