"""The `releases` runtime: release directories, shared links, the team's own phase
commands, and an atomically switched `current` symlink (seeds 002-004: PM2, Django,
systemd and cron services)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate.artifacts import Limits
from releasegate.model import CheckResult
from releasegate.ops import Program, cmd, done
from releasegate.redact import Redactor
from releasegate.retention import keep_newest
from releasegate.runtimes import releases_commands as rc
from releasegate.runtimes.base import HostSurvey, PhaseResult, base_env
from releasegate.transport.base import CommandResult, Transport

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig


@dataclass(frozen=True)
class Artifact:
    kind: str  # "dir" | "tar.gz"
    path: Path


class ReleasesRuntime:
    def __init__(
        self, stack: StackConfig, transport: Transport, redact: Redactor, token: str
    ) -> None:
        self.stack = stack
        self.transport = transport
        self.redact = redact
        self.token = token  # unique per run: names temporary paths so runs never collide
        self.root = PurePosixPath(str(stack.dir))
        # A team command that hangs must not hold the stack's lock forever.
        self.command_timeout: float = stack.fleet.command_timeout

    # -- facts ---------------------------------------------------------------------------
    def find_artifact(self, version: str) -> Artifact | None:
        base = self.stack.artifacts_dir
        if (base / version).is_dir():
            return Artifact("dir", base / version)
        if (base / f"{version}.tar.gz").is_file():
            return Artifact("tar.gz", base / f"{version}.tar.gz")
        return None

    def describe_artifact(self, version: str) -> str | None:
        found = self.find_artifact(version)
        return str(found.path) if found else None

    def controller_checks(self, version: str | None) -> list[CheckResult]:
        return [self.artifact_check(version)] if version is not None else []

    def artifact_check(self, version: str) -> CheckResult:
        """The artifact is on this machine (an SSH host gets it uploaded from here), and
        it passes the inspection (types, names, links, limits): a hostile artifact is a
        refusal before anything, the backup included, is done. The inspection is kept for
        prepare (one read per run)."""
        from releasegate.artifacts import ArtifactRefused, inspect_for_run

        found = self.find_artifact(version)
        if found is None:
            return CheckResult(
                "artifact",
                False,
                f"no {version}/ or {version}.tar.gz under {self.stack.artifacts}",
                hint="build or copy the release artifact first",
            )
        try:
            inspect_for_run(found.path, self._limits(), self.token)
        except ArtifactRefused as exc:
            return CheckResult(
                "artifact",
                False,
                f"artifact {found.path} refused: {exc.message}",
                {"path": str(found.path)},
                hint=exc.hint or "build the artifact again without what it was refused for",
            )
        return CheckResult("artifact", True, f"artifact {found.path}")

    def content(self, version: str) -> dict[str, str]:
        """The artifact's sha256 from this run's one inspection (preflight and prepare use
        the same); a refused artifact is still hashed, for the promotion gate to compare."""
        from releasegate.artifacts import ArtifactRefused, artifact_digest, inspect_for_run

        found = self.find_artifact(version)
        if found is None:
            return {}
        try:
            digest = inspect_for_run(found.path, self._limits(), self.token).sha256
        except ArtifactRefused:
            digest = artifact_digest(found.path)
        return {"artifact sha256": digest}

    def before_prepare(self, version: str) -> None:
        """Inspect the artifact, pack a folder artifact and hash it once, before the hosts ask
        for it side by side (on this thread, not the event loop's). A refusal is kept for
        prepare_ops to report; a refused folder is not packed."""
        from releasegate.artifacts import ArtifactRefused, inspect_for_run

        found = self.find_artifact(version)
        if found is None:
            return
        try:
            inspect_for_run(found.path, self._limits(), self.token)
        except ArtifactRefused:
            return
        if self.remote:
            file_sha256(upload_tarball(found, self.token))

    def _limits(self) -> Limits:
        return self.stack.artifact_limits.limits()

    def smoke_dir(self) -> PurePosixPath:
        return self.root / "current"

    def check_dir(self) -> PurePosixPath | None:
        return self.root

    @property
    def remote(self) -> bool:
        """Artifacts live on the controller; a remote host gets them uploaded."""
        return getattr(self.transport, "name", "local") != "local"

    def running_version_ops(self) -> Program[str | None]:
        result: CommandResult = yield cmd(rc.read_current(self.root), timeout=30)
        return rc.version_from_link(result.stdout) if result.ok and result.stdout.strip() else None

    def is_prepared_ops(self, version: str) -> Program[bool]:
        marker = rc.release_dir(self.root, version) / rc.MARKER
        result: CommandResult = yield cmd(["test", "-f", str(marker)], timeout=30)
        return result.ok

    def survey_ops(self) -> Program[HostSurvey]:
        """`current`, the releases, disk, required commands and shared files: one command."""
        argv = rc.survey(self.root, list(self.stack.preflight.require_commands), self._shared())
        result: CommandResult = yield cmd(argv, timeout=30)
        seen = rc.parse_survey(result.stdout)
        return HostSurvey(
            result.ok,
            result.error or (seen.current or "no release"),
            seen.current,
            seen.prepared,
            seen.names,
            result,
            root_exists=seen.root_exists,
            lost=result.exit_code == -1 and bool(result.error),
        )

    def host_checks_ops(self, version: str | None, seen: HostSurvey) -> Program[list[CheckResult]]:
        """Disk, required commands and shared files, all read from the survey."""
        from releasegate.gates.preflight import probe_verdicts

        assert seen.probe is not None  # every survey of this runtime probes
        return done(
            probe_verdicts(
                self.root,
                seen.probe,
                list(self.stack.preflight.require_commands),
                self._shared(),
                self.stack.preflight.disk_free_min_percent,
            )
        )

    def _shared(self) -> list[str]:
        return [e for e in self.stack.shared if not e.endswith("/")]

    def env_for(self, version: str, previous: str | None = None) -> dict[str, str]:
        env = base_env(self.stack, version, previous)
        env.update(
            RELEASEGATE_RELEASE_DIR=str(rc.release_dir(self.root, version)),
            RELEASEGATE_SHARED_DIR=str(self.root / "shared"),
        )
        return env

    # -- phases (each a program of operations: see releasegate.ops) -----------------------
    def prepare_ops(
        self,
        version: str,
        previous: str | None,
        *,
        prepared: bool | None = None,
        as_is: bool = False,
    ) -> Program[PhaseResult]:
        """Unpack the artifact into releases/<version>, link shared entries, run `install`.

        The artifact is inspected on this machine first (releasegate.artifacts): a hostile
        one is refused before anything is written, here or on a host. A release is reused
        when it is complete and was prepared from the same content (the artifact's sha256,
        kept in its marker); other content under the same version is refused, until
        `prepared=False` (deploy --reprepare) rebuilds it. `as_is`: reuse a complete release
        whatever the artifact holds now (a rollback brings back what ran). A half-prepared
        release (no marker: a crash or a failed install) is rebuilt. A remote host gets the
        artifact uploaded first (as one .tar.gz, checked by sha256 on arrival).
        `prepared` is what the caller already knows (a fleet's survey); None: ask the host.
        """
        from releasegate.artifacts import ArtifactRefused, inspect_for_run

        phase = PhaseResult(True, "")
        artifact = self.find_artifact(version)
        stored: str | None = None  # the sha256 the prepared release's marker recorded
        if prepared is None or (prepared and not (as_is or artifact is None)):
            # One read answers both: is the release complete, and from which content.
            read = rc.read_marker(rc.release_dir(self.root, version))
            answer: CommandResult = yield cmd(read, timeout=30)
            prepared = answer.ok if prepared is None else prepared
            stored = rc.marker_sha256(answer.stdout) if answer.ok else None
        if prepared:
            self._reuse(phase, version, artifact, as_is, stored)
            return phase
        if artifact is None:
            return PhaseResult(False, f"no artifact for {version} under {self.stack.artifacts}")
        try:
            seen = inspect_for_run(artifact.path, self._limits(), self.token)
        except ArtifactRefused as exc:
            phase.ok = False
            phase.summary = f"refused: {exc.message}" + (f"; {exc.hint}" if exc.hint else "")
            phase.facts["artifact"] = {"path": str(artifact.path), "refused": exc.message}
            return phase
        phase.facts["artifact"] = {"path": str(artifact.path), **seen.facts()}
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
            if artifact.kind == "tar.gz" and digest != seen.sha256:
                phase.ok = False
                phase.summary = f"{artifact.path.name} changed while it was being inspected"
                return phase
            phase.facts["upload"] = {
                "path": str(upload),
                "sha256": digest,
                "bytes": tarball.stat().st_size,
            }
            leftovers.append(upload)
            unpack = [
                *setup,
                rc.receive(upload, digest),
                rc.unpack_tarball(upload, tmp, seen.strip),
            ]
        else:
            if not (yield from phase.chain(self.redact, setup)).ok:
                phase.summary = f"could not create {tmp}"
                return phase
            source = PurePosixPath(str(artifact.path))
            unpack = (
                [rc.unpack_tarball(source, tmp, seen.strip)]
                if artifact.kind == "tar.gz"
                else [rc.copy_tree(source, tmp), rc.strip_special_bits(tmp)]
            )
        marker = json.dumps(
            {
                "version": version,
                "artifact": str(artifact.path),
                "sha256": seen.sha256,
                "prepared_at": datetime.now(UTC).isoformat(),
            }
        )
        install = self.stack.commands.install
        steps = [
            *unpack,
            *rc.shared_links(self.root, tmp, list(self.stack.shared)),
            # A half-made release of a crashed run (or the one --reprepare replaces), and the
            # unpacked upload: one `rm`.
            rc.remove(final, *([upload] if upload else [])),
            rc.rename_dir(tmp, final),
        ]
        if install is None:  # complete in the same round trip
            steps.append(rc.write_marker(final, marker + "\n"))
        stream = tarball if self.remote else None
        unpacked = yield from phase.chain(self.redact, steps, stdin=stream)
        if not unpacked.ok:
            yield from phase.chain(self.redact, [rc.remove(*leftovers)])
            phase.summary = f"could not unpack {artifact.path.name}" + self._why(unpacked)
            return phase
        if install is not None:
            if not (yield from self._team(phase, install.argv(), version, previous, "install")):
                return phase
            written = yield from self._run(phase, rc.write_marker(final, marker + "\n"))
            if not written.ok:
                phase.summary = "could not mark the release prepared"
                return phase
        phase.summary = f"release {version} prepared from {artifact.path.name}" + (
            f" (sha256 {seen.sha256[:12]})"
        )
        if seen.notices:
            phase.summary += "; " + "; ".join(seen.notices[:3])
            if len(seen.notices) > 3:
                phase.summary += f" (+{len(seen.notices) - 3} more)"
        return phase

    def _why(self, result: CommandResult) -> str:
        """The failing command's own last words (not the chain's trailer), short and masked."""
        lines = [
            line.strip()
            for line in result.stderr.splitlines()
            if line.strip() and not line.startswith("releasegate: command ")
        ]
        return f": {self.redact(lines[-1][:300])}" if lines else f" ({result.describe()})"

    def _reuse(
        self,
        phase: PhaseResult,
        version: str,
        artifact: Artifact | None,
        as_is: bool,
        stored: str | None,
    ) -> None:
        """Reuse the complete release of `version` (`phase` says why), or fail `phase` when
        the artifact's content is not the one the release was prepared from (`stored`)."""
        from releasegate.artifacts import artifact_digest

        reused = f"release {version} already prepared; reused"
        if as_is or artifact is None:
            phase.summary = reused + ("" if as_is else " (its artifact is gone: not compared)")
            return
        now = (
            file_sha256(artifact.path)
            if artifact.kind == "tar.gz"
            else artifact_digest(artifact.path)
        )
        phase.facts["artifact"] = {"path": str(artifact.path), "sha256": now, "prepared": stored}
        if stored is None:
            phase.summary = (
                f"{reused} (prepared with no recorded sha256: not compared; "
                "--reprepare rebuilds it from the artifact)"
            )
        elif stored == now:
            phase.summary = f"{reused} (same content, sha256 {now[:12]})"
        else:
            phase.ok = False
            phase.summary = (
                f"releases/{version} was prepared from other content: sha256 {stored} then, "
                f"{artifact.path.name} is {now} now. A version names one content: publish a "
                "new version, or deploy with --reprepare to rebuild this one"
            )

    def migrate_ops(self, version: str, previous: str | None) -> Program[PhaseResult]:
        phase = PhaseResult(True, "")
        spec = self.stack.commands.migrate
        if spec is not None and (
            yield from self._team(phase, spec.argv(), version, previous, "migrate")
        ):
            phase.summary = "migrate command passed"
        return phase

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

    # -- blue/green slots (`proxy:`; workflows/slots.py calls these) -----------------------
    def _slot_command(
        self, phase: PhaseResult, slot: str, version: str, previous: str | None, which: str
    ) -> Program[CommandResult | None]:
        """The team's restart (start) or stop command, with the slot in its environment."""
        from releasegate.proxy.slots import slot_env, transport_host

        assert self.stack.proxy is not None  # slot steps are planned only with `proxy:`
        where = slot_env(self.stack.proxy, slot, transport_host(self.transport))
        spec = self.stack.commands.restart if which == "restart" else self.stack.commands.stop
        if spec is None:
            return None
        result: CommandResult = yield from phase.step(
            self.redact,
            spec.argv(),
            cwd=rc.release_dir(self.root, version) if which == "restart" else self.root,
            env={**self.env_for(version, previous), **where},
            timeout=self.command_timeout,
            label=f"{which} slot {slot}",
        )
        return result

    def slot_start_ops(
        self, slot: str, version: str, previous: str | None, was: str | None
    ) -> Program[PhaseResult]:
        """The stop command frees the slot's port of what ran there (`was`; its outcome is
        evidence, not a verdict), then the restart command starts `version` with its PORT."""
        phase = PhaseResult(True, "no restart command configured")
        freed = PhaseResult(True, "")
        yield from self._slot_command(freed, slot, was or version, previous, "stop")
        phase.commands += freed.commands
        result = yield from self._slot_command(phase, slot, version, previous, "restart")
        if result is not None:
            phase.summary = (
                f"restart command passed in slot {slot}"
                if result.ok
                else f"restart command failed in slot {slot}: {result.describe()}"
            )
        return phase

    def slot_stop_ops(self, slot: str, version: str) -> Program[PhaseResult]:
        """The stop command with the slot's environment; without one the slot keeps running."""
        phase = PhaseResult(True, "")
        result = yield from self._slot_command(phase, slot, version, None, "stop")
        phase.facts["stopped"] = result is not None and result.ok
        if result is None:
            phase.summary = f"no stop command configured: slot {slot} keeps running"
        elif result.ok:
            phase.summary = f"stop command passed in slot {slot}"
        else:
            phase.summary = f"stop command failed in slot {slot}: {result.describe()}"
        return phase

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
        keep = keep_newest(present, self.stack.keep_releases, protect)
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
