"""Kinds of history: named groups of actions, a filter for `history --kind` and the
dashboard's history (`kind=`), so one filter finds, e.g., every sign-in and sign-out."""

from __future__ import annotations

from releasegate.errors import BadInput

KINDS: dict[str, tuple[str, ...]] = {
    # The dashboard's sign-ins (success, fail, refused when throttled) and sign-outs.
    "auth": ("sign-in", "sign-out"),
    "deploys": ("deploy", "rollback"),
}


def actions_of(kind: str) -> tuple[str, ...]:
    if kind not in KINDS:
        raise BadInput(f"unknown kind {kind!r}", hint=f"one of: {', '.join(KINDS)}")
    return KINDS[kind]


def pick(action: str | None, any_of: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """The actions a query keeps: `action`, any of `any_of` (a kind's), or both (their
    common part; none in common matches nothing: no action is named "")."""
    if action is None:
        return tuple(any_of)
    if any_of and action not in any_of:
        return ("",)
    return (action,)
