"""Programs of operations (releasegate.ops) that read, back up, install and verify a
stack's cron block on one host; execution.hosts runs them on every host of the stack.

Where the block lives: the stack user's crontab (`crontab -l` / `crontab -`, `-u USER`
when `cron.user` is set), or its own file `<cron_d_dir>/<stack>` (mode 0644, written
beside and renamed over: cron never reads half a file). What was there before is copied,
with the block installed, to `<dir>/.releasegate-cron/<version>/` on the host: the block a
rollback to that version puts back, and the crontab to restore by hand if ever needed.

Every read is whole and exact (releasegate.hosttext: base64 chunks under the transport's
output bound): a block spliced into a cut text would write the cut back. `crontab -l` is
first copied on the host into a private temporary file, read that way, then removed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate import hosttext
from releasegate.cron.block import Job, compare, find, render_jobs, splice
from releasegate.ops import Program, cmd
from releasegate.runtimes.base import PhaseResult
from releasegate.transport.base import CommandResult

if TYPE_CHECKING:
    from releasegate.config.schedules import CronConfig

TIMEOUT = 60.0
SAVE_DIR = ".releasegate-cron"
# Words arrive as positional parameters: no value is ever parsed as shell code.
# `crontab [-u USER] -l` into a fresh 0600 file whose path is printed; crontab's own
# status and stderr ("no crontab for ...") come back when it fails.
_SNAPSHOT = (
    "umask 077 && t=$(mktemp -t releasegate-crontab.XXXXXX) || exit 1; "
    'crontab "$@" -l > "$t" || { s=$?; rm -f -- "$t"; exit $s; }; '
    "printf '%s\\n' \"$t\""
)
_SNAPSHOT_NAME = re.compile(r"/(?:[^\n]*/)?releasegate-crontab\.[A-Za-z0-9]{6}")
_WRITE_FILE = (
    'umask 022 && cat > "$1.releasegate-new" && chmod 0644 "$1.releasegate-new" '
    '&& mv -f -- "$1.releasegate-new" "$1"'
)
_SAVE = 'umask 077 && mkdir -p -- "$1" && cat > "$2"'


@dataclass(frozen=True)
class Target:
    """Where one stack's block is installed on a host."""

    stack: str
    kind: str  # crontab | cron.d
    user: str | None
    cron_d_dir: str

    @classmethod
    def of(cls, stack: str, cfg: CronConfig) -> Target:
        return cls(stack, cfg.target, cfg.user, cfg.cron_d_dir)

    @property
    def file(self) -> str:
        return str(PurePosixPath(self.cron_d_dir) / self.stack)

    def describe(self) -> str:
        if self.kind == "cron.d":
            return self.file
        return f"the crontab of {self.user}" if self.user else "the login user's crontab"

    def snapshot_argv(self) -> list[str]:
        """The crontab copied into a temporary file on the host (crontab targets)."""
        return ["sh", "-c", _SNAPSHOT, "sh", *(["-u", self.user] if self.user else [])]

    def write_argv(self) -> list[str]:
        if self.kind == "cron.d":
            return ["sh", "-c", _WRITE_FILE, "sh", self.file]
        return ["crontab", *(["-u", self.user] if self.user else []), "-"]

    def line_user(self) -> str | None:
        """cron.d lines name their user; crontab lines do not."""
        return self.user if self.kind == "cron.d" else None


def save_dir(root: PurePosixPath, version: str) -> PurePosixPath:
    return root / SAVE_DIR / version


def expected_block(
    target: Target, cfg: CronConfig, *, workdir: str, env: Mapping[str, str]
) -> str | None:
    """The block a release should have installed (None: the stack has no jobs)."""
    if not cfg.jobs:
        return None
    jobs = [Job(j.name, j.schedule, tuple(j.argv)) for j in cfg.jobs]
    return render_jobs(target.stack, jobs, workdir=workdir, env=env, user=target.line_user())


