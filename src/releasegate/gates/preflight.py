"""Preflight rules of seed 001 that apply to every runtime: disk space, required
commands, the team's own checks, plus what the releases runtime needs to start."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from releasegate.model import CheckResult
from releasegate.redact import Redactor
from releasegate.transport.base import CommandResult, Transport


def parse_df(output: str) -> tuple[int, int]:
    """`df -Pk PATH` -> (available KiB, total usable KiB = used + available).

    Free share is judged on used + available, as `df`'s own Capacity is: blocks
    reserved for root are not free for a deploy.
    """
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    if len(lines) < 2:
        raise ValueError(f"unexpected df output: {output!r}")
    fields = lines[-1].split()
    # A long device name can wrap onto its own line; the numbers are then the first fields.
    nums = [f for f in fields if f.isdigit()]
    if len(nums) < 3:
        raise ValueError(f"unexpected df output: {output!r}")
    used, avail = int(nums[1]), int(nums[2])
    return avail, used + avail


def existing_parent(path: PurePosixPath) -> Path:
    p = Path(str(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def disk_check(transport: Transport, path: PurePosixPath, min_percent: float) -> CheckResult:
    where = existing_parent(path)
    result = transport.run(["df", "-Pk", "--", str(where)], timeout=30)
    return disk_verdict(str(where), result, min_percent)


def remote_df(path: PurePosixPath) -> list[str]:
    """`df` of the nearest existing parent of `path`, found on the host itself."""
    script = 'p=$1; while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done; df -Pk -- "$p"'
    return ["sh", "-c", script, "sh", str(path)]


def disk_verdict(where: str, result: CommandResult, min_percent: float) -> CheckResult:
    if not result.ok:
        return CheckResult("disk-free", False, f"df failed on {where}: {result.describe()}")
    avail, total = parse_df(result.stdout)
    free = 100.0 * avail / total if total else 0.0
    evidence = {
        "path": str(where),
        "free_percent": round(free, 1),
        "available_kib": avail,
        "min_percent": min_percent,
    }
    if free >= min_percent:
        return CheckResult(
            "disk-free", True, f"{free:.1f}% free on {where} (need {min_percent:g}%)", evidence
        )
    return CheckResult(
        "disk-free",
        False,
        f"only {free:.1f}% free on {where}, need {min_percent:g}%",
        evidence,
        hint="free space (old images, releases, backups) before deploying",
    )


def command_present(transport: Transport, name: str) -> CheckResult:
    return command_verdict(name, transport.run(which(name), timeout=30))


def which(name: str) -> list[str]:
    # The name is the shell's positional parameter, never part of the script.
    return ["sh", "-c", 'command -v -- "$1"', "sh", name]


def command_verdict(name: str, result: CommandResult) -> CheckResult:
    if result.ok:
        return CheckResult(
            f"command:{name}",
            True,
            f"{name} found at {result.stdout.strip()}",
            {"path": result.stdout.strip()},
        )
    return CheckResult(
        f"command:{name}",
        False,
        f"required command {name!r} not found",
        hint=f"install {name} on the host",
    )


def custom_check(
    transport: Transport, spec: Any, *, cwd: Path | None, env: Mapping[str, str], redact: Redactor
) -> CheckResult:
    result = transport.run(spec.run.argv(), cwd=cwd, env=env, timeout=120)
    output = redact((result.stdout + result.stderr).strip()[-1000:])
    evidence = {
        "exit_code": result.exit_code,
        "output": output,
        "duration_s": round(result.duration_s, 3),
    }
    if not result.ok:
        return CheckResult(
            f"custom:{spec.name}", False, f"{spec.name}: {result.describe()}", evidence
        )
    if spec.expect_output and spec.expect_output not in result.stdout:
        return CheckResult(
            f"custom:{spec.name}",
            False,
            f"{spec.name}: output does not contain {spec.expect_output!r}",
            evidence,
        )
    return CheckResult(f"custom:{spec.name}", True, f"{spec.name} passed", evidence)


def shared_check(root: PurePosixPath, entries: list[str]) -> list[CheckResult]:
    """Shared files must exist before the first release links them (directories are created)."""
    results = []
    for entry in entries:
        if entry.endswith("/"):
            continue
        path = Path(str(root)) / "shared" / entry
        if path.exists():
            results.append(CheckResult(f"shared:{entry}", True, f"shared/{entry} present"))
        else:
            results.append(
                CheckResult(
                    f"shared:{entry}",
                    False,
                    f"shared file {path} is missing",
                    hint=f"create {path}: every release links it in",
                )
            )
    return results


def probe_verdicts(
    root: PurePosixPath,
    result: CommandResult,
    commands: list[str],
    shared: list[str],
    min_percent: float,
) -> list[CheckResult]:
    """The probe lines of a host's survey (runtimes.releases_commands.survey) -> the same
    checks as disk_check, command_present and shared_check."""
    lines = result.stdout.splitlines()
    where = next((ln[4:] for ln in lines if ln.startswith("@df ")), str(root))
    df_lines = [ln for ln in lines if not ln.startswith("@")]
    df_ok = result.ok and "@df-failed" not in lines and len(df_lines) >= 2
    df = CommandResult(("df",), 0 if df_ok else 1, "\n".join(df_lines), result.stderr, 0.0)
    checks = [disk_verdict(where, df, min_percent)]
    found = [ln.split(" ", 2) for ln in lines if ln.startswith("@cmd ")]
    for name, fields in zip(commands, found + [["@cmd", "0"]] * len(commands), strict=False):
        path = fields[2] if len(fields) > 2 else ""
        answer = CommandResult(("command", "-v", name), 0 if fields[1] == "1" else 1, path, "", 0)
        checks.append(command_verdict(name, answer))
    there = [ln.split(" ")[1] == "1" for ln in lines if ln.startswith("@shared ")]
    for entry, ok in zip(shared, there + [False] * len(shared), strict=False):
        missing = root / "shared" / entry
        checks.append(
            CheckResult(
                f"shared:{entry}",
                ok,
                f"shared/{entry} present" if ok else f"shared file {missing} is missing",
                hint="" if ok else f"create {missing} on the host",
            )
        )
    return checks
