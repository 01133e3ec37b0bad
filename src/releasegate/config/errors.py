"""Turn pydantic errors into `file:line: key.path: what is wrong` lines."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from releasegate.config.schema import SmokeCheck
from releasegate.config.values import did_you_mean
from releasegate.config.yamlsource import KeyPath, Source, format_path
from releasegate.errors import ConfigError

MAX_SHOWN = 25  # beyond this the list stops helping; fix the first ones and run again


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    path: KeyPath
    message: str


def problem_at(source: Source, path: KeyPath, message: str) -> Problem:
    """A problem about `path`, shown where its value was written (see Source.origins)."""
    shown = _origin(source, path)
    return Problem(source.line_of(shown), shown, message)


def raise_problems(source: Source, problems: list[Problem]) -> typing.NoReturn:
    # By line; within a line, in the order found (that is the order in the file).
    ordered = sorted(dict.fromkeys(problems), key=lambda p: p.line)
    lines = [f"{source.filename}:{p.line}: {format_path(p.path)}: {p.message}" for p in ordered]
    if len(lines) > MAX_SHOWN:
        lines[MAX_SHOWN:] = [f"... and {len(lines) - MAX_SHOWN} more problems"]
    raise ConfigError("\n".join(lines), hint=f"fix {source.filename} and run the command again")


def from_validation(error: ValidationError, source: Source, root: type[BaseModel]) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        path, owner = _walk(root, item["loc"])
        shown = _origin(source, path)
        message = _message(item, owner, source.raw.get(shown))
        problems.append(Problem(source.line_of(shown), shown, message))
    return problems


def _origin(source: Source, path: KeyPath) -> KeyPath:
    for cut in range(len(path), 0, -1):
        if path[:cut] in source.origins:
            return source.origins[path[:cut]] + path[cut:]
    return path


def _walk(
    root: type[BaseModel], loc: tuple[int | str, ...]
) -> tuple[KeyPath, type[BaseModel] | None]:
    """Follow a pydantic error location through the model types.

    Returns the path of keys in the data (union tags and '[key]' markers are
    dropped: they are not keys the user wrote) and the model that owns the
    last key, for did-you-mean suggestions.
    """
    path: list[str | int] = []
    tp: Any = root
    owner: type[BaseModel] | None = None
    for part in loc:
        if part == "[key]":
            continue
        tp = _unwrap(tp)
        if _is_union(tp):
            # A tagged union puts the chosen tag in the location: consume it, descend into it.
            tp = _tagged_member(tp, part)
            continue
        path.append(part)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            owner = tp
            tp = _field_type(tp, str(part))
        elif get_origin(tp) in (list, tuple):
            owner, tp = None, get_args(tp)[0]
        elif get_origin(tp) is dict:
            owner, tp = None, get_args(tp)[1]
        else:
            owner, tp = None, None
    return tuple(path), owner


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] (neither shows in a location)."""
    while True:
        if get_origin(tp) is typing.Annotated:
            tp = get_args(tp)[0]
        elif _is_union(tp) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType)


def _tagged_member(union: Any, tag: object) -> Any:
    for member in get_args(union):
        if get_origin(member) is typing.Annotated:
            if any(getattr(meta, "tag", None) == tag for meta in member.__metadata__):
                return member
    return None


def _field_type(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.validation_alias if isinstance(info.validation_alias, str) else name) == key:
            return info.annotation
    return None


def _sibling_with(owner: type[BaseModel], key: str) -> type[BaseModel] | None:
    """The other kind of smoke check, when `key` belongs to it (expect_status on a command)."""
    if not issubclass(owner, SmokeCheck):
        return None
    for sibling in SmokeCheck.__subclasses__():
        if sibling is not owner and key in sibling.model_fields:
            return sibling
    return None


def allowed_keys(model: type[BaseModel]) -> list[str]:
    keys = [
        info.validation_alias if isinstance(info.validation_alias, str) else name
        for name, info in model.model_fields.items()
    ]
    return keys + list(getattr(model, "ALSO_ALLOWED", ()))


# pydantic error type -> a short sentence; `{...}` are filled from the error's ctx.
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "path_type": "a path",
}


def _message(item: Any, owner: type[BaseModel] | None, raw: str | None) -> str:
    kind, ctx, value = item["type"], item.get("ctx") or {}, item.get("input")
    if kind == "missing":
        return "required, but not set"
    if kind == "extra_forbidden":
        key = str(item["loc"][-1])
        if owner is None:
            return f"unknown key '{key}'"
        if sibling := _sibling_with(owner, key):
            kind, other = getattr(owner, "KIND", ""), getattr(sibling, "KIND", "")
            return f"unknown key '{key}' for a {kind} check ('{key}' is for {other} checks)"
        return f"unknown key '{key}'{did_you_mean(key, allowed_keys(owner))}"
    if kind in _TYPE_WORDS:
        message = f"expected {_TYPE_WORDS[kind]}, got {_describe(value, raw)}"
        if kind == "string_type" and raw is not None:
            message += f'; put it in quotes: "{raw}"'
        elif kind in ("int_type", "float_type") and isinstance(value, str) and _numeric(value):
            message += "; remove the quotes"
        elif kind == "list_type" and isinstance(value, str):
            message += f"; write [{value}] for a list of one"
        return message
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}, got {_describe(value, raw)}"
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        limits = {k: _number(v) for k, v in ctx.items()}
        return f"must be {bounds[kind].format(**limits)}, got {_describe(value, raw)}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} entry"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_long" or kind == "string_too_long":
        return f"is too long (at most {ctx.get('max_length')})"
    return str(item["msg"]).removeprefix("Value error, ")


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(value: Any, raw: str | None) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"{raw or str(value).lower()} (read as true/false)"
    if isinstance(value, int | float):
        return f"{raw or value} (a number)"
    if isinstance(value, date):
        return f"{raw or value} (read as a date)"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
