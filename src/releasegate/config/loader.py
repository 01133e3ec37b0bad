"""Find releasegate.yaml and load it into a validated Config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from releasegate import names
from releasegate.config.errors import Problem, from_validation, problem_at, raise_problems
from releasegate.config.locate import CREATE_HINT as _CREATE_HINT
from releasegate.config.schema import STACK_ONLY_KEYS, Config, default_check_name
from releasegate.config.values import did_you_mean
from releasegate.config.yamlsource import KeyPath, Source, format_path, load_yaml_file
from releasegate.errors import ConfigError

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig


def load_config(path: Path) -> Config:
    """Read, check and return the configuration; any problem raises one ConfigError."""
    filename = str(path)
    source = load_yaml_file(path)
    if not isinstance(source.data, dict):
        what = "it is empty" if source.data is None else f"got {type(source.data).__name__}"
        raise ConfigError(
            f"{filename}:{source.line_of(())}: expected a mapping with at least `stacks:` ({what})",
            hint=_CREATE_HINT,
        )
    problems: list[Problem] = []
    # Top-level `x-...` keys are free for YAML anchors (as in docker compose files).
    data = {k: v for k, v in source.data.items() if not k.startswith("x-")}
    data = _apply_defaults(source, data, problems)
    problems += _cross_checks(source, data)
    absolute = Path(os.path.abspath(path))
    try:
        context = {"base_dir": absolute.parent, "path": absolute}
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        problems += from_validation(exc, source, Config)
    if problems:
        raise_problems(source, problems)
    return config


def _apply_defaults(
    source: Source, data: dict[str, Any], problems: list[Problem]
) -> dict[str, Any]:
    """Copy `defaults` keys into every stack that does not set them (preflight: per field).

    Copies are recorded in `source.origins`, so an error in a copied value is
    reported once, at its line under `defaults`.
    """
    data = dict(data)
    defaults = data.pop("defaults", None)
    if defaults is None:
        return data
    if not isinstance(defaults, dict):
        problems.append(problem_at(source, ("defaults",), "expected a mapping (key: value)"))
        return data
    for key in defaults:
        if key in STACK_ONLY_KEYS:
            message = f"'{key}' cannot have a default; set it in each stack"
            problems.append(problem_at(source, ("defaults", key), message))
    usable = {k: v for k, v in defaults.items() if k not in STACK_ONLY_KEYS}
    stacks = data.get("stacks")
    if not isinstance(stacks, dict):
        return data
    data["stacks"] = {name: _merge_stack(source, name, st, usable) for name, st in stacks.items()}
    return data


def _merge_stack(source: Source, name: str, stack: StackConfig, defaults: dict[str, Any]) -> Any:
    if not isinstance(stack, dict):
        return stack
    stack = dict(stack)
    for key, value in defaults.items():
        if key not in stack:
            stack[key] = value
            source.origins[("stacks", name, key)] = ("defaults", key)
        elif key == "preflight" and isinstance(stack[key], dict) and isinstance(value, dict):
            own = stack[key]
            stack[key] = {**value, **own}
            for field in value.keys() - own.keys():
                source.origins[("stacks", name, key, field)] = ("defaults", key, field)
    return stack


def _cross_checks(source: Source, data: dict[str, Any]) -> list[Problem]:
    """Rules that span keys or stacks, checked on the raw data so they are
    reported together with the schema errors."""
    stacks = data.get("stacks")
    if not isinstance(stacks, dict):
        return []
    problems: list[Problem] = []
    edges: dict[str, str] = {}
    for name, stack in stacks.items():
        if not isinstance(stack, dict):
            continue
        target = stack.get("promote_from")
        at: KeyPath = ("stacks", name, "promote_from")
        if isinstance(target, str) and names.is_valid("stack", target):
            if target == name:
                problems.append(problem_at(source, at, "a stack cannot promote from itself"))
            elif target not in stacks:
                others = [s for s in stacks if s != name]
                message = f"no stack named '{target}'{did_you_mean(target, others)}"
                problems.append(problem_at(source, at, f"{message} (stacks: {', '.join(others)})"))
            else:
                edges[name] = target
        smoke_at: KeyPath = ("stacks", name, "smoke")
        problems += _unique_names(source, smoke_at, stack.get("smoke"), use_default=True)
        preflight = stack.get("preflight")
        if isinstance(preflight, dict):
            at = ("stacks", name, "preflight", "commands")
            problems += _unique_names(source, at, preflight.get("commands"), use_default=False)
    return problems + _cycles(source, edges)


def _cycles(source: Source, edges: dict[str, str]) -> list[Problem]:
    problems = []
    reported: set[frozenset[str]] = set()
    for start in edges:  # file order: a cycle is reported at its first stack in the file
        chain = [start]
        while chain[-1] in edges and edges[chain[-1]] not in chain:
            chain.append(edges[chain[-1]])
        if edges.get(chain[-1]) == start and frozenset(chain) not in reported:
            reported.add(frozenset(chain))
            loop = " -> ".join([*chain, start])
            at: KeyPath = ("stacks", start, "promote_from")
            problems.append(problem_at(source, at, f"promotion cycle: {loop}"))
    return problems


def _unique_names(source: Source, at: KeyPath, items: Any, *, use_default: bool) -> list[Problem]:
    if not isinstance(items, list):
        return []
    problems = []
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        # A check that is not exactly one kind is reported by the schema already.
        kinds = sum(k in item for k in ("http", "command", "sql")) if isinstance(item, dict) else 0
        if not isinstance(item, dict) or (use_default and kinds != 1):
            continue
        explicit = "name" in item
        name = item.get("name") if explicit or not use_default else default_check_name(item)
        if not isinstance(name, str):
            continue
        if name in first:
            where = format_path((*_shown(source, at), first[name]))
            message = f"name '{name}' is already used by {where}"
            if not explicit:
                message += " (a default name; set `name:` to tell them apart)"
            path = (*at, index, "name") if explicit else (*at, index)
            problems.append(problem_at(source, path, message))
        else:
            first[name] = index
    return problems


def _shown(source: Source, path: KeyPath) -> KeyPath:
    return problem_at(source, path, "").path
