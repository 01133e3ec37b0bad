"""Operations on compose stacks: sync (source -> run dir), prune (old images), the stack table."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate import names
from releasegate.engine.backups import BackupOps
from releasegate.engine.base import RunOutcome
from releasegate.errors import BadInput, ExitCode
from releasegate.model import CheckResult
from releasegate.runtimes.base import HostRuntime, PhaseResult

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.execution.hosts import StackHosts


class ComposeOps(BackupOps):
    def _compose_stack(self, name: str, command: str) -> Any:
        names.check("stack", name)
        stack = self.config.stack(name)
        if stack.runtime != "compose":
            raise BadInput(
                f"`releasegate {command}` works on compose stacks; {name} is a "
                f"{stack.runtime} stack"
            )
        if stack.on_ssh_hosts:
            # Both compare or remove against this machine's files and engine; a fleet's are
            # on its hosts.
            raise BadInput(
                f"`releasegate {command}` works on a stack on this machine; {name} runs on "
                f"{len(stack.hosts)} SSH host(s)",
                hint="keep each host's compose files in its dir with your provisioning tool; "
                "`docker image prune` on each host frees old images",
            )
        return stack

    def sync(self, name: str, *, dry_run: bool = False) -> tuple[RunOutcome, Any]:
        """Copy the stack's source config into its run dir, backing up what it replaces."""
        stack = self._compose_stack(name, "sync")
        source = stack.compose.source
        if source is None:
            raise BadInput(
                f"stack {name} has no compose.source to sync from",
                hint="set compose.source: the folder the team edits (e.g. a git checkout)",
            )
        if not Path(source).is_dir():
            raise BadInput(f"source folder {source} of stack {name} does not exist")
        token = os.urandom(6).hex()
        hosts = self._hosts(stack, token)
        try:
            return self._sync(stack, hosts, Path(source), token, dry_run=dry_run)
        finally:
            hosts.close()

    def _sync(
        self, stack: StackConfig, hosts: StackHosts, source: Path, token: str, *, dry_run: bool
    ) -> tuple[RunOutcome, Any]:
        from releasegate.sync import plan_sync

        runtime = hosts.first
        target = Path(str(stack.dir))
        plan = plan_sync(source, target, runtime.redact)
        out = RunOutcome("sync", stack.name, stack.env, "", "running", ExitCode.FAILED, "")
        summary = (
            f"{sum(c.kind == 'new' for c in plan.changes)} new, {len(plan.replaced)} changed, "
            f"{plan.unchanged} unchanged"
        )
        if dry_run:
            out.status, out.exit_code, out.message = "success", ExitCode.OK, summary + " (dry run)"
            return out, plan
        with self._locked(stack, "sync", "", token):
            out.version = hosts.running_version() or ""
            out.action_id = self._begin(
                stack, "sync", out.version, details={"source": str(source), "target": str(target)}
            )
            changes = [{"path": c.path, "kind": c.kind, "binary": c.binary} for c in plan.changes]
            self._step(out, stack, "diff", lambda: (True, summary, [], {"changes": changes}))
            if not plan.changes:
                return self._close(out, "success", ExitCode.OK, "already in sync: " + summary), plan
            if plan.replaced:
                res = self._step(
                    out,
                    stack,
                    "backup",
                    lambda: self._backup_files(stack, out.version, plan.replaced),
                )
                if not res.ok:
                    return self._close(out, "failed", ExitCode.FAILED, res.summary), plan
            res = self._step(out, stack, "copy", lambda: self._copy(runtime, plan))
            if not res.ok:
                return self._close(
                    out,
                    "failed",
                    ExitCode.FAILED,
                    res.summary,
                    hint="files already copied stay; the backup holds what they replaced",
                ), plan
            return self._close(out, "success", ExitCode.OK, f"synced: {summary}"), plan

    def _backup_files(
        self, stack: StackConfig, running: str, files: list[str]
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        """What sync is about to replace, as a backup set of its own."""
        from releasegate.backup.sources import FilesSource

        source = FilesSource(name="config", paths=tuple(files), base_dir=str(stack.dir))
        return self._take_backup(stack, running or None, None, sources=[source])

    @staticmethod
    def _copy(
        runtime: HostRuntime, plan: Any
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        phase = PhaseResult(True, "")
        done: list[str] = []
        for change in plan.changes:
            src = PurePosixPath(str(plan.source)) / change.path
            dest = PurePosixPath(str(plan.target)) / change.path
            tmp = dest.parent / f".{dest.name}.rg-tmp"
            # Each file lands whole: copied aside, then renamed over the old one.
            for argv in (
                ["mkdir", "-p", "--", str(dest.parent)],
                ["cp", "-p", "--", str(src), str(tmp)],
                ["mv", "-T", "--", str(tmp), str(dest)],
            ):
                result = runtime.transport.run(argv, timeout=120)
                phase.commands.append({"argv": argv, "exit_code": result.exit_code})
                if not result.ok:
                    runtime.transport.run(["rm", "-f", "--", str(tmp)], timeout=30)
                    return (
                        False,
                        f"copy of {change.path} failed: {result.describe()}",
                        [],
                        {"copied": done, **phase.evidence()},
                    )
            done.append(change.path)
        return True, f"copied {len(done)} file(s)", [], {"copied": done}

    def prune(
        self, name: str, *, keep: int | None = None, dry_run: bool = False
    ) -> tuple[RunOutcome, Any]:
        """Remove the images of old releases: keep the last N, the running, the verified
        and the last good ones; tags releasegate never deployed are never touched."""
        stack = self._compose_stack(name, "prune")
        token = os.urandom(6).hex()
        hosts = self._hosts(stack, token)
        try:
            return self._prune(stack, hosts, token, keep, dry_run=dry_run)
        finally:
            hosts.close()

    def _prune(
        self, stack: StackConfig, hosts: StackHosts, token: str, keep: int | None, *, dry_run: bool
    ) -> tuple[RunOutcome, Any]:
        from releasegate.prune import select_prunable
        from releasegate.runtimes import compose_commands as cc

        runtime = hosts.first
        keep_n = keep if keep is not None else stack.keep_releases
        out = RunOutcome("prune", stack.name, stack.env, "", "running", ExitCode.FAILED, "")
        with self._locked(stack, "prune", "", token):
            running = hosts.running_version()
            order = self.ledger.release_order(stack.name)
            protect = {v for v in (running, self.ledger.verified_version(stack.name)) if v}
            protect.update(self.ledger.good_versions(stack.name)[:2])
            repos = self._version_repos(stack, runtime, running or (order[0] if order else ""))
            present: dict[str, list[str]] = {}
            for repo in repos:
                listed = runtime.transport.run(
                    ["docker", "image", "ls", "--format", "{{.Tag}}", "--", repo], timeout=60
                )
                for tag in listed.stdout.split() if listed.ok else []:
                    present.setdefault(tag, []).append(f"{repo}:{tag}")
            choice = select_prunable(present, order, keep_n, protect)
            out.details = {"remove": choice.remove, "keep": choice.keep, "unknown": choice.unknown}
            if dry_run:
                out.status, out.exit_code = "success", ExitCode.OK
                out.message = f"would remove {len(choice.remove)} version(s) (dry run)"
                return out, choice
            out.version = running or ""
            out.action_id = self._begin(stack, "prune", out.version, details={"keep": keep_n})

            def remove() -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
                phase = PhaseResult(True, "")
                refs = [ref for tag in choice.remove for ref in present[tag]]
                for ref in refs:
                    result = runtime.transport.run(cc.image_rm(ref), timeout=120)
                    output = (result.stdout + result.stderr)[-300:]
                    phase.commands.append(
                        {"argv": cc.image_rm(ref), "exit_code": result.exit_code, "output": output}
                    )
                    phase.ok &= result.ok
                return (
                    phase.ok,
                    f"removed {len(refs)} image(s)",
                    [],
                    {**phase.evidence(), **out.details},
                )

            res = self._step(out, stack, "remove", remove)
            status, code = ("success", ExitCode.OK) if res.ok else ("failed", ExitCode.FAILED)
            return self._close(out, status, code, res.summary), choice

    @staticmethod
    def _version_repos(stack: StackConfig, runtime: HostRuntime, version: str) -> list[str]:
        """Repositories of the images that carry the version (tag stripped)."""
        from releasegate.runtimes import compose_commands as cc

        described = runtime.describe_artifact(version or "latest") or ""
        repos = []
        for ref in (r.strip() for r in described.split(",")):
            if ref and cc.image_tag(ref) == (version or "latest"):
                repos.append(ref.split("@", 1)[0].rsplit(":", 1)[0])
        return sorted(set(repos))

    def stacks_overview(self) -> list[dict[str, Any]]:
        """The seed's stack table: stack, run dir, source dir, health URL, versions."""
        rows = []
        for name, stack in self.config.stacks.items():
            hosts = self._hosts(stack, "stacks")
            try:
                running = hosts.running_version()
                flags = hosts.health_flags(running)
            finally:
                hosts.close()
            compose = stack.compose if stack.runtime == "compose" else None
            rows.append(
                {
                    "stack": name,
                    "env": stack.env,
                    "runtime": stack.runtime,
                    "run_dir": str(stack.dir),
                    "source_dir": str(compose.source) if compose and compose.source else "",
                    "health_url": (compose.health_url if compose else None)
                    or next((c.http for c in stack.smoke if getattr(c, "http", None)), ""),
                    "running": running,
                    "warnings": [f.message for f in flags],
                    "flags": sorted({f.kind for f in flags}),
                    "verified": self.ledger.verified_version(name),
                }
            )
        return rows
