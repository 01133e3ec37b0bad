"""Which releasegate.yaml, and where its ledger lives, without validating the whole file.

Read-only commands (history, verified, audit verify, lock status) need only the state
location. Reading it here skips pydantic's import and the schema (about 150 ms), and a
half-edited stack elsewhere in the file never locks anyone out of the history. Anything
unusual about `state` returns None, and the caller falls back to the full loader,
which explains the problem with file, line and key.
"""

from __future__ import annotations

import os
from pathlib import Path

from releasegate.errors import BadInput

FILENAME = "releasegate.yaml"
ENV_VAR = "RELEASEGATE_CONFIG"
DEFAULT_STATE = ".releasegate/state.db"
CREATE_HINT = (
    f"`releasegate init` writes a {FILENAME} for the app in this folder, "
    "`releasegate demo --dir DIR` an example one; or pass --config PATH "
    "(or set RELEASEGATE_CONFIG)"
)


def find_config_path(explicit: str | None) -> Path:
    """--config, else $RELEASEGATE_CONFIG, else releasegate.yaml here or in the nearest parent."""
    if explicit:
        return _existing(Path(explicit).expanduser(), "--config")
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _existing(Path(from_env).expanduser(), ENV_VAR)
    here = Path.cwd()
    for folder in (here, *here.parents):
        candidate = folder / FILENAME
        if candidate.is_file():
            return candidate
    raise BadInput(f"no {FILENAME} in {here} or any folder above it", hint=CREATE_HINT)


def _existing(path: Path, origin: str) -> Path:
    if path.is_dir():
        path = path / FILENAME  # a folder holding the file is accepted too
    if not path.is_file():
        raise BadInput(f"config file {path} (from {origin}) does not exist", hint=CREATE_HINT)
    return path


def quick_state_url(path: Path) -> str | None:
    """The `state` value resolved exactly as the full loader does, or None if unsure.

    The file is still read within the size limit and parsed whole (duplicate keys, alias
    bombs and syntax errors refused with file:line, as by every command); only the schema
    is skipped.
    """
    from releasegate.config.yamlsource import load_yaml_file

    data = load_yaml_file(path).data
    if not isinstance(data, dict):
        return None
    value = data.get("state", DEFAULT_STATE)
    if not isinstance(value, str) or not value.strip():
        return None
    if "://" in value:
        from releasegate.ledger.url import password_problem

        # A password in the file: the full loader refuses it with file:line.
        return None if password_problem(value) else value
    return _resolve(path, value)


def _resolve(config: Path, value: str) -> str | None:
    """As config/values.py resolves paths: against the file's folder, symlinks kept."""
    try:
        relative = Path(value).expanduser()
    except RuntimeError:  # "~someone" with no such user
        return None
    base = Path(os.path.abspath(config)).parent
    return str(Path(os.path.normpath(base / relative)))
