"""`releasegate migrate ...`: status, lint, resolve, rehearse, rollback of a stack's
schema migrations. Every change (resolve, rehearse, rollback) opens its ledger row before
it acts and closes it with its outcome and evidence, like a deploy's steps."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate import names
from releasegate.engine.backups import BackupOps
from releasegate.engine.base import RunOutcome
from releasegate.errors import BadInput, ExitCode, Refused
from releasegate.migrations.model import Status
from releasegate.model import CheckResult

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig

REHEARSE = "migrate-rehearse"
StepBody = tuple[bool, str, list[CheckResult], dict[str, Any]]


def _tail(text: str, lines: int = 12) -> list[str]:
    return [x for x in text.splitlines() if x.strip()][-lines:]


def status_evidence(status: Status) -> dict[str, Any]:
    return {
        "tool": status.tool,
        "database": status.database,
        "applied": status.applied,
        "pending": status.pending,
        "failed": status.failed,
        "drift": [
            {
                "migration": d.migration,
                "verdict": d.verdict,
                "present": list(d.present),
                "missing": list(d.missing),
                "evidence": list(d.evidence),
            }
            for d in status.drift
        ],
        "notes": list(status.notes),
    }


class MigrationOps(BackupOps):
    # -- wiring ------------------------------------------------------------------------------
    def _migration_stack(self, name: str) -> Any:
        names.check("stack", name)
        stack = self.config.stack(name)
        if stack.migrations is None:
            raise BadInput(
                f"stack {name} has no migrations: section",
                hint="add migrations: {tool: django|alembic|prisma|sql, database: SOURCE}",
            )
        return stack

    def _db_source(self, stack: StackConfig) -> Any:
        from releasegate.backup.from_config import sources_for

        for source in sources_for(stack):
            if source.name == stack.migration_settings.database:
                return source
        raise BadInput(
            f"no backup source {stack.migration_settings.database} in stack {stack.name}"
        )

    def adapter(self, stack: StackConfig, database: str | None = None) -> Any:
        from releasegate.migrations.dbclient import DbClient
        from releasegate.migrations.tools import adapter_for
        from releasegate.migrations.tools.base import ToolContext

        cfg = stack.migration_settings
        source = self._db_source(stack)
        if source.kind == "sqlite" and database is None and not source.db_path.is_file():
            # Django would create an empty file there: a wrong path must not look like a
            # new database with every migration pending.
            raise BadInput(
                f"the SQLite database {source.db_path} of source {source.name} does not exist",
                hint="check backup.sources[].path; a new app's first migrate is run once by hand",
            )
        ctx = ToolContext(
            tool=cfg.tool,
            argv=tuple(cfg.argv),
            cwd=Path(str(cfg.dir or stack.dir)),
            url_env=cfg.url_env,
            client=DbClient(source, self._secrets(stack)),
            database=database or source.database,
            folder=cfg.folder,
            history_table=cfg.history_table,
            apps=tuple(cfg.apps),
            timeout=cfg.timeout,
            actor=self.actor.user,
            path_env=cfg.path_env,
        )
        return adapter_for(ctx)

    # -- read-only -----------------------------------------------------------------------------
    def migrate_status(self, name: str) -> Status:
        from releasegate.migrations.service import status_with_drift

        return status_with_drift(self.adapter(self._migration_stack(name)))

    def migrate_lint(self, name: str) -> tuple[Status, Any]:
        from releasegate.migrations.service import lint_pending

        adapter = self.adapter(self._migration_stack(name))
        status = adapter.status()
        return status, lint_pending(adapter, status)

    def last_rehearsal(self, stack: StackConfig, *, version: str, head: str) -> Any:
        """The newest successful rehearsal of this stack for `version` (or, without one,
        for the migration `head`): what a deploy gate asks for."""
        for rec in reversed(self.ledger.actions(stack=stack.name, action=REHEARSE)):
            if rec.status != "success" or rec.details.get("head") != head:
                continue
            if not version or rec.version == version:
                self.ledger.ensure_action_trusted(rec.action_id)  # the gate trusts no forgery
                return rec
        return None

    # -- resolve -------------------------------------------------------------------------------
    def _refuse(
        self, stack: StackConfig, action: str, version: str, message: str, hint: str
    ) -> RunOutcome:
        out = RunOutcome(action, stack.name, stack.env, version, "running", ExitCode.REFUSED, "")
        out.action_id = self._begin(stack, action, version, notes=message)
        return self._close(out, "refused", ExitCode.REFUSED, message, hint=hint)

    def migrate_resolve(
        self, name: str, migration: str, *, applied: bool, reason: str, force: bool = False
    ) -> RunOutcome:
        """Seed 002's repair: capture the evidence, refuse what it does not support, let
        the tool mark the migration, check the history now says so."""
        from releasegate.migrations.service import status_with_drift
        from releasegate.migrations.tools.base import check_name

        stack = self._migration_stack(name)
        check_name(migration)
        mark = "applied" if applied else "rolled-back"
        action = "migrate-resolve"
        if stack.env == "prod" and not reason.strip():
            return self._refuse(
                stack, action, "", f"resolve {migration} --{mark} on prod needs --reason",
                "say why, e.g. --reason 'column added by hand in INC-42; history lacks it'",
            )  # fmt: skip
        adapter = self.adapter(stack)
        token = os.urandom(6).hex()
        with self._locked(stack, action, "", token):
            out = RunOutcome(action, stack.name, stack.env, "", "running", ExitCode.FAILED, "")
            out.details = {"migration": migration, "mark": mark}
            out.action_id = self._begin(
                stack, action, "", notes=f"{migration} --{mark}", reason=reason, forced=force,
                details=dict(out.details),
            )  # fmt: skip
            before: dict[str, Status] = {}

            def evidence() -> StepBody:
                status = status_with_drift(adapter)
                before["status"] = status
                ev = status_evidence(status)
                ev["history_row"] = adapter.history_evidence(migration)
                state = {m.name: m.state for m in status.migrations}.get(migration)
                drift = next((d for d in status.drift if d.migration == migration), None)
                problem = _resolve_problem(migration, applied, state, drift, force)
                ev["state"] = state
                found = "; ".join(drift.evidence) if drift else ev["history_row"]
                summary = f"{migration} is {state or 'unknown'}; {found}"
                return problem == "", problem or summary, [], ev

            res = self._step(out, stack, "evidence", evidence)
            out.details["evidence"] = res.evidence
            if not res.ok:
                return self._close(
                    out, "refused", ExitCode.REFUSED, res.summary,
                    hint="nothing was changed; the evidence is in the ledger",
                )  # fmt: skip

            def resolve() -> StepBody:
                result = adapter.resolve(migration, applied=applied, status=before["status"])
                ev = {"argv": list(result.argv), "output": _tail(result.stdout + result.stderr)}
                if not result.ok:
                    return False, f"resolve failed: {result.describe()}", [], ev
                return True, f"{migration} marked {mark}", [], ev

            res = self._step(out, stack, "resolve", resolve)
            if not res.ok:
                return self._close(out, "failed", ExitCode.FAILED, res.summary)

            def verify() -> StepBody:
                status = adapter.status()
                state = {m.name: m.state for m in status.migrations}.get(migration)
                want = "applied" if applied else "pending"
                ok = state == want
                return ok, f"{migration} is now {state} (want {want})", [], status_evidence(status)

            res = self._step(out, stack, "verify", verify)
            if not res.ok:
                return self._close(out, "failed", ExitCode.FAILED, res.summary)
            return self._close(out, "success", ExitCode.OK, f"{migration} resolved as {mark}")

    # -- rehearse ------------------------------------------------------------------------------
    def migrate_rehearse(
        self, name: str, *, version: str = "", backup_id: str | None = None
    ) -> RunOutcome:
        """Restore the latest verified backup (the newest one `backup verify` passed; the
        newest complete one when none was verified yet, and the record says so) into a
        scratch database, migrate it with the tool, check it, run the previous release's
        smoke command on it, drop it; the verdict is recorded for (stack, version, head)."""

        stack = self._migration_stack(name)
        if version:
            names.check("version", version)
        source = self._db_source(stack)
        adapter = self.adapter(stack)
        live = adapter.status()  # what the code brings, against the live history
        if backup_id is None:
            item, verified = self._latest_verified(stack)
        else:
            item, verified = self._find_backup(stack, backup_id), False
        entry = next((s for s in item.sources if s.get("name") == source.name), None)
        if entry is None:
            raise BadInput(f"backup {item.id} has no {source.name}: take a backup first")
        out = RunOutcome(REHEARSE, stack.name, stack.env, version, "running", ExitCode.FAILED, "")
        out.details = {
            "head": live.head,
            "pending": live.pending,
            "backup": item.id,
            "backup_verified": verified,
        }
        out.action_id = self._begin(
            stack, REHEARSE, version, notes=f"{len(live.pending)} pending, head {live.head}",
            details=dict(out.details),
        )  # fmt: skip
        secrets = self._secrets(stack)
        scratch: dict[str, Any] = {}

        def restore() -> StepBody:
            made = source.restore_to_scratch(item.path / str(entry["file"]), secrets=secrets)
            scratch["db"] = made
            return True, "; ".join(made.evidence), [], {"scratch": made.name}

        verdict, message = "fail", ""
        res = self._step(out, stack, "restore", restore)
        try:
            if not res.ok:
                message = f"could not restore backup {item.id}: {res.summary}"
            else:
                verdict, message = self._rehearse_on(out, stack, adapter, scratch["db"], source)
                if source.kind == "sqlite":
                    verdict, message = self._live_untouched(
                        out, stack, adapter, live, verdict, message
                    )
        finally:
            if "db" in scratch:
                made = scratch["db"]

                def drop() -> StepBody:
                    source.drop_scratch(made, secrets=secrets)
                    return True, f"dropped {made.name}", [], {}

                self._step(out, stack, "drop", drop)
        out.details["verdict"] = verdict
        if verdict == "pass":
            return self._close(out, "success", ExitCode.OK, message, notes="pass")
        return self._close(out, "failed", ExitCode.FAILED, message, notes=verdict, hint=(
            "the previous release does not work on the new schema: a rollback of the code "
            "alone would fail; make the migration backward compatible"
            if verdict == "rollback-unsafe" else
            "fix the migration; nothing ran on the live database"
        ))  # fmt: skip

    def _rehearse_on(
        self, out: RunOutcome, stack: StackConfig, adapter: Any, scratch: Any, source: Any
    ) -> tuple[str, str]:
        from releasegate.migrations.service import status_with_drift

        on_scratch = self.adapter(stack, scratch.name)
        took: dict[str, float] = {}

        def migrate() -> StepBody:
            before = on_scratch.status()
            t0 = time.monotonic()
            result = on_scratch.apply()
            took["s"] = time.monotonic() - t0
            ev = {
                "argv": list(result.argv),
                "pending_before": before.pending,
                "duration_s": round(took["s"], 3),
                "output": _tail(result.stdout + result.stderr, 20),
            }
            if not result.ok:
                line = (ev["output"] or [result.describe()])[-1]
                return False, f"migration failed on the restored data: {line}", [], ev
            return True, f"applied {len(before.pending)} migration(s) in {took['s']:.1f}s", [], ev

        res = self._step(out, stack, "migrate", migrate)
        out.details["migrate"] = res.evidence
        if not res.ok:
            return "fail", res.summary

        def check() -> StepBody:
            status = status_with_drift(on_scratch)
            results = source.run_checks(scratch, secrets=self._secrets(stack))
            checks = [
                CheckResult(f"sanity: {r.query}", r.ok, f"{r.query} {r.expect}: {r.detail}")
                for r in results
            ]
            problems = [c.summary for c in checks if not c.ok]
            if not status.clean:
                problems.insert(0, f"not clean after migrating: pending {status.pending}, "
                                f"failed {status.failed}, drift {len(status.drift)}")  # fmt: skip
            ev = status_evidence(status)
            summary = "; ".join(problems) or (f"status clean; {len(checks)} sanity check(s) passed")
            return not problems, summary, checks, ev

        res = self._step(out, stack, "check", check)
        if not res.ok:
            return "fail", res.summary

        smoke = stack.migration_settings.previous_smoke
        if smoke is not None:
            ctx = on_scratch.ctx

            def previous() -> StepBody:
                from releasegate.transport.local import LocalTransport

                result = LocalTransport().run(
                    smoke.argv(), cwd=ctx.cwd, env=ctx.env(), timeout=ctx.timeout
                )
                redact = ctx.client.redact
                ev = {
                    "argv": list(result.argv),
                    "output": _tail(redact(result.stdout + result.stderr)),
                }
                if not result.ok:
                    tail = ev["output"][-1] if ev["output"] else result.describe()
                    return (
                        False,
                        f"previous release's smoke failed on the new schema: {tail}",
                        [],
                        ev,
                    )
                return True, "previous release's smoke passed on the new schema", [], ev

            res = self._step(out, stack, "previous-smoke", previous)
            if not res.ok:
                return "rollback-unsafe", res.summary
        return "pass", (
            f"rehearsed {len(out.details.get('pending', []))} migration(s) on backup "
            f"{out.details.get('backup')} in {took.get('s', 0):.1f}s: pass"
        )

    def _live_untouched(
        self,
        out: RunOutcome,
        stack: StackConfig,
        adapter: Any,
        live: Status,
        verdict: str,
        message: str,
    ) -> tuple[str, str]:
        """SQLite: the live file's history must not have moved during the rehearsal. Django's
        default settings name the file itself (`BASE_DIR / 'db.sqlite3'`); a project that
        does not read the variable would have migrated production instead of the copy."""
        cfg = stack.migration_settings

        def check() -> StepBody:
            now = adapter.status()
            moved = sorted(set(now.applied) ^ set(live.applied))
            ev = {"applied_before": live.applied, "applied_after": now.applied}
            if moved:
                wanted = cfg.url_env + (f" or {cfg.path_env}" if cfg.path_env else "")
                return (
                    False,
                    "the live database's history changed during the rehearsal "
                    f"({', '.join(moved)}): the tool did not use the copy; its settings "
                    f"must read {wanted}",
                    [],
                    ev,
                )
            return True, "the live database's history is unchanged", [], ev

        res = self._step(out, stack, "live-untouched", check)
        return (verdict, message) if res.ok else ("fail", res.summary)

    # -- rollback ------------------------------------------------------------------------------
    def release_migrations(self, stack: StackConfig, version: str) -> tuple[str, list[str]]:
        """(deploy id, applied migrations) of the newest successful deploy of `version` on
        this stack, from its migrate step's record; the rows are checked, a forgery fails."""
        from releasegate.migrations.targets import recorded_applied

        names.check("version", version)
        for rec in reversed(self.ledger.actions(stack=stack.name, action="deploy")):
            if rec.version != version or rec.status != "success":
                continue
            self.ledger.ensure_action_trusted(rec.action_id)
            for step in self.ledger.children(rec.action_id):
                if step.action == "migrate" and step.status == "success":
                    self.ledger.ensure_action_trusted(step.action_id)
                    applied = recorded_applied(step.details)
                    if applied is not None:
                        return rec.action_id, applied
            raise BadInput(
                f"the deploy of {version} ({rec.action_id}) recorded no migration state",
                hint="name the migration: --to APP.NAME (Django) or --to REVISION (Alembic)",
            )
        raise BadInput(
            f"no successful deploy of {version} on {stack.name} in the ledger",
            hint="releasegate history --action deploy; or name the migration with --to",
        )

    def migrate_rollback(
        self, name: str, to: str | None, *, reason: str, release: str | None = None
    ) -> RunOutcome:
        """The tool's own downgrade to `to`, or to the migrations `release` ran on when it
        was last deployed here (the ledger's record), after a backup of the database."""
        from releasegate.backup.from_config import sources_for
        from releasegate.migrations.targets import rollback_targets

        stack = self._migration_stack(name)
        action = "migrate-rollback"
        if (to is None) == (release is None):
            raise BadInput("give --to NAME or --to-release VERSION (one of them)")
        goal = to if to is not None else f"release {release}"
        if stack.env == "prod" and not reason.strip():
            return self._refuse(
                stack, action, "", f"migrate rollback to {goal} on prod needs --reason",
                "say why, e.g. --reason 'release 42 rolled back; its migration too'",
            )  # fmt: skip
        adapter = self.adapter(stack)
        if stack.migration_settings.tool in ("prisma", "sql"):
            adapter.rollback(to or "", status=None)  # raises Refused with the restore hint
        recorded: tuple[str, list[str]] | None = None
        if release is not None:
            recorded = self.release_migrations(stack, release)
        token = os.urandom(6).hex()
        with self._locked(stack, action, "", token):
            out = RunOutcome(action, stack.name, stack.env, "", "running", ExitCode.FAILED, "")
            out.details = {"to": goal}
            if recorded is not None:
                out.details.update(release=release, release_deploy=recorded[0])
            out.action_id = self._begin(
                stack, action, "", notes=f"to {goal}", reason=reason, details=dict(out.details)
            )
            before = adapter.status()
            targets = [to] if to is not None else []
            if recorded is not None:
                try:
                    targets = rollback_targets(stack.migration_settings.tool, before, recorded[1])
                except (BadInput, Refused) as exc:  # nothing was changed
                    status = "refused" if isinstance(exc, Refused) else "failed"
                    return self._close(out, status, exc.exit_code, exc.message, hint=exc.hint)
                out.details["targets"] = targets
                if not targets:
                    return self._close(
                        out, "success", ExitCode.OK,
                        f"the migrations are already those {release} ran on",
                    )  # fmt: skip
            db_sources = [
                s for s in sources_for(stack) if s.name == stack.migration_settings.database
            ]
            res = self._step(
                out, stack, "backup",
                lambda: self._take_backup(stack, None, None, sources=db_sources),
            )  # fmt: skip
            if not res.ok:
                return self._close(out, "failed", ExitCode.FAILED, res.summary,
                                   hint="nothing was rolled back")  # fmt: skip
            out.details["backup"] = res.evidence.get("backup_id")

            def downgrade() -> StepBody:
                ev: dict[str, Any] = {"targets": targets}
                for target in targets:
                    result = adapter.rollback(target, status=before)
                    ev["argv"] = list(result.argv)
                    ev["output"] = _tail(result.stdout + result.stderr)
                    if not result.ok:
                        return False, f"downgrade to {target} failed: {result.describe()}", [], ev
                return True, f"downgraded to {', '.join(targets)}", [], ev

            res = self._step(out, stack, "downgrade", downgrade)
            if not res.ok:
                return self._close(
                    out, "failed", ExitCode.FAILED, res.summary,
                    hint=f"the backup {out.details['backup']} holds the state before",
                )  # fmt: skip

            def verify() -> StepBody:
                status = adapter.status()
                return (
                    True,
                    f"applied now: {', '.join(status.applied) or 'none'}",
                    [],
                    (status_evidence(status)),
                )

            self._step(out, stack, "verify", verify)
            return self._close(out, "success", ExitCode.OK, f"migrations rolled back to {goal}")


def _resolve_problem(
    migration: str, applied: bool, state: str | None, drift: Any, force: bool
) -> str:
    """Why the evidence does not support the resolve ('' when it does)."""
    if state is None:
        return f"{migration} is not a migration of this code"
    if applied:
        if state == "applied":
            return f"{migration} is already applied"
        if state == "failed" or force:
            return ""
        if drift is None:
            return (
                f"{migration} is pending and the database lacks what it creates (or it creates "
                "nothing releasegate can see): run it instead, or --force after checking by hand"
            )
        if drift.verdict != "applied-without-record":
            return f"{migration} is half applied: {drift.hint}"
        return ""
    if state == "pending":
        return f"{migration} is not applied: nothing to roll back"
    return ""
