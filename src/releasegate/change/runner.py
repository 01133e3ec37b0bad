"""Running a change record: the document is the plan, the evidence is what happened.

Pre-checks all pass, or nothing is executed; then the execution steps; then the post-
and functional checks. A failing step or check runs the rollback plan (ROLLED_BACK, or
FAILED when the rollback fails too); DONE+VERIFIED only when every check passed. Pure of
printing: progress goes to `on_step`, the result is a RunReport.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from releasegate.change.approvals import Approval
from releasegate.change.document import Document, Step
from releasegate.redact import Redactor
from releasegate.transport.base import Transport

OUTPUT_LIMIT = 4000  # characters of output kept as evidence per step
STEP_TIMEOUT_S = 1800.0

DONE = "DONE+VERIFIED"
ROLLED_BACK = "ROLLED_BACK"
FAILED = "FAILED"
REFUSED = "REFUSED"


@dataclass(frozen=True)
class StepOutcome:
    step: Step
    ok: bool
    exit_code: int
    duration_s: float
    started_at: datetime
    output: str  # bounded and redacted
    failed_expects: tuple[str, ...] = ()
    host: str = "local"

    @property
    def summary(self) -> str:
        if self.ok:
            return f"passed (exit 0, {self.duration_s:.2f}s)"
        if self.failed_expects:
            return "output did not match " + ", ".join(self.failed_expects)
        return f"exit {self.exit_code} after {self.duration_s:.2f}s"


@dataclass
class RunReport:
    change_id: str
    status: str = ""
    message: str = ""
    outcomes: list[StepOutcome] = field(default_factory=list)

    def of(self, kind: str) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.step.kind == kind]


def _bound(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT:
        return text
    half = OUTPUT_LIMIT // 2
    return f"{text[:half]}\n... [{len(text) - OUTPUT_LIMIT} characters cut] ...\n{text[-half:]}"


def run_step(
    step: Step,
    *,
    transport: Transport,
    redact: Redactor,
    cwd: Path | None,
    env: Mapping[str, str] | None = None,
    host: str = "local",
) -> StepOutcome:
    """One command through the shell (the document's commands are the team's own shell
    lines), its output kept as evidence and checked against the expected output."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    result = transport.run(["sh", "-c", step.command], cwd=cwd, env=env, timeout=STEP_TIMEOUT_S)
    output = (result.stdout + result.stderr) if not result.error else result.error
    failed = tuple(e.describe() for e in step.expects if not e.matches(output))
    return StepOutcome(
        step=step,
        ok=result.ok and not failed,
        exit_code=result.exit_code,
        duration_s=time.monotonic() - t0,
        started_at=started,
        output=redact(_bound(output.strip())),
        failed_expects=failed,
        host=host,
    )


def run_change(
    doc: Document,
    *,
    hosts: Sequence[tuple[str, Transport]],
    redact: Redactor,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    on_step: Callable[[StepOutcome], None] | None = None,
    before_step: Callable[[Step, str], None] | None = None,
    already_done: Callable[[Step, str], bool] | None = None,
    only_rollback: bool = False,
) -> RunReport:
    """Each step runs on every host in turn; it passes only where it passed on all.

    `already_done(step, host)`: steps that passed in an interrupted run being resumed
    are not run again. `only_rollback`: run the rollback plan alone.
    """
    report = RunReport(doc.id)

    def run_all(kind: str, *, stop_at_first: bool) -> bool:
        ok = True
        for step in doc.steps_of(kind):
            for name, transport in hosts:
                if already_done is not None and already_done(step, name):
                    continue
                if before_step:
                    before_step(step, name)
                # A remote host has no such local folder: commands start in its login dir.
                where = cwd if name == "local" else None
                outcome = run_step(
                    step, transport=transport, redact=redact, cwd=where, env=env, host=name
                )
                report.outcomes.append(outcome)
                if on_step:
                    on_step(outcome)
                ok = ok and outcome.ok
            if not ok and stop_at_first:
                break
        return ok

    if only_rollback:
        if not doc.steps_of("rollback"):
            report.status, report.message = FAILED, "the document has no rollback plan"
        elif run_all("rollback", stop_at_first=True):
            report.status, report.message = ROLLED_BACK, "the rollback plan ran"
        else:
            report.status, report.message = FAILED, "the rollback plan failed"
        return report
    if not run_all("pre", stop_at_first=False):
        bad = [o.step.name for o in report.of("pre") if not o.ok]
        report.status, report.message = REFUSED, "pre-checks failed: " + ", ".join(bad)
        return report
    failed_at = ""
    if not run_all("exec", stop_at_first=True):
        failed_at = next(o.step.name for o in report.of("exec") if not o.ok)
    else:
        checks_ok = run_all("post", stop_at_first=False)
        checks_ok = run_all("functional", stop_at_first=False) and checks_ok
        if checks_ok:
            report.status = DONE
            report.message = f"{len(report.outcomes)} step(s) passed; every check verified"
            return report
        failed_at = next(
            o.step.name
            for o in report.outcomes
            if o.step.kind in ("post", "functional") and not o.ok
        )
    if not doc.steps_of("rollback"):
        report.status, report.message = FAILED, f"{failed_at} failed and there is no rollback plan"
        return report
    if run_all("rollback", stop_at_first=True):
        report.status, report.message = ROLLED_BACK, f"{failed_at} failed; the rollback plan ran"
    else:
        report.status = FAILED
        report.message = f"{failed_at} failed, and the rollback plan failed too"
    return report


