"""A stack's jobs as one marked block of crontab lines: rendered, found, replaced and
compared, all pure (the text in, the text out).

cron hands each line to `sh -c`, so every word is shlex-quoted, and `%` (which cron turns
into a newline) is escaped as `\\%` (cron removes the backslash). A job runs in the stack's
current release with the release's environment:

    0 */6 * * * cd '/srv/app/current' && exec env RELEASEGATE_VERSION='v2' ... 'python3' 'sync.py'

Crontab text read from a host is hostile: it is read up to MAX_TEXT, and a block whose
markers are doubled, unclosed or out of order is reported, never trusted.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from releasegate.redact import SECRET_NAME, url_secrets

MAX_TEXT = 1024 * 1024  # bytes of a crontab judged at most
BEGIN = "# BEGIN releasegate {stack}"
END = "# END releasegate {stack}"
JOB = "# job {name}"
# A deploy's fact that means nothing to a job started later by cron.
_RUN_ONLY = frozenset({"RELEASEGATE_PREVIOUS_VERSION"})


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    argv: tuple[str, ...]


def quote(word: str) -> str:
    """One word for a crontab line: shell-quoted, its `%` escaped for cron."""
    if any(c in word for c in "\n\r\0"):
        raise CronError("a word of a cron line contains a newline or a NUL")
    return shlex.quote(word).replace("%", "\\%")


def job_env(env: Mapping[str, str]) -> dict[str, str]:
    """The release's environment as it may appear in a crontab: values whose names look
    like secrets, and URLs carrying a password, stay out (a cron.d file is world-readable;
    the app reads its secrets from its own .env)."""
    return {
        k: v
        for k, v in sorted(env.items())
        if not SECRET_NAME.search(k) and k not in _RUN_ONLY and not ("://" in v and url_secrets(v))
    }


def job_line(job: Job, *, workdir: str, env: Mapping[str, str], user: str | None = None) -> str:
    """One crontab line: schedule, (cron.d: the user,) then `cd DIR && exec env ... argv`."""
    if not job.argv:
        raise CronError(f"job {job.name}: an empty argv")
    first = job.argv[0]
    if "=" in first or first.startswith("-"):
        # `env` would take it for an assignment or an option, not the program.
        raise CronError(
            f"job {job.name}: the program {first!r} must not contain '=' or start with '-'"
        )
    head = [job.schedule, *([user] if user is not None else [])]
    shell = ["cd", quote(workdir), "&&", "exec", "env"]
    shell += [f"{k}={quote(v)}" for k, v in job_env(env).items()]
    shell += [quote(a) for a in job.argv]
    return " ".join(head + shell)


def render(stack: str, lines: Sequence[tuple[str, str]]) -> str:
    """The block: BEGIN marker, `# job NAME` then its line for each job, END marker."""
    out = [BEGIN.format(stack=stack) + " (managed by releasegate: edits are reported as drift)"]
    for name, line in lines:
        out += [JOB.format(name=name), line]
    out.append(END.format(stack=stack))
    return "\n".join(out) + "\n"


def render_jobs(
    stack: str,
    jobs: Sequence[Job],
    *,
    workdir: str,
    env: Mapping[str, str],
    user: str | None = None,
) -> str:
    return render(stack, [(j.name, job_line(j, workdir=workdir, env=env, user=user)) for j in jobs])


@dataclass
class Found:
    """What a crontab holds of one stack's block."""

    block: str | None  # the block's text, markers included (None: no block)
    jobs: dict[str, str] = field(default_factory=dict)  # job name -> its line
    problems: list[str] = field(default_factory=list)  # markers doubled, unclosed, ...
    span: tuple[int, int] | None = None  # the block's lines [start, end) in the text


def _is_begin(line: str, stack: str) -> bool:
    head = BEGIN.format(stack=stack)
    return line == head or line.startswith(head + " ")


