"""nginx: the upstream include file, rewritten atomically, checked with `nginx -t`, then a
graceful `nginx -s reload` (old workers finish their requests; new ones use the new file).

The team's config has `upstream NAME { include UPSTREAM_FILE; }`; releasegate owns only that
file, whose one line names the live slot."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate.proxy.base import MAX_ANSWER, ProxyError, SwitchResult, wait_drain

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


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` in one rename: nginx never reads half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # nginx workers may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class NginxSwitch:
    kind = "nginx"

    def __init__(self, cfg: ProxyConfig) -> None:
        assert cfg.nginx is not None  # the config requires it for kind nginx
        self.cfg = cfg
        self.ctl = cfg.nginx

    def _read(self) -> str:
        try:
            with open(self.ctl.upstream_file, "rb") as fh:
                return fh.read(MAX_ANSWER).decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise ProxyError(f"cannot read {self.ctl.upstream_file}: {exc.strerror}") from None

    def current(self) -> str | None:
        found = parse_upstream(self._read())
        return self.cfg.slot_of(found[0]) if len(found) == 1 else None

    def _run(self, argv: list[str]) -> dict[str, Any]:
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=self.ctl.timeout, stdin=subprocess.DEVNULL
            )
            code, output = done.returncode, (done.stdout + done.stderr)[-2000:]
        except subprocess.TimeoutExpired:
            code, output = -1, f"timed out after {self.ctl.timeout:g}s".encode()
        except OSError as exc:
            code, output = -1, f"cannot run {argv[0]}: {exc.strerror}".encode()
        return {
            "argv": argv,
            "exit_code": code,
            "output": output.decode("utf-8", "replace").strip(),
            "duration_s": round(time.monotonic() - started, 3),
        }

    def switch(self, to: str) -> SwitchResult:
        path = Path(self.ctl.upstream_file)
        before = self._read()
        address = self.cfg.address(to)
        commands: list[dict[str, Any]] = []
        evidence: dict[str, Any] = {"file": str(path), "address": address, "commands": commands}
        try:
            write_atomic(path, upstream_text(to, address))
        except OSError as exc:
            return SwitchResult(False, f"cannot write {path}: {exc.strerror}", to, evidence)
        commands.append(self._run(check_argv(self.ctl)))
        if commands[-1]["exit_code"] != 0:
            # The new file broke the config: put the old one back, nginx keeps serving.
            if before:
                write_atomic(path, before)
            else:
                path.unlink(missing_ok=True)
            why = commands[-1]["output"][-300:]
            return SwitchResult(False, f"nginx -t refused the config: {why}", to, evidence)
        commands.append(self._run(reload_argv(self.ctl)))
        if commands[-1]["exit_code"] != 0:
            why = commands[-1]["output"][-300:]
            return SwitchResult(False, f"nginx -s reload failed: {why}", to, evidence)
        if self.current() != to:
            return SwitchResult(
                False, f"{path} does not name slot {to} after writing", to, evidence
            )
        return SwitchResult(True, f"nginx now sends traffic to {to} ({address})", to, evidence)

    def drain(self, seconds: float) -> SwitchResult:
        return wait_drain(self.kind, seconds)
