"""`releasegate check STACK ENV` (seed 004's `health-check`, before and after a deploy): the
stack's preflight, its smoke and data checks against what runs, its scheduled jobs, the age
of its newest verified backup, its lock and the ledger, in one recorded run. Read-only: it
changes no host. Each part is the existing flow's own building block (the preflight and
smoke programs on the hosts, `cron verify`, the backup listing, the lock's and the chain's
checks), not a second implementation."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate import locks
from releasegate.engine.base import RunOutcome
from releasegate.errors import BadInput, ExitCode
from releasegate.model import CheckResult, Event

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.engine import Engine
    from releasegate.execution.hosts import StackHosts

Body = tuple[bool, str, list[CheckResult], dict[str, Any]]


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _preflight(engine: Engine, stack: StackConfig, hosts: StackHosts) -> Body:
    checks = hosts.preflight(None)
    for c in checks:
        engine.emit(Event("check", stack.name, step="preflight", ok=c.ok, message=c.summary))
    bad = [c for c in checks if not c.ok]
    summary = "; ".join(c.summary for c in bad) or f"{len(checks)} rule(s) passed"
    return not bad, summary, checks, {}


def _smoke(engine: Engine, stack: StackConfig, hosts: StackHosts, running: str | None) -> Body:
    if running is None:
        return False, "nothing runs: no release to smoke", [], {}
    if not stack.smoke:
        return True, "no smoke checks configured", [], {}
    outcomes = hosts.smoke(running)
    checks = [c for o in outcomes.values() for c in o.checks]
    for c in checks:
        engine.emit(Event("check", stack.name, step="smoke", ok=c.ok, message=c.summary))
    failed = [o for o in outcomes.values() if not o.ok]
    summary = "; ".join(o.summary for o in failed) or f"{len(checks)} check(s) passed"
    return engine._with_data_checks(stack, (not failed, summary, checks, {}))


def _cron(engine: Engine, stack: StackConfig, hosts: StackHosts) -> Body:
    phase = engine.cron_check(stack, hosts)
    return phase.ok, phase.summary, [], phase.evidence()


def _backup_age(engine: Engine, stack: StackConfig, limit: float | None) -> Body:
    """The newest backup that `backup verify` passed, against `limit` seconds."""
    from releasegate.backup.sets import list_backups

    verified: Any = None
    try:
        found, passed = engine._latest_verified(stack)
        verified = found if passed else None
    except BadInput:  # no complete backup at all
        found = None
    if verified is None:
        newest = list_backups(Path(engine.config.backups_dir), stack.name)
        what = (
            f"none verified (newest: {newest[0].id}; releasegate backup verify {stack.name})"
            if newest
            else "no backup yet"
        )
        if limit is None:
            return True, f"{what}; no limit set (check.max_backup_age)", [], {}
        return False, f"no verified backup: {what}", [], {"limit_s": limit}
    age = (datetime.now(UTC) - verified.created_at.astimezone(UTC)).total_seconds()
    evidence = {"backup": verified.id, "age_s": round(age), "limit_s": limit}
    said = f"newest verified backup {verified.id} is {_age(age)} old"
    if limit is None:
        return True, said + " (no limit set)", [], evidence
    if age > limit:
        return False, said + f", more than {_age(limit)}", [], evidence
    return True, said + f" (limit {_age(limit)})", [], evidence


def _lock(engine: Engine, stack: StackConfig) -> Body:
    held = next((lk for lk in engine.ledger.locks() if lk.stack == stack.name), None)
    pending = engine.needs_recovery(stack.name)
    if pending is not None:
        return (
            False,
            f"needs recovery: the {pending.action} of {pending.version} was interrupted "
            "after it started to switch (the next deploy or rollback recovers it)",
            [],
            {},
        )
    if held is None:
        return True, "not locked; no interrupted run", [], {}
    state = locks.holder_state(held, engine.actor.host)
    evidence = {"holder": locks.describe(held), "state": state}
    if state == "dead":
        return False, f"locked by a dead process: {locks.describe(held)}", [], evidence
    return True, f"a run holds the lock now: {locks.describe(held)} [{state}]", [], evidence


def _notify(engine: Engine, stack: StackConfig) -> Body:
    from releasegate.notify.targets import configs_for, missing_env, resolve

    problems = missing_env(engine.config, stack.name, os.environ)
    if problems:
        return False, "; ".join(problems), [], {}
    count = len(resolve(configs_for(engine.config, stack.name), os.environ))
    return True, f"{count} target(s) configured", [], {}


def _ledger(engine: Engine) -> Body:
    report = engine.ledger.verify_chain()
    if report.ok:
        return True, f"chain intact: {report.rows_checked} rows, head {report.head_seq}", [], {}
    why = report.message or f"chain broken at row {report.first_bad_seq}"
    return False, f"ledger: {why} (releasegate audit verify)", [], {}


def health_check(
    engine: Engine, name: str, env: str, *, max_backup_age: float | None = None
) -> RunOutcome:
    """One report; exit 0, or 3 naming each part that failed."""
    stack = engine.stack(name, env)
    limit = max_backup_age if max_backup_age is not None else stack.check.max_backup_age
    chain = _ledger(engine)  # before this run adds rows: the chain as it was found
    hosts = engine._hosts(stack, os.urandom(6).hex())
    try:
        running = hosts.running_version()
        out = RunOutcome("check", stack.name, stack.env, running or "", "running",
                         ExitCode.FAILED, "")  # fmt: skip
        out.action_id = engine._begin(stack, "check", running or "", details={"running": running})
        engine._step(out, stack, "preflight", lambda: _preflight(engine, stack, hosts))
        engine._step(out, stack, "smoke", lambda: _smoke(engine, stack, hosts, running))
        if stack.cron is not None:
            engine._step(out, stack, "cron", lambda: _cron(engine, stack, hosts))
        engine._step(out, stack, "backup-age", lambda: _backup_age(engine, stack, limit))
        engine._step(out, stack, "lock", lambda: _lock(engine, stack))
        if engine.config.notify is not None or stack.notify is not None:
            engine._step(out, stack, "notify-targets", lambda: _notify(engine, stack))
        engine._step(out, stack, "ledger", lambda: chain)
    finally:
        hosts.close()
    bad = [s for s in out.steps if not s.ok]
    if bad:
        said = "; ".join(f"{s.step}: {s.summary}" for s in bad)
        return engine._close(
            out, "failed", ExitCode.REFUSED, f"{len(bad)} of {len(out.steps)} part(s) failed: "
            f"{said}", ledger_status="fail", notes=said[:300],
        )  # fmt: skip
    return engine._close(
        out, "success", ExitCode.OK, f"{stack.name} is healthy: {len(out.steps)} part(s) passed"
    )
