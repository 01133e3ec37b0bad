"""The `releases` runtime: release directories, shared links, the team's own phase
commands, and an atomically switched `current` symlink (seeds 002-004: PM2, Django,
systemd and cron services)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from releasegate.model import CheckResult
from releasegate.redact import Redactor
from releasegate.runtimes import releases_commands as rc
from releasegate.runtimes.base import PhaseResult
from releasegate.transport.base import CommandResult, Transport

# A team command that hangs must not hold the stack's lock forever.
PHASE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Artifact:
    kind: str  # "dir" | "tar.gz"
    path: Path


class ReleasesRuntime:
    def __init__(self, stack: Any, transport: Transport, redact: Redactor, token: str) -> None:
        self.stack = stack
        self.transport = transport
        self.redact = redact
        self.token = token  # unique per run: names temporary paths so runs never collide
        self.root = PurePosixPath(str(stack.dir))

    # -- facts ---------------------------------------------------------------------------
    def find_artifact(self, version: str) -> Artifact | None:
        base = Path(self.stack.artifacts)
        if (base / version).is_dir():
            return Artifact("dir", base / version)
        if (base / f"{version}.tar.gz").is_file():
            return Artifact("tar.gz", base / f"{version}.tar.gz")
        return None

    def describe_artifact(self, version: str) -> str | None:
        found = self.find_artifact(version)
        return str(found.path) if found else None

    def preflight_checks(self, version: str | None) -> list[CheckResult]:
        from releasegate.gates.preflight import shared_check

        checks = shared_check(self.root, list(self.stack.shared))
        if version is not None:
            found = self.find_artifact(version)
            checks.append(
                CheckResult(
                    "artifact",
                    found is not None,
                    f"artifact {found.path}"
                    if found
                    else f"no {version}/ or {version}.tar.gz under {self.stack.artifacts}",
                    hint="" if found else "build or copy the release artifact first",
                )
            )
        return checks

    def disk_path(self) -> PurePosixPath:
        return self.root

    def smoke_cwd(self) -> Path | None:
        path = Path(str(self.root / "current"))
        return path if path.exists() else None

    def running_version(self) -> str | None:
        result = self.transport.run(rc.read_current(self.root), timeout=30)
        return rc.version_from_link(result.stdout) if result.ok and result.stdout.strip() else None

    def is_prepared(self, version: str) -> bool:
        marker = rc.release_dir(self.root, version) / rc.MARKER
        return self.transport.run(["test", "-f", str(marker)], timeout=30).ok

    def present_releases(self) -> list[str]:
        result = self.transport.run(rc.list_releases(self.root), timeout=30)
        if not result.ok:
            return []
        return [n for n in result.stdout.split() if not n.startswith(".")]

    def env_for(self, version: str, previous: str | None = None) -> dict[str, str]:
        """What the team's commands see: values travel in the environment, never in a shell line."""
        env = {str(k): str(v) for k, v in (self.stack.env_vars or {}).items()}
        env.update(
            RELEASEGATE_STACK=self.stack.name,
            RELEASEGATE_ENV=self.stack.env,
            RELEASEGATE_VERSION=version,
            RELEASEGATE_PREVIOUS_VERSION=previous or "",
            RELEASEGATE_RELEASE_DIR=str(rc.release_dir(self.root, version)),
            RELEASEGATE_SHARED_DIR=str(self.root / "shared"),
            RELEASEGATE_DIR=str(self.root),
        )
        return env

    # -- phases --------------------------------------------------------------------------
    def prepare(self, version: str, previous: str | None) -> PhaseResult:
        """Unpack the artifact into releases/<version>, link shared entries, run `install`.

        A release is reused when it is already complete (versions are immutable); a
        half-prepared one (no marker: a crash or a failed install) is rebuilt.
        """
        phase = PhaseResult(True, "")
        if self.is_prepared(version):
            phase.summary = f"release {version} already prepared; reused"
            return phase
        artifact = self.find_artifact(version)
        if artifact is None:
            return PhaseResult(False, f"no artifact for {version} under {self.stack.artifacts}")
        final = rc.release_dir(self.root, version)
        tmp = rc.staging_dir(self.root, version, self.token)
        unpack = (
            rc.unpack_tarball(PurePosixPath(str(artifact.path)), tmp)
            if artifact.kind == "tar.gz"
            else rc.copy_tree(PurePosixPath(str(artifact.path)), tmp)
        )
        steps: list[list[str]] = [
            rc.mkdirs(rc.releases_dir(self.root), self.root / "shared"),
            rc.remove(tmp),
            rc.mkdirs(tmp),
            unpack,
            *rc.shared_links(self.root, tmp, list(self.stack.shared)),
            rc.remove(final),
            rc.rename_dir(tmp, final),
        ]
        if not self._run_all(phase, steps):
            self._run(phase, rc.remove(tmp))
            phase.summary = f"could not unpack {artifact.path.name}"
            return phase
        install = self.stack.commands.install
        if install is not None and not self._team(
            phase, install.argv(), version, previous, "install"
        ):
            return phase
        marker = json.dumps(
            {
                "version": version,
                "artifact": str(artifact.path),
                "prepared_at": datetime.now(UTC).isoformat(),
            }
        )
        if not self._run(phase, rc.write_file(final / rc.MARKER, marker + "\n")).ok:
            phase.summary = "could not mark the release prepared"
            return phase
        phase.summary = f"release {version} prepared from {artifact.path.name}"
        return phase

    def migrate(self, version: str, previous: str | None) -> PhaseResult:
        phase = PhaseResult(True, "")
        spec = self.stack.commands.migrate
        if spec is not None and self._team(phase, spec.argv(), version, previous, "migrate"):
            phase.summary = "migrate command passed"
        return phase

    def switch(self, version: str) -> PhaseResult:
        phase = PhaseResult(True, "")
        if self._run_all(phase, rc.switch_current(self.root, version, self.token)):
            phase.summary = f"current -> releases/{version}"
        else:
            phase.summary = "could not switch the current symlink"
        return phase

    def restart(self, version: str, previous: str | None) -> PhaseResult:
        phase = PhaseResult(True, "no restart command configured")
        spec = self.stack.commands.restart
        if spec is not None and self._team(
            phase, spec.argv(), version, previous, "restart", cwd=rc.release_dir(self.root, version)
        ):
            phase.summary = "restart command passed"
        return phase

    def stop(self, command: Any = None) -> PhaseResult:
        spec = command if command is not None else self.stack.commands.stop
        if spec is None:
            return PhaseResult(
                False,
                "no stop command: set commands.stop or backup.stop, so writers are stopped "
                "before the database is restored",
            )
        phase = PhaseResult(True, "")
        running = self.running_version() or ""
        result = self._run(
            phase,
            spec.argv(),
            cwd=Path(str(self.root)),
            env=self.env_for(running),
            timeout=PHASE_TIMEOUT_S,
            label="stop",
        )
        phase.summary = "stop command passed" if result.ok else f"stop failed: {result.describe()}"
        return phase

    def cleanup(self, newest_first: Sequence[str], protect: Iterable[str]) -> PhaseResult:
        """Keep the newest `keep_releases` (by the ledger's order, never by directory dates)
        plus every protected version; remove the rest and any stale half-made release."""
        phase = PhaseResult(True, "")
        listing = self.transport.run(rc.list_releases(self.root), timeout=30)
        names = listing.stdout.split() if listing.ok else []
        rank = {v: i for i, v in enumerate(newest_first)}
        present = sorted(
            (n for n in names if not n.startswith(".")), key=lambda n: rank.get(n, len(rank))
        )
        keep = set(present[: self.stack.keep_releases]) | set(protect)
        doomed = [n for n in present if n not in keep]
        stale = [n for n in names if n.startswith(".") and f".tmp-{self.token}" not in n]
        self._run_all(phase, [rc.remove(rc.releases_dir(self.root) / n) for n in doomed + stale])
        phase.summary = f"removed {len(doomed)} old release(s)" + (
            f": {', '.join(doomed)}" if doomed else ""
        )
        return phase

    # -- running commands ------------------------------------------------------------------
    def _team(
        self,
        phase: PhaseResult,
        argv: list[str],
        version: str,
        previous: str | None,
        label: str,
        cwd: PurePosixPath | None = None,
    ) -> bool:
        work = cwd or rc.release_dir(self.root, version)
        result = self._run(
            phase,
            argv,
            cwd=Path(str(work)),
            env=self.env_for(version, previous),
            timeout=PHASE_TIMEOUT_S,
            label=label,
        )
        if not result.ok:
            phase.summary = f"{label} command failed: {result.describe()}"
        return result.ok

    def _run_all(self, phase: PhaseResult, commands: list[list[str]]) -> bool:
        return all(self._run(phase, argv).ok for argv in commands)

    def _run(self, phase: PhaseResult, argv: list[str], **kw: Any) -> CommandResult:
        return phase.run(self.transport, self.redact, argv, **kw)