def find(text: str, stack: str) -> Found:
    """The stack's block in a crontab's text."""
    if len(text.encode("utf-8", "replace")) > MAX_TEXT:
        return Found(None, problems=[f"the crontab is larger than {MAX_TEXT} bytes: not read"])
    lines = text.splitlines()
    begins = [i for i, line in enumerate(lines) if _is_begin(line.rstrip(), stack)]
    ends = [i for i, line in enumerate(lines) if line.rstrip() == END.format(stack=stack)]
    if not begins and not ends:
        return Found(None)
    problems = []
    if len(begins) != 1 or len(ends) != 1:
        problems.append(
            f"{len(begins)} BEGIN and {len(ends)} END marker(s) for {stack}: expected one of each"
        )
    if not begins or not ends or ends[0] < begins[0]:
        problems.append("the block's markers are out of order or one is missing")
        return Found(None, problems=problems)
    start, end = begins[0], ends[0]
    body = lines[start + 1 : end]
    jobs: dict[str, str] = {}
    pending: str | None = None
    for line in body:
        if line.startswith("# job "):
            pending = line[len("# job ") :].strip()
            continue
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            problems.append(f"a comment inside the block: {line[:80]!r}")
            continue
        name = pending or f"(unnamed line {len(jobs) + 1})"
        if name in jobs:
            problems.append(f"job {name} appears twice")
        jobs[name] = line
        pending = None
    block = "\n".join(lines[start : end + 1]) + "\n"
    return Found(block, jobs, problems, (start, end + 1))


def splice(text: str, stack: str, block: str | None) -> str:
    """The crontab with the stack's block replaced by `block` (appended if there was none;
    removed if `block` is None). Everything outside the block is kept as it was."""
    found = find(text, stack)
    if found.problems and found.span is None and "not read" in " ".join(found.problems):
        raise CronError(found.problems[0])
    if any("marker" in p for p in found.problems):
        raise CronError(
            f"the crontab's block of {stack} is damaged ({'; '.join(found.problems)}): "
            "fix it by hand (the backup is kept with the release)"
        )
    lines = text.splitlines()
    if found.span is not None:
        start, end = found.span
        lines = lines[:start] + lines[end:]
        insert = start
    else:
        while lines and not lines[-1].strip():
            lines.pop()
        insert = len(lines)
    new = block.splitlines() if block else []
    out = lines[:insert] + new + lines[insert:]
    return "\n".join(out) + "\n" if out else ""


@dataclass(frozen=True)
class Drift:
    ok: bool
    summary: str
    details: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "summary": self.summary, "details": self.details}


def _first_difference(installed: str, expected: str) -> str:
    """Where two lines part, word by word (the lines are long; the change is often small)."""
    have, want = installed.split(" "), expected.split(" ")
    for index, (a, b) in enumerate(zip(have, want, strict=False)):
        if a != b:
            return f"word {index + 1} is {a[:80]!r}, expected {b[:80]!r}"
    if len(have) > len(want):
        return f"extra words from word {len(want) + 1}: {' '.join(have[len(want) :])[:80]!r}"
    return f"words missing from word {len(have) + 1}: {' '.join(want[len(have) :])[:80]!r}"


def compare(expected: str | None, installed_text: str, stack: str) -> Drift:
    """Installed against expected: the block's presence, each job's line, extra jobs."""
    found = find(installed_text, stack)
    want = find(expected, stack) if expected else Found(None)
    details = list(found.problems)
    if want.block is None and found.block is None:
        ok = not details
        return Drift(ok, "no jobs expected, none installed" if ok else details[0], details)
    if want.block is None:
        details.append(f"a block of {len(found.jobs)} job(s) is installed but none is expected")
    elif found.block is None:
        details.append(f"the block is missing: {len(want.jobs)} job(s) not installed")
    else:
        for name, line in want.jobs.items():
            if name not in found.jobs:
                details.append(f"job {name}: missing")
            elif found.jobs[name] != line:
                details.append(f"job {name}: changed: {_first_difference(found.jobs[name], line)}")
        for name in found.jobs:
            if name not in want.jobs:
                details.append(f"job {name}: not expected (installed outside releasegate?)")
    if details:
        more = f" (+{len(details) - 1} more)" if len(details) > 1 else ""
        return Drift(False, f"drift: {details[0]}{more}", details)
    return Drift(True, f"{len(want.jobs)} job(s) installed as expected", [])
