"""The engine: runs plans and records every step (see core.py, backups.py, compose_ops.py)."""

from releasegate.engine.base import RunOutcome, StackStatus
from releasegate.engine.core import Engine

__all__ = ["Engine", "RunOutcome", "StackStatus"]