def read_ops(target: Target) -> Program[tuple[str | None, str]]:
    """(the installed text, "" when there is none yet, or None; why not)."""
    if target.kind == "cron.d":
        read = yield from hosttext.read_program(PurePosixPath(target.file), timeout=TIMEOUT)
        if not read.ok:
            return None, f"reading {target.describe()}: {read.error}"
        return read.text or "", ""
    made: CommandResult = yield cmd(target.snapshot_argv(), timeout=TIMEOUT)
    if not made.ok:
        if "no crontab for" in made.stderr:
            return "", ""
        return None, f"reading {target.describe()}: {_why(made)}"
    path = made.stdout.strip()
    if not _SNAPSHOT_NAME.fullmatch(path):  # the host's answer: checked before any use
        return None, f"reading {target.describe()}: unexpected answer {path[:100]!r}"
    read = yield from hosttext.read_program(PurePosixPath(path), timeout=TIMEOUT)
    yield cmd(["rm", "-f", "--", path], timeout=TIMEOUT)  # a copy of the crontab: not kept
    if not read.ok or read.text is None:
        return None, f"reading {target.describe()}: {read.error or 'the copy vanished'}"
    return read.text, ""


def _why(result: CommandResult) -> str:
    """A failed command in one line: how it ended and the last line it said."""
    said = (result.stderr.strip().splitlines() or [""])[-1][:200]
    return result.describe() + (f": {said}" if said else "")


def saved_block_ops(root: PurePosixPath, version: str, stack: str) -> Program[str | None]:
    """The block installed with `version` on this host, if it was kept (a rollback's)."""
    read = yield from hosttext.read_program(save_dir(root, version) / "block", timeout=TIMEOUT)
    if read.text is None:  # not kept, or unreadable
        return None
    if not read.text.strip():
        return ""  # the release had no jobs: none are put back
    found = find(read.text, stack)
    # Kept by releasegate, but on a host: used only if it is exactly one clean block.
    if found.block is None or found.problems or found.block != read.text:
        return None
    return found.block


def install_ops(
    target: Target,
    block: str | None,
    *,
    root: PurePosixPath,
    version: str,
    redact: Any,
    backup_name: str = "crontab.before",
) -> Program[PhaseResult]:
    """Back up what is there, install `block` in place of the stack's old one, keep the
    block with the release, read it back. Evidence: where, how many jobs, the backup."""
    phase = PhaseResult(True, "")
    before, why = yield from read_ops(target)
    if before is None:
        return PhaseResult(False, why, facts={"target": target.describe()})
    try:
        after = splice(before, target.stack, block)
    except ValueError as exc:
        return PhaseResult(False, str(exc), facts={"target": target.describe()})
    keep = save_dir(root, version)
    saved = yield from phase.step(
        redact, ["sh", "-c", _SAVE, "sh", str(keep), str(keep / backup_name)],
        stdin=before, timeout=TIMEOUT,
    )  # fmt: skip
    if not saved.ok:
        phase.summary = f"backing up {target.describe()} to {keep} failed: {_why(saved)}"
        return phase
    if target.kind == "cron.d" and block is None:
        wrote = yield from phase.step(redact, ["rm", "-f", "--", target.file], timeout=TIMEOUT)
    else:
        wrote = yield from phase.step(redact, target.write_argv(), stdin=after, timeout=TIMEOUT)
    if not wrote.ok:
        phase.summary = f"installing into {target.describe()} failed: {_why(wrote)}"
        return phase
    yield from phase.step(
        redact, ["sh", "-c", _SAVE, "sh", str(keep), str(keep / "block")],
        stdin=block or "", timeout=TIMEOUT,
    )  # fmt: skip
    back, why = yield from read_ops(target)
    drift = compare(block, back if back is not None else "", target.stack)
    jobs = len(find(block, target.stack).jobs) if block else 0
    phase.facts.update(
        target=target.describe(), jobs=jobs, backup=str(keep / backup_name),
        verified=drift.as_dict(),
    )  # fmt: skip
    if back is None or not drift.ok:
        phase.ok = False
        phase.summary = f"installed, but reading it back: {why or drift.summary}"
        return phase
    phase.summary = (
        f"{jobs} job(s) installed in {target.describe()} (before: {keep / backup_name})"
        if block
        else f"no jobs: the block removed from {target.describe()}"
    )
    return phase


def verify_ops(target: Target, expected: str | None) -> Program[PhaseResult]:
    """Installed against expected, read-only: drift makes the phase fail."""
    text, why = yield from read_ops(target)
    if text is None:
        return PhaseResult(False, why, facts={"target": target.describe()})
    drift = compare(expected, text, target.stack)
    found = find(text, target.stack)
    return PhaseResult(
        drift.ok,
        drift.summary,
        facts={
            "target": target.describe(),
            "drift": drift.details,
            "installed": found.jobs,
            "expected": find(expected, target.stack).jobs if expected else {},
        },
    )