# ---- the rendered copy -----------------------------------------------------------------------

_RESULT_MARK = {True: "✅", False: "❌"}


def _approval_lines(approvals: Sequence[Approval]) -> str:
    lines = []
    for a in approvals:
        who = f"{a.by}, signed by {a.signer} ({a.key})" if a.signer else f"{a.by} (not signed)"
        note = f": {_cell(a.comment)}" if a.comment else ""
        lines.append(f"- [x] {who} at {a.at}, plan `{a.hash}`{note}")
    return "\n".join(lines) + "\n" if lines else ""


def _with_approvals(section: str, approvals: Sequence[Approval]) -> str:
    """seed 000's Approval section with the approvals that let this run go, each ticked,
    before the section's closing `---` (which the seed follows with its `*End of ...*`)."""
    lines = section.splitlines(keepends=True)
    rules = [i for i, line in enumerate(lines) if line.strip() == "---"]
    end = rules[-1] if rules else len(lines)
    head = "".join(lines[:end]).rstrip("\n") + "\n\n"
    return head + _approval_lines(approvals) + "\n" + "".join(lines[end:])


def render_run(
    doc: Document,
    text: str,
    report: RunReport,
    *,
    user: str,
    host: str,
    approvals: Sequence[Approval] = (),
) -> str:
    """The original document byte for byte, with the Execution Log filled in, the
    approvals that counted ticked under Approval, and the evidence appended (the plan file
    itself is never rewritten)."""
    rows = [
        f"| {o.started_at.astimezone():%Y-%m-%d %H:%M:%S} | {o.step.kind}: {_cell(o.step.name)}"
        f"{'' if o.host == 'local' else ' @ ' + o.host} "
        f"| {_RESULT_MARK[o.ok]} | {_cell(o.summary)} |"
        for o in report.outcomes
    ]
    table = "| 时间 Time | 操作 Step | 结果 Result | 备注 Notes |\n|---|---|---|---|\n"
    table += "\n".join(rows) + "\n"
    log = doc.section("log")
    approval = doc.section("approval") if approvals else None
    if log is not None:
        heading = log.text.splitlines(keepends=True)[0]
        filled = f"{heading}\n{table}\n"
        out = "".join(
            filled if s is log else _with_approvals(s.text, approvals) if s is approval else s.text
            for s in doc.sections
        )
    else:
        out = text.rstrip("\n") + "\n\n## Execution Log（执行日志）\n\n" + table
        if approval is not None:
            out = out.replace(approval.text, _with_approvals(approval.text, approvals), 1)
    if approvals and approval is None:
        out = out.rstrip("\n") + "\n\n## Approval（审批）\n\n" + _approval_lines(approvals)
    evidence = [
        "",
        f"## Run evidence (releasegate, {datetime.now(UTC).astimezone():%Y-%m-%d %H:%M:%S}, "
        f"{user}@{host})",
        "",
        f"**Status**: {report.status} — {report.message}",
        "",
    ]
    for o in report.outcomes:
        evidence += [
            f"### {o.step.kind}: {o.step.name}{'' if o.host == 'local' else ' @ ' + o.host}"
            f" — {_RESULT_MARK[o.ok]} {o.summary}",
            "",
            f"line {o.step.line}, exit {o.exit_code}, {o.duration_s:.2f}s",
            "",
            "```",
            o.step.command,
            "```",
            "",
            "```text",
            o.output.replace("```", "'''") or "(no output)",
            "```",
            "",
        ]
    return out.rstrip("\n") + "\n" + "\n".join(evidence)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "/")[:120]


def snapshot_row(doc: Document, report: RunReport) -> str:
    mark = {DONE: "✅", ROLLED_BACK: "↩️", FAILED: "❌", REFUSED: "⛔"}.get(report.status, "")
    return f"| {doc.id} | {_cell(doc.title)} | {mark} {report.status} | {_cell(report.message)} |"
