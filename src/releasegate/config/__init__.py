"""releasegate.yaml -> validated, typed configuration.

`find_config_path` decides which file; `load_config` parses it with line
numbers and raises one ConfigError listing every problem as
`file:line: key.path: what is wrong`.

Names are imported on first use (PEP 562): `releasegate.config.locate` must stay
importable without pulling in pydantic, which read-only commands never need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from releasegate.config.loader import load_config
    from releasegate.config.locate import ENV_VAR, FILENAME, find_config_path, quick_state_url
    from releasegate.config.schema import (
        BackupConfig,
        CommandCheck,
        Config,
        HttpCheck,
        PreflightCommand,
        PreflightConfig,
        SmokeCheck,
        StackCommands,
        StackConfig,
    )
    from releasegate.config.values import CommandSpec, Host

_WHERE = {
    "load_config": "loader",
    "ENV_VAR": "locate",
    "FILENAME": "locate",
    "find_config_path": "locate",
    "quick_state_url": "locate",
    "CommandSpec": "values",
    "Host": "values",
    **dict.fromkeys(
        (
            "BackupConfig",
            "CommandCheck",
            "Config",
            "HttpCheck",
            "PreflightCommand",
            "PreflightConfig",
            "SmokeCheck",
            "StackCommands",
            "StackConfig",
        ),
        "schema",
    ),
}

__all__ = [
    "ENV_VAR",
    "FILENAME",
    "BackupConfig",
    "CommandCheck",
    "CommandSpec",
    "Config",
    "Host",
    "HttpCheck",
    "PreflightCommand",
    "PreflightConfig",
    "SmokeCheck",
    "StackCommands",
    "StackConfig",
    "find_config_path",
    "load_config",
    "quick_state_url",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'releasegate.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"releasegate.config.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value
