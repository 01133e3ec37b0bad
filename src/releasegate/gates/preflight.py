"""Preflight rules of seed 001 that apply to every runtime: disk space, required
commands, the team's own checks, plus what the releases runtime needs to start."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from releasegate.model import CheckResult
from releasegate.transport.base import CommandResult


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


def probe_verdicts(
    root: PurePosixPath,
    result: CommandResult,
    commands: list[str],
    shared: list[str],
    min_percent: float,
) -> list[CheckResult]:
    """The probe lines of a host's survey (runtimes.releases_commands.survey) -> the same
    checks of disk, commands and shared files."""
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
