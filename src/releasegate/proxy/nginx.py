"""nginx: the upstream include file, rewritten atomically, checked with `nginx -t`, then a
graceful `nginx -s reload` (old workers finish their requests; new ones use the new file).

The team's config has `upstream NAME { include UPSTREAM_FILE; }`; releasegate owns only that
file, whose one line names the live slot."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate.hosttext import read_program, write_argv
from releasegate.ops import Program, cmd
from releasegate.proxy.base import MAX_ANSWER, ProxyError, SwitchResult, verify_switch, wait_drain
from releasegate.transport.base import CommandResult

if TYPE_CHECKING:
    from releasegate.proxy.config import NginxControl, ProxyConfig

HEADER = "# written by releasegate: the live slot; edited by `releasegate deploy`\n"
_SERVER = re.compile(r"^\s*server\s+(\S+?)\s*;", re.M)


def upstream_text(slot: str, address: str) -> str:
    return f"{HEADER}# slot {slot}\nserver {address};\n"


def parse_upstream(text: str) -> list[str]:
    """The addresses the include file names (one when releasegate wrote it)."""
    return _SERVER.findall(text)


def _base(ctl: NginxControl) -> list[str]:
    argv = [ctl.binary, "-c", str(ctl.conf)]
    if ctl.prefix is not None:
        argv += ["-p", str(ctl.prefix)]
    return argv


def check_argv(ctl: NginxControl) -> list[str]:
    return [*_base(ctl), "-t", "-q"]


def reload_argv(ctl: NginxControl) -> list[str]:
    return [*_base(ctl), "-s", "reload"]


def _record(result: CommandResult) -> dict[str, Any]:
    output = (result.stdout + result.stderr).strip()[-2000:] or (result.error or "")
    return {
        "argv": list(result.argv),
        "exit_code": result.exit_code,
        "output": output,
        "duration_s": round(result.duration_s, 3),
    }


class NginxSwitch:
    kind = "nginx"

    def __init__(self, cfg: ProxyConfig, host: str = "127.0.0.1") -> None:
        assert cfg.nginx is not None  # the config requires it for kind nginx
        self.cfg = cfg
        self.ctl = cfg.nginx
        self.host = host
        self.path = PurePosixPath(str(self.ctl.upstream_file))

    def _read(self) -> Program[str | None]:
        """The include file's text on the host (None: there is none yet)."""
        found = yield from read_program(self.path, max_bytes=MAX_ANSWER, timeout=self.ctl.timeout)
        if not found.ok:
            raise ProxyError(found.error)
        return found.text

    def current(self) -> Program[str | None]:
        found = parse_upstream((yield from self._read()) or "")
        return self.cfg.slot_of(found[0], self.host) if len(found) == 1 else None

    def _write(self, text: str) -> Program[CommandResult]:
        result: CommandResult = yield cmd(
            write_argv(self.path), stdin=text, timeout=self.ctl.timeout
        )
        return result

    def switch(self, to: str) -> Program[SwitchResult]:
        address = self.cfg.address(to, self.host)
        commands: list[dict[str, Any]] = []
        evidence: dict[str, Any] = {
            "file": str(self.path),
            "address": address,
            "commands": commands,
        }
        try:
            before = yield from self._read()
        except ProxyError as exc:
            return SwitchResult(False, str(exc), to, evidence)
        wrote = yield from self._write(upstream_text(to, address))
        if not wrote.ok:
            why = wrote.stderr.strip()[-300:] or wrote.describe()
            return SwitchResult(False, f"cannot write {self.path}: {why}", to, evidence)
        if before is None:  # a new file: nginx workers may run as another user
            yield cmd(["chmod", "0644", "--", str(self.path)], timeout=self.ctl.timeout)
        commands.append(_record((yield cmd(check_argv(self.ctl), timeout=self.ctl.timeout))))
        if commands[-1]["exit_code"] != 0:
            # The new file broke the config: put the old one back, nginx keeps serving.
            if before is not None:
                back = yield from self._write(before)
            else:
                back = yield cmd(["rm", "-f", "--", str(self.path)], timeout=self.ctl.timeout)
            evidence["put_back"] = back.ok
            why = commands[-1]["output"][-300:]
            return SwitchResult(False, f"nginx -t refused the config: {why}", to, evidence)
        commands.append(_record((yield cmd(reload_argv(self.ctl), timeout=self.ctl.timeout))))
        if commands[-1]["exit_code"] != 0:
            why = commands[-1]["output"][-300:]
            return SwitchResult(False, f"nginx -s reload failed: {why}", to, evidence)
        try:
            now = yield from self.current()
        except ProxyError as exc:
            return SwitchResult(False, str(exc), to, evidence)
        summary = f"nginx now sends traffic to {to} ({address})"
        return verify_switch(self.kind, now, to, evidence, summary)

    def drain(self, seconds: float) -> Program[SwitchResult]:
        return wait_drain(self.kind, seconds)
