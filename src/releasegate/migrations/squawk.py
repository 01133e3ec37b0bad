"""Squawk (PyPI `squawk-cli`), PostgreSQL's migration linter, run with `--reporter json`;
its rule ids mapped to releasegate's risk levels. `parse_report` is pure."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from releasegate.migrations.sqlrules import Risk
from releasegate.transport.local import LocalTransport

# What breaks the previous release, or fails outright, is HIGH; what locks a busy table
# is MEDIUM; style and robustness advice is LOW. A rule not listed: MEDIUM.
RISKS: dict[str, Risk] = {
    "adding-required-field": Risk.HIGH,
    "ban-drop-column": Risk.HIGH,
    "ban-drop-table": Risk.HIGH,
    "ban-drop-database": Risk.HIGH,
    "ban-truncate-cascade": Risk.HIGH,
    "renaming-column": Risk.HIGH,
    "renaming-table": Risk.HIGH,
    "changing-column-type": Risk.HIGH,
    "ban-concurrent-index-creation-in-transaction": Risk.HIGH,
    "adding-not-nullable-field": Risk.MEDIUM,
    "adding-foreign-key-constraint": Risk.MEDIUM,
    "constraint-missing-not-valid": Risk.MEDIUM,
    "require-concurrent-index-creation": Risk.MEDIUM,
    "require-concurrent-index-deletion": Risk.MEDIUM,
    "disallowed-unique-constraint": Risk.MEDIUM,
    "adding-serial-primary-key-field": Risk.MEDIUM,
    "adding-field-with-default": Risk.MEDIUM,
    "adding-primary-key-constraint": Risk.MEDIUM,
    "transaction-nesting": Risk.MEDIUM,
    "ban-alter-domain-with-add-constraint": Risk.MEDIUM,
    "prefer-robust-stmts": Risk.LOW,
    "prefer-text-field": Risk.LOW,
    "prefer-bigint-over-int": Risk.LOW,
    "prefer-bigint-over-smallint": Risk.LOW,
    "prefer-identity": Risk.LOW,
    "prefer-timestamptz": Risk.LOW,
    "ban-char-field": Risk.LOW,
    "require-lock-timeout": Risk.LOW,
    "require-statement-timeout": Risk.LOW,
    "ban-create-domain-with-constraint": Risk.LOW,
}

# releasegate rule -> the Squawk rules that catch the same thing (then ours is not repeated)
COVERED_BY: dict[str, tuple[str, ...]] = {
    "add-column-not-null-no-default": ("adding-required-field",),
    "drop-column": ("ban-drop-column",),
    "drop-table": ("ban-drop-table",),
    "rename-column": ("renaming-column",),
    "rename-table": ("renaming-table",),
    "alter-column-type": ("changing-column-type",),
    "set-not-null": ("adding-not-nullable-field",),
    "create-index-not-concurrently": ("require-concurrent-index-creation",),
    "add-foreign-key-without-not-valid": (
        "adding-foreign-key-constraint",
        "constraint-missing-not-valid",
    ),
}


@dataclass(frozen=True)
class SquawkFinding:
    rule: str
    risk: Risk
    file: str
    line: int  # 1-based (Squawk's JSON counts from 0)
    message: str
    hint: str


def risk_of(rule: str, level: str = "Warning") -> Risk:
    if rule in RISKS:
        return RISKS[rule]
    return Risk.HIGH if level.lower() == "error" else Risk.MEDIUM


def parse_report(text: str) -> list[SquawkFinding]:
    """`squawk --reporter json` output -> findings (a JSON list of violations)."""
    data = json.loads(text or "[]")
    if not isinstance(data, list):
        raise ValueError("squawk --reporter json: expected a JSON list")
    out = []
    for item in data:
        if not isinstance(item, Mapping):
            continue
        rule = str(item.get("rule_name", "unknown"))
        out.append(
            SquawkFinding(
                rule=rule,
                risk=risk_of(rule, str(item.get("level", "Warning"))),
                file=str(item.get("file", "")),
                line=int(item.get("line", 0)) + 1,
                message=str(item.get("message", "")),
                hint=str(item.get("help") or ""),
            )
        )
    return out


def find_squawk() -> str | None:
    """`squawk` on PATH, else beside this Python (a virtual environment's bin/)."""
    found = shutil.which("squawk")
    if found:
        return found
    beside = Path(sys.executable).parent / "squawk"
    return str(beside) if beside.is_file() else None


class SquawkMissing(Exception):
    pass


def run_squawk(
    sql_by_name: Sequence[tuple[str, str]], binary: str | None = None
) -> dict[str, list[SquawkFinding]]:
    """Squawk over each (name, SQL), findings by name. Exit 1 means "found something"."""
    binary = binary or find_squawk()
    if binary is None:
        raise SquawkMissing("squawk is not installed (pip install squawk-cli)")
    out: dict[str, list[SquawkFinding]] = {name: [] for name, _ in sql_by_name}
    with tempfile.TemporaryDirectory(prefix="rg-squawk-") as tmp:
        files: dict[str, str] = {}
        for index, (name, sql) in enumerate(sql_by_name):
            path = Path(tmp) / f"{index:04d}.sql"
            path.write_text(sql, encoding="utf-8")
            files[str(path)] = name
        if not files:
            return out
        result = LocalTransport().run([binary, "--reporter", "json", *files], timeout=300)
        if result.exit_code not in (0, 1) or result.timed_out:
            raise SquawkMissing(
                f"squawk failed: {result.describe()}: {result.stderr.strip()[:300]}"
            )
        for finding in parse_report(result.stdout):
            owner = files.get(finding.file)
            if owner is not None:
                out[owner].append(finding)
    return out
