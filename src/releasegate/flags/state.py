"""Pure: a stack's flags as its files hold them, and the files with one flag changed.

`files` is one host's texts by store ("dotenv", "flagd"; None: no file). Values are
canonical text (releasegate.flags.values); secrets never leave as values: `shown` masks."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from releasegate.errors import BadInput
from releasegate.flags import dotenv, flagd

if TYPE_CHECKING:
    from releasegate.flags.config import FlagsConfig

MASK = "***"


def states(cfg: FlagsConfig, files: dict[str, str | None], name: str) -> dict[str, flagd.FlagState]:
    """store -> the flag's state in that store's file (value None: not set there)."""
    found: dict[str, flagd.FlagState] = {}
    for store in cfg.stores_of(name):
        text = files.get(store)
        if store == "dotenv":
            found[store] = flagd.FlagState(dotenv.get_value(text or "", name))
        else:
            found[store] = flagd.get_state(flagd.parse(text or ""), name)
    return found


def value_of(found: dict[str, flagd.FlagState]) -> flagd.FlagState:
    """One state for the flag on a host: its stores agree, or the first store's with the
    disagreement left for drift() to say."""
    first = next(iter(found.values()), flagd.FlagState(None))
    targeting = next((s.targeting for s in found.values() if s.targeting), None)
    return flagd.FlagState(first.value, targeting, first.state)


def drift_in_stores(found: dict[str, flagd.FlagState]) -> str:
    seen = {s.value for s in found.values()}
    if len(seen) > 1:
        return "stores differ: " + ", ".join(f"{k}={v}" for k, v in found.items())
    return ""


def changed(
    cfg: FlagsConfig,
    files: dict[str, str | None],
    name: str,
    value: str | None,
    targeting: dict[str, Any] | None,
) -> dict[str, str]:
    """store -> the new text of each store's file with `name` set (None: removed)."""
    decl = cfg.declared[name]
    out: dict[str, str] = {}
    for store in cfg.stores_of(name):
        text = files.get(store) or ""
        if store == "dotenv":
            out[store] = dotenv.set_value(text, name, value)
        else:
            variants = dict(decl.variants) if decl.variants else None
            doc = flagd.set_flag(
                flagd.parse(text), name, decl.type, value, targeting=targeting, variants=variants
            )
            out[store] = flagd.dump(doc)
    if targeting and "flagd" not in out:
        raise BadInput(
            f"{name} has no flagd store: targeting (a beta group, a percentage) needs a "
            "flagd flag file (flags.flagd)"
        )
    return out


def shown(cfg: FlagsConfig, name: str, value: str | None) -> str | None:
    """What the ledger, the events and the records may show of a value."""
    if value is not None and cfg.declared[name].secret:
        return MASK
    return value


def snapshot(cfg: FlagsConfig, hosts: dict[str, dict[str, str | None]]) -> dict[str, Any]:
    """Every declared flag's value (the most common over the hosts) and targeting, as the
    ledger keeps it with a release; a secret flag is only said to be there."""
    snap: dict[str, Any] = {}
    for name, decl in cfg.declared.items():
        if decl.secret:
            snap[name] = {"secret": True}
            continue
        per_host = [value_of(states(cfg, files, name)) for files in hosts.values()]
        if not per_host:
            continue
        counts = Counter(s.value for s in per_host)
        value = counts.most_common(1)[0][0]
        pick = next(s for s in per_host if s.value == value)
        snap[name] = {"value": value, "targeting": pick.targeting}
    return snap
