"""A `compose` stack on many SSH hosts: each host runs the project with its own Docker engine,
from the compose files and .env in the stack's `dir` on that host. A deploy pulls the tag on
every host, then, batch by batch, writes the version into each host's .env, recreates the
containers, waits for Docker's health status and smokes; a failure anywhere sends every host
that switched back to the last good tag (releasegate.engine.fleet_ops)."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate.fleet.runtime import FleetRuntime, HostOutcome
from releasegate.gates import preflight as pf
from releasegate.model import CheckResult
from releasegate.ops import Program, cmd
from releasegate.runtimes import compose_commands as cc
from releasegate.runtimes import releases_commands as rc
from releasegate.runtimes.base import PhaseResult
from releasegate.runtimes.compose import ComposeRuntime
from releasegate.transport.base import CommandResult

if TYPE_CHECKING:
    from releasegate.transport.ssh import SshTransport


class ComposeFleetRuntime(FleetRuntime):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        # What each host's survey read of its compose files and .env (name -> text; a
        # missing file is absent). Kept in memory only: a .env holds secrets.
        self._files: dict[str, dict[str, str]] = {}

    def _host_runtime(self, transport: SshTransport) -> Any:
        return ComposeRuntime(self.stack, transport, self.redact, self.token)

    # -- survey --------------------------------------------------------------------------------
    def _probe_argv(self) -> list[str]:
        return rc.survey(self.root, self._required_commands(), [])

    def _survey_ops(self, host: str, rt: Any) -> Program[HostOutcome]:
        """Disk and commands (as for releases), the compose files and .env, then the
        project's containers: the running tag is what the version services run."""
        probe: CommandResult = yield cmd(self._probe_argv(), timeout=30)
        self._seen[host] = (probe, rc.parse_survey(""))
        if not probe.ok:
            lost = probe.exit_code == -1 and bool(probe.error)
            return HostOutcome(host, False, probe.error or probe.describe(), lost=lost)
        texts: dict[str, str] = {}
        for name in [*rt.files, ".env"]:
            read: CommandResult = yield cmd(cc.read_file(self.root / name), timeout=30)
            if read.ok:
                texts[name] = read.stdout
            elif read.exit_code == -1 and read.error:
                return HostOutcome(host, False, read.error, lost=True)
        self._files[host] = texts
        rt.learn_files({n: t for n, t in texts.items() if n != ".env"})
        containers = yield from rt.containers_ops()
        if rt.docker_error:
            return HostOutcome(host, False, rt.docker_error, {"version": None, "prepared": []})
        version = cc.running_tag(containers, rt.version_services())
        return HostOutcome(
            host, True, version or "not running", {"version": version, "prepared": []}
        )

    def is_prepared(self, version: str) -> bool:
        return False  # `docker compose pull` on each host is the preparation

    # -- preflight -----------------------------------------------------------------------------
    def _artifact_checks(self, version: str | None) -> list[CheckResult]:
        return []  # a tag missing from the registry fails each host's pull, before any switch

    def _host_checks_ops(
        self, host: str, rt: Any, version: str | None
    ) -> Program[list[CheckResult]]:
        probed, _ = self._seen[host]
        checks = pf.probe_verdicts(
            self.root,
            probed,
            self._required_commands(),
            [],
            self.stack.preflight.disk_free_min_percent,
        )
        texts = self._files.get(host, {})
        missing = [f for f in rt.files if f not in texts]
        if missing:
            checks.append(
                CheckResult(
                    "compose-files",
                    False,
                    f"compose file(s) missing in {self.root}: {', '.join(missing)}",
                    {"missing": missing},
                    hint="put them on the host, or set compose.files",
                )
            )
            return checks
        checks += yield from rt.docker_checks_ops(version)
        checks += self._rule_checks(rt, texts, version)
        return checks

    def _rule_checks(
        self, rt: ComposeRuntime, texts: dict[str, str], version: str | None
    ) -> list[CheckResult]:
        """The compose rules on the host's own files: copied into a folder here (the linter
        reads files), findings named by their path on the host."""
        if not self.stack.compose_rules:
            return []
        from releasegate.redact import read_env_file

        with tempfile.TemporaryDirectory(prefix="releasegate-compose-") as tmp:
            where = Path(tmp)
            paths = []
            for name in rt.files:
                path = where / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(texts[name], encoding="utf-8")
                paths.append(path)
            dotenv = read_env_file(texts.get(".env", ""))
            found = rt.rule_checks(paths, where, dotenv, version)
        prefix = f"{tmp}/"
        return [
            CheckResult(
                c.name,
                c.ok,
                c.summary.replace(prefix, f"{self.root}/"),
                {
                    k: (v.replace(prefix, f"{self.root}/") if isinstance(v, str) else v)
                    for k, v in c.evidence.items()
                },
                c.hint,
            )
            for c in found
        ]

    # -- phases --------------------------------------------------------------------------------
    def prepare(self, version: str, previous: str | None) -> PhaseResult:
        self._survey = None
        return self._phase(
            "prepare", lambda h, rt: self._wrap(h, rt.prepare_ops(version, previous))
        )

    def cleanup(self, newest_first: Any, protect: Any) -> PhaseResult:
        return PhaseResult(True, "images are kept on the hosts")

    def disk_path(self) -> PurePosixPath:
        return self.root

    def _smoke_dir(self) -> PurePosixPath:
        return self.root
