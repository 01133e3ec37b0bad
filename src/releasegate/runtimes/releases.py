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
from releasegate.ops import Program, chain, chain_failure, cmd, run_sync
from releasegate.redact import Redactor
from releasegate.runtimes import releases_commands as rc
from releasegate.runtimes.base import PhaseResult
from releasegate.transport.base import DEFAULT_COMMAND_TIMEOUT_S, CommandResult, Transport

# A team command that hangs must not hold the stack's lock forever (`fleet.command_timeout`).
PHASE_TIMEOUT_S = DEFAULT_COMMAND_TIMEOUT_S


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
        fleet = getattr(stack, "fleet", None)
        self.command_timeout = fleet.command_timeout if fleet is not None else PHASE_TIMEOUT_S

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
            checks.append(self.artifact_check(version))
        return checks

    def artifact_check(self, version: str) -> CheckResult:
        """The artifact is on this machine (a fleet uploads it from here)."""
        found = self.find_artifact(version)
        return CheckResult(
            "artifact",
            found is not None,
            f"artifact {found.path}"
            if found
            else f"no {version}/ or {version}.tar.gz under {self.stack.artifacts}",
            hint="" if found else "build or copy the release artifact first",
        )

    def disk_path(self) -> PurePosixPath:
        return self.root

    def smoke_cwd(self) -> Path | None:
        path = Path(str(self.root / "current"))
        return path if path.exists() else None

    @property
    def remote(self) -> bool:
        """Artifacts live on the controller; a remote host gets them uploaded."""
        return getattr(self.transport, "name", "local") != "local"

    def running_version(self) -> str | None:
        return run_sync(self.running_version_ops(), self.transport)

    def running_version_ops(self) -> Program[str | None]:
        result: CommandResult = yield cmd(rc.read_current(self.root), timeout=30)
        return rc.version_from_link(result.stdout) if result.ok and result.stdout.strip() else None

    def is_prepared(self, version: str) -> bool:
        return run_sync(self.is_prepared_ops(version), self.transport)

    def is_prepared_ops(self, version: str) -> Program[bool]:
        marker = rc.release_dir(self.root, version) / rc.MARKER
        result: CommandResult = yield cmd(["test", "-f", str(marker)], timeout=30)
        return result.ok

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

    # -- phases (each a program of operations: see releasegate.ops) -----------------------
    def prepare(self, version: str, previous: str | None) -> PhaseResult:
        return run_sync(self.prepare_ops(version, previous), self.transport)

    def prepare_ops(
        self, version: str, previous: str | None, *, prepared: bool | None = None
    ) -> Program[PhaseResult]:
        """Unpack the artifact into releases/<version>, link shared entries, run `install`.

        A release is reused when it is already complete (versions are immutable); a
        half-prepared one (no marker: a crash or a failed install) is rebuilt. A remote host
        gets the artifact uploaded first (as one .tar.gz, checked by sha256 on arrival).
        `prepared` is what the caller already knows (a fleet's survey); None: ask the host.
        """
        phase = PhaseResult(True, "")
        if prepared is None:
            prepared = yield from self.is_prepared_ops(version)
        if prepared:
            phase.summary = f"release {version} already prepared; reused"
            return phase
        artifact = self.find_artifact(version)
        if artifact is None:
            return PhaseResult(False, f"no artifact for {version} under {self.stack.artifacts}")
        final = rc.release_dir(self.root, version)
        tmp = rc.staging_dir(self.root, version, self.token)
        leftovers = [tmp]  # removed when unpacking fails
        upload: PurePosixPath | None = None
        setup = [rc.remove(tmp), rc.mkdirs(rc.releases_dir(self.root), self.root / "shared", tmp)]
        if self.remote:
            # One command receives the artifact on stdin, checks its sha256 and unpacks it:
            # one round trip, no SFTP session.
            upload = rc.releases_dir(self.root) / f".{version}.upload-{self.token}.tar.gz"
            tarball = upload_tarball(artifact, self.token)
            digest = file_sha256(tarball)
            phase.facts["upload"] = {
                "path": str(upload),
                "sha256": digest,
                "bytes": tarball.stat().st_size,
            }
            leftovers.append(upload)
            unpack = [*setup, rc.receive(upload, digest), rc.unpack_tarball(upload, tmp)]
        else:
            if not (yield from phase.chain(self.redact, setup)).ok:
                phase.summary = f"could not create {tmp}"
                return phase
            source = PurePosixPath(str(artifact.path))
            unpack = [
                rc.unpack_tarball(source, tmp)
                if artifact.kind == "tar.gz"
                else rc.copy_tree(source, tmp)
            ]
        marker = json.dumps(
            {
                "version": version,
                "artifact": str(artifact.path),
                "prepared_at": datetime.now(UTC).isoformat(),
            }
        )
        install = self.stack.commands.install
        steps = [
            *unpack,
            *rc.shared_links(self.root, tmp, list(self.stack.shared)),
            # A half-made release of a crashed run, and the unpacked upload: one `rm`.
            rc.remove(final, *([upload] if upload else [])),
            rc.rename_dir(tmp, final),
        ]
        if install is None:  # complete in the same round trip
            steps.append(rc.write_file(final / rc.MARKER, marker + "\n"))
        stream = tarball if self.remote else None
        if not (yield from phase.chain(self.redact, steps, stdin=stream)).ok:
            yield from phase.chain(self.redact, [rc.remove(*leftovers)])
            phase.summary = f"could not unpack {artifact.path.name}"
            return phase
        if install is not None:
            if not (yield from self._team(phase, install.argv(), version, previous, "install")):
                return phase
            written = yield from self._run(phase, rc.write_file(final / rc.MARKER, marker + "\n"))
            if not written.ok:
                phase.summary = "could not mark the release prepared"
                return phase
        phase.summary = f"release {version} prepared from {artifact.path.name}"
        return phase

    def migrate(self, version: str, previous: str | None) -> PhaseResult:
        return run_sync(self.migrate_ops(version, previous), self.transport)

    def migrate_ops(self, version: str, previous: str | None) -> Program[PhaseResult]:
        phase = PhaseResult(True, "")
        spec = self.stack.commands.migrate
        if spec is not None and (
            yield from self._team(phase, spec.argv(), version, previous, "migrate")
        ):
            phase.summary = "migrate command passed"
        return phase

    def switch(self, version: str) -> PhaseResult:
        return run_sync(self.switch_ops(version), self.transport)

    def switch_ops(self, version: str) -> Program[PhaseResult]:
        phase = PhaseResult(True, "")
        switched = yield from phase.chain(
            self.redact, rc.switch_current(self.root, version, self.token)
        )
        if switched.ok:
            phase.summary = f"current -> releases/{version}"
        else:
            phase.summary = "could not switch the current symlink"
        return phase

    def restart(self, version: str, previous: str | None) -> PhaseResult:
        return run_sync(self.restart_ops(version, previous), self.transport)

    def restart_ops(self, version: str, previous: str | None) -> Program[PhaseResult]:
        phase = PhaseResult(True, "no restart command configured")
        spec = self.stack.commands.restart
        if spec is not None and (
            yield from self._team(
                phase,
                spec.argv(),
                version,
                previous,
                "restart",
                cwd=rc.release_dir(self.root, version),
            )
        ):
            phase.summary = "restart command passed"
        return phase

    def switch_restart_ops(
        self, version: str, previous: str | None
    ) -> Program[tuple[PhaseResult, PhaseResult]]:
        """`switch` then `restart` in one round trip (a fleet's rollout, host by host): the
        chain runs where and with what the restart command needs; the switch's commands
        use absolute paths and no environment."""
        spec = self.stack.commands.restart
        if spec is None:
            switched = yield from self.switch_ops(version)
            return switched, PhaseResult(True, "no restart command configured")
        switch_cmds = rc.switch_current(self.root, version, self.token)
        commands = [*switch_cmds, spec.argv()]
        result: CommandResult = yield cmd(
            chain(commands),
            cwd=rc.release_dir(self.root, version),
            env=self.env_for(version, previous),
            timeout=self.command_timeout,
        )
        failed_at = chain_failure(result)
        switched, restarted = PhaseResult(True, ""), PhaseResult(True, "")
        if (failed_at is not None and failed_at <= len(switch_cmds)) or result.error:
            switched.record(self.redact, [], result, shown=switch_cmds)
            switched.summary = f"could not switch the current symlink: {result.describe()}"
            restarted.ok, restarted.summary = False, "not run: the switch failed"
            return switched, restarted
        switched.summary = f"current -> releases/{version}"
        restarted.record(self.redact, [], result, "restart", shown=commands)
        restarted.summary = (
            "restart command passed"
            if result.ok
            else f"restart command failed: {result.describe()}"
        )
        return switched, restarted

    def stop(self, command: Any = None) -> PhaseResult:
        return run_sync(self.stop_ops(command), self.transport)

    def stop_ops(self, command: Any = None) -> Program[PhaseResult]:
        spec = command if command is not None else self.stack.commands.stop
        if spec is None:
            return PhaseResult(
                False,
                "no stop command: set commands.stop or backup.stop, so writers are stopped "
                "before the database is restored",
            )
        phase = PhaseResult(True, "")
        running = (yield from self.running_version_ops()) or ""
        result = yield from self._run(
            phase,
            spec.argv(),
            cwd=self.root,
            env=self.env_for(running),
            timeout=self.command_timeout,
            label="stop",
        )
        phase.summary = "stop command passed" if result.ok else f"stop failed: {result.describe()}"
        return phase

    def cleanup(self, newest_first: Sequence[str], protect: Iterable[str]) -> PhaseResult:
        return run_sync(self.cleanup_ops(newest_first, protect), self.transport)

    def cleanup_ops(
        self,
        newest_first: Sequence[str],
        protect: Iterable[str],
        names: Sequence[str] | None = None,
    ) -> Program[PhaseResult]:
        """Keep the newest `keep_releases` (by the ledger's order, never by directory dates)
        plus every protected version; remove the rest and any stale half-made release.
        `names`: releases/ as the caller already knows it (a fleet's survey); None: list it."""
        phase = PhaseResult(True, "")
        if names is None:
            listing: CommandResult = yield cmd(rc.list_releases(self.root), timeout=30)
            names = listing.stdout.split() if listing.ok else []
        rank = {v: i for i, v in enumerate(newest_first)}
        present = sorted(
            (n for n in names if not n.startswith(".")), key=lambda n: rank.get(n, len(rank))
        )
        keep = set(present[: self.stack.keep_releases]) | set(protect)
        doomed = [n for n in present if n not in keep]
        stale = [n for n in names if n.startswith(".") and f"-{self.token}" not in n]
        if doomed or stale:
            gone = [rc.remove(rc.releases_dir(self.root) / n) for n in doomed + stale]
            yield from phase.chain(self.redact, gone)
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
    ) -> Program[bool]:
        result = yield from self._run(
            phase,
            argv,
            cwd=cwd or rc.release_dir(self.root, version),
            env=self.env_for(version, previous),
            timeout=self.command_timeout,
            label=label,
        )
        if not result.ok:
            phase.summary = f"{label} command failed: {result.describe()}"
        return result.ok

    def _run(self, phase: PhaseResult, argv: list[str], **kw: Any) -> Program[CommandResult]:
        return phase.step(self.redact, argv, **kw)


_sums: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a local file, once per content (a fleet sends one file to every host)."""
    import hashlib

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _sums:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _sums[key] = digest.hexdigest()
    return _sums[key]


def upload_tarball(artifact: Artifact, token: str) -> Path:
    """The artifact as one .tar.gz to upload: itself, or a folder packed once per run (every
    host of a fleet gets the same file)."""
    if artifact.kind == "tar.gz":
        return artifact.path
    import tarfile
    import tempfile

    packed = Path(tempfile.gettempdir()) / f"releasegate-{token}" / f"{artifact.path.name}.tar.gz"
    if not packed.is_file():
        packed.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        part = packed.with_suffix(".part")
        with tarfile.open(part, "w:gz", compresslevel=6) as tar:
            tar.add(artifact.path, arcname=".")
        part.replace(packed)
    return packed
