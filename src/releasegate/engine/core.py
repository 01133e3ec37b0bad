"""The engine: every workflow over one config, one ledger and one actor.

Each workflow lives in its own module (releasegate.workflows: deploy, rollback and
recovery, preflight/smoke/status; releasegate.engine: backups and restore, migrations,
compose sync and prune). They share the base's recording helpers and run on a stack's
hosts through one executor (releasegate.execution.hosts)."""

from __future__ import annotations

from releasegate.workflows.checks import ChecksFlow
from releasegate.workflows.flags import FlagsFlow


class Engine(ChecksFlow, FlagsFlow):
    pass
