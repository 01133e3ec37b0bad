"""OpenFeature flagd flag files (https://flagd.dev/reference/flag-definitions/): read,
validated, and one flag set, the others kept as they were.

A flag is `{"state", "variants", "defaultVariant", "targeting"?}`. releasegate sets the
default variant (the value everyone gets) and, optionally, a targeting rule (JsonLogic)
giving one variant to a beta group or a share of users: seed 003's dark launch, beta
group, everyone, off again, without a flag server (the SDK's file/in-process provider
reads the file)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from releasegate.errors import BadInput
from releasegate.flags import values

SCHEMA = "https://flagd.dev/schema/v0/flags.json"
MAX_BYTES = 1024 * 1024  # a flag file read at most
MAX_TARGETING = 16 * 1024  # characters of one targeting rule, as JSON
_TOP_KEYS = ("$schema", "flags", "$evaluators", "metadata")
_FLAG_KEYS = ("state", "variants", "defaultVariant", "targeting", "metadata")
BOOL_VARIANTS = {"on": True, "off": False}


@dataclass(frozen=True)
class FlagState:
    """One flag as a file holds it: the default value as text, the targeting rule."""

    value: str | None  # the default variant's value (None: the flag is not in the file)
    targeting: dict[str, Any] | None = None
    state: str = "ENABLED"


def parse(text: str) -> dict[str, Any]:
    """A flag file's document, checked (BadInput says what is wrong); '' is an empty one."""
    if not text.strip():
        return {"$schema": SCHEMA, "flags": {}}
    if len(text) > MAX_BYTES:
        raise BadInput(f"the flag file is larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise BadInput(f"the flag file is not JSON: {exc}") from None
    validate(doc)
    return doc  # type: ignore[no-any-return]


def validate(doc: Any) -> None:
    """The parts of the flagd schema a provider relies on."""
    if not isinstance(doc, dict) or not isinstance(doc.get("flags"), dict):
        raise BadInput("a flagd file is an object with a 'flags' object")
    extra = [k for k in doc if k not in _TOP_KEYS]
    if extra:
        raise BadInput(f"flagd file: unknown top-level key(s) {', '.join(map(repr, extra))}")
    for key, flag in doc["flags"].items():
        values.check_name(key, dotenv=False)
        where = f"flagd flag {key!r}"
        if not isinstance(flag, dict):
            raise BadInput(f"{where} is not an object")
        extra = [k for k in flag if k not in _FLAG_KEYS]
        if extra:
            raise BadInput(f"{where}: unknown key(s) {', '.join(map(repr, extra))}")
        if flag.get("state") not in ("ENABLED", "DISABLED"):
            raise BadInput(f"{where}: state must be ENABLED or DISABLED")
        variants = flag.get("variants")
        if not isinstance(variants, dict) or not variants:
            raise BadInput(f"{where}: variants must be a non-empty object")
        kinds = {_kind(v) for v in variants.values()}
        if len(kinds) != 1 or None in kinds:
            raise BadInput(f"{where}: variants must all be booleans, strings, numbers or objects")
        default = flag.get("defaultVariant")
        if default is not None and default not in variants:
            raise BadInput(f"{where}: defaultVariant {default!r} is not one of its variants")
        targeting = flag.get("targeting")
        if targeting is not None and not isinstance(targeting, dict):
            raise BadInput(f"{where}: targeting must be an object (a JsonLogic rule)")


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return None


def dump(doc: dict[str, Any]) -> str:
    validate(doc)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def get_state(doc: dict[str, Any], name: str) -> FlagState:
    flag = doc.get("flags", {}).get(name)
    if not isinstance(flag, dict):
        return FlagState(None)
    default = flag.get("defaultVariant")
    value = values.as_text(flag["variants"].get(default)) if default is not None else None
    return FlagState(value, flag.get("targeting") or None, str(flag.get("state", "ENABLED")))


def variant_for(variants: dict[str, Any], kind: str, text: str) -> tuple[str, dict[str, Any]]:
    """The variant whose value is `text` (added, named after the value, if none is)."""
    wanted = values.typed(kind, text)
    for name, value in variants.items():
        if _kind(value) == _kind(wanted) and value == wanted:
            return name, variants
    if kind == "bool":
        name = "on" if wanted else "off"
    else:
        name = text if values.VARIANT.fullmatch(text) else ""
        if not name:
            raise BadInput(
                f"no variant holds {text[:60]!r}, and it cannot name a new one: add it to the "
                "flag's variants in releasegate.yaml"
            )
    if name in variants:
        raise BadInput(f"variant {name!r} already holds another value")
    return name, {**variants, name: wanted}


def set_flag(
    doc: dict[str, Any],
    name: str,
    kind: str,
    text: str | None,
    *,
    targeting: dict[str, Any] | None = None,
    variants: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A new document with flag `name` set to `text` for everyone, `targeting` giving other
    variants to some (None: no targeting). `text` None removes the flag. Other flags keep
    their definitions; this one keeps its variants and metadata."""
    flags = dict(doc.get("flags", {}))
    if text is None:
        flags.pop(name, None)
        return {**doc, "flags": flags}
    found = flags.get(name)
    old: dict[str, Any] = found if isinstance(found, dict) else {}
    known = dict(old.get("variants") or variants or (BOOL_VARIANTS if kind == "bool" else {}))
    default, known = variant_for(known, kind, text)
    flag: dict[str, Any] = {"state": "ENABLED", "variants": known, "defaultVariant": default}
    if targeting:
        check_targeting(targeting, known)
        flag["targeting"] = targeting
    if "metadata" in old:
        flag["metadata"] = old["metadata"]
    flags[name] = flag
    new = {"$schema": SCHEMA, **doc, "flags": flags}
    validate(new)
    return new


def check_targeting(rule: Any, variants: dict[str, Any]) -> None:
    """A JsonLogic rule of bounded size whose literal variant names are the flag's own."""
    if not isinstance(rule, dict) or not rule:
        raise BadInput("a targeting rule is a JSON object (JsonLogic)")
    if len(json.dumps(rule)) > MAX_TARGETING:
        raise BadInput(f"the targeting rule is larger than {MAX_TARGETING} characters")
    named = set()
    if "fractional" in rule and isinstance(rule["fractional"], list):
        named = {b[0] for b in rule["fractional"] if isinstance(b, list) and b}
    elif "if" in rule and isinstance(rule["if"], list):
        named = {v for v in rule["if"][1:] if isinstance(v, str)}
    unknown = sorted(str(v) for v in named if v not in variants)
    if unknown:
        raise BadInput(f"the targeting rule names unknown variant(s): {', '.join(unknown)}")


def percentage_rule(variant: str, percent: int, other: str) -> dict[str, Any]:
    """`percent`% of users (bucketed by their targeting key) get `variant`, the rest `other`."""
    if not 0 <= percent <= 100:
        raise BadInput("--percentage is 0 to 100")
    return {
        "fractional": [
            {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]},
            [variant, percent],
            [other, 100 - percent],
        ]
    }


def users_rule(variant: str, users: list[str]) -> dict[str, Any]:
    """These users (their targeting key) get `variant`; everyone else the default (null)."""
    clean = [u.strip() for u in users if u.strip()]
    if not clean or len(clean) > 1000:
        raise BadInput("--users takes 1 to 1000 comma-separated names")
    for user in clean:
        if len(user) > 256 or any(ord(c) < 0x20 for c in user):
            raise BadInput(f"user {user[:60]!r} is not allowed")
    return {"if": [{"in": [{"var": "targetingKey"}, clean]}, variant, None]}


def summary(targeting: dict[str, Any] | None) -> str:
    """A short human line for a targeting rule (history, list)."""
    if not targeting:
        return ""
    if "fractional" in targeting:
        parts = [b for b in targeting["fractional"] if isinstance(b, list) and len(b) == 2]
        return ", ".join(f"{b[1]}% {b[0]}" for b in parts) or "fractional"
    rule = targeting.get("if")
    if isinstance(rule, list) and rule and isinstance(rule[0], dict) and "in" in rule[0]:
        listed = rule[0]["in"][1] if len(rule[0]["in"]) > 1 else []
        if isinstance(listed, list) and len(rule) > 1:
            return f"{len(listed)} user(s) get {rule[1]}"
    return "custom rule"
