"""The engine: every workflow over one config and one ledger (see core.py). Imported lazily:
the workflows build on engine.base, and the Engine is made of the workflows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from releasegate.engine.base import RunOutcome, StackStatus
    from releasegate.engine.core import Engine

__all__ = ["Engine", "RunOutcome", "StackStatus"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from releasegate.engine.core import Engine

        return Engine
    if name in ("RunOutcome", "StackStatus"):
        from releasegate.engine import base

        return getattr(base, name)
    raise AttributeError(name)
