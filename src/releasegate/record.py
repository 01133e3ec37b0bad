"""Execution records: one Markdown file per deploy or rollback, in the shape of seed
002's record template (each step with its start time, result and evidence)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from releasegate.private import private_dir, write_private_text
from releasegate.redact import mask_shapes
from releasegate.textsafe import printable

if TYPE_CHECKING:
    from releasegate.engine import RunOutcome

EVIDENCE_LIMIT = 4000
_MARK = {True: "✅", False: "❌"}
_STATUS = {
    "success": "✅ DONE+VERIFIED",
    "rolled_back": "↩️ ROLLED_BACK",
    "refused": "⛔ REFUSED",
    "failed": "❌ FAILED",
}


def _t(when: datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:160]


def _run_section(out: RunOutcome, level: str) -> list[str]:
    lines = [
        f"{level} {out.action} {out.version} on {out.stack} ({out.env}): "
        f"{_STATUS.get(out.status, out.status)}",
        "",
    ]
    lines += [
        f"- Started: {_t(out.started_at)}",
        f"- Ended: {_t(out.ended_at)}",
        f"- Result: {out.message}",
    ]
    if out.notes:
        lines.append(f"- Notes: {out.notes}")
    if out.hint:
        lines.append(f"- Next: {out.hint}")
    lines.append("")
    if out.plan is not None:
        lines += [f"{level}# Plan", ""]
        lines += [f"{i}. {s.title}" for i, s in enumerate(out.plan.steps, 1)]
        if out.plan.notes:
            lines.append(f"\nOn failure: {out.plan.notes}")
        lines.append("")
    lines += [
        f"{level}# Execution",
        "",
        "| # | Step | Started | Duration | Result | Summary |",
        "|---|------|---------|----------|--------|---------|",
    ]
    for i, step in enumerate(out.steps, 1):
        lines.append(
            f"| {i} | {step.step} | {_t(step.started_at)} | {step.duration_s:.2f}s | "
            f"{_MARK[step.ok]} | {_cell(step.summary)} |"
        )
    lines.append("")
    for i, step in enumerate(out.steps, 1):
        lines += [
            f"{level}## Step {i}: {step.step}",
            "",
            f"- Started: {_t(step.started_at)}",
            f"- Result: {'success' if step.ok else 'failure'}",
            f"- Summary: {step.summary}",
        ]
        for check in step.checks:
            lines.append(f"- {_MARK[check.ok]} `{check.name}`: {check.summary}")
        evidence = {k: v for k, v in step.evidence.items()} | (
            {"checks": [c.evidence for c in step.checks if c.evidence]} if step.checks else {}
        )
        if any(evidence.values()):
            text = json.dumps(evidence, indent=2, ensure_ascii=False, default=str)
            if len(text) > EVIDENCE_LIMIT:
                text = text[:EVIDENCE_LIMIT] + "\n... (cut; the ledger keeps the rest)"
            lines += ["", "```json", text, "```"]
        lines.append("")
    return lines


def render(out: RunOutcome, *, user: str, host: str) -> str:
    runs = [out, *out.followups]
    end = max((r.ended_at for r in runs if r.ended_at), default=None)
    lines = [
        f"# Execution record: {out.action} {out.version} → {out.stack}",
        "",
        f"**Execution time**: {_t(out.started_at)} - {_t(end)}  ",
        f"**Executed by**: {user} on {host}  ",
        f"**Outcome**: {_STATUS.get(out.status, out.status)}: {out.message}  ",
        f"**Ledger action**: `{out.action_id}`",
        "",
    ]
    for run in runs:
        lines += _run_section(run, "##")
    return "\n".join(lines).rstrip() + "\n"


def write(
    out: RunOutcome,
    records_dir: Path,
    *,
    user: str,
    host: str,
    notices: list[str] | None = None,
) -> Path:
    """Write the record, 0600 in a 0700 folder (what was tightened is added to `notices`)."""
    tightened = private_dir(records_dir, tighten_files=True)
    if notices is not None:
        notices += tightened
    stamp = out.started_at.astimezone().strftime("%Y%m%d_%H%M%S")
    path = records_dir / f"{stamp}-{out.stack}-{out.action}-{out.version or 'none'}.md"
    n = 1
    while path.exists():
        path = path.with_name(f"{path.stem}-{n}.md")
        n += 1
    tmp = path.with_suffix(".md.tmp")
    # The last net under what the steps already redacted: credentials found by their shape;
    # and no control character from recorded text reaches whoever `cat`s the record.
    write_private_text(tmp, printable(mask_shapes(render(out, user=user, host=host))))
    os.replace(tmp, path)
    return path
