"""Parse a change record (a Gate2 Markdown document) into a model, and validate it.

The document is split at its `## ` headings into sections whose text is kept verbatim, so
`render(parse(text)) == text` byte for byte and unknown sections are never dropped.
Commands are the lines of ``bash``/``sh`` fenced blocks under the Pre-checks, Execution,
Post-checks, Functional checks and Rollback Plan headings (English or Chinese, as in
seed 000). A ``# expect: ...`` (or ``# 预期输出: ...``) line after a command is its
assertion: a substring of the output, or a regex when written ``/.../``.

Nothing here prints; malformed documents raise BadInput naming the line.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from releasegate.errors import BadInput

RISKS = ("LOW", "MEDIUM", "HIGH")
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STEP_KINDS = ("pre", "exec", "post", "functional", "rollback")
CHECK_KINDS = ("pre", "post", "functional")
KIND_LABELS = {
    "pre": "Pre-checks",
    "exec": "Execution",
    "post": "Post-checks",
    "functional": "Functional checks",
    "rollback": "Rollback Plan",
}

_TITLE_RE = re.compile(r"#\s+(?P<id>\S+?)\s*[:：]\s*(?P<title>.*?)\s*")
_HEADING_RE = re.compile(r"(?P<hashes>#{2,6})\s+(?P<text>.*?)\s*#*\s*")
_FENCE_RE = re.compile(r"(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*")
_EXPECT_RE = re.compile(
    r"(?:预期输出|预期结果|期望输出|expect(?:ed)?)\s*[:：]\s*(?P<value>.*)", re.I
)
# Recorded results in a filled-in document (seed 000): evidence, not part of the plan.
_RESULT_RE = re.compile(r"(?:实际输出|验证结果|actual|result)\s*[:：]", re.I)
_RISK_FIELD_RE = re.compile(r"\*\*\s*(?:风险等级|risk(?: level)?)\s*\*\*\s*[:：]\s*(?P<v>.*)", re.I)
_RISK_WORD_RE = re.compile(r"\b(LOW|MEDIUM|HIGH)\b|(低|中|高)风险", re.I)
_OWNER_RE = re.compile(r"\*\*\s*(?:负责人|owner|author)[^*]*\*\*\s*[:：]\s*@?(\S+)", re.I)
# `**Stack / 栈**: web-prod, api-prod`: the stacks whose approval policy applies.
_STACK_RE = re.compile(r"\*\*\s*(?:stacks?|栈)[^*]*\*\*\s*[:：]\s*(?P<v>.*)", re.I)
_SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh"}
_CN_RISK = {"低": "LOW", "中": "MEDIUM", "高": "HIGH"}

# Heading text -> step kind. Order matters: "Execution Log" is not the execution.
_KIND_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("log", re.compile(r"execution log|执行日志|执行记录", re.I)),
    ("pre", re.compile(r"pre-?\s?checks?|pre-?verification|前置验证|前置检查|操作前", re.I)),
    ("post", re.compile(r"post-?\s?checks?|post-?verification|后置验证|后置检查|操作后", re.I)),
    ("functional", re.compile(r"functional|功能验证|功能检查", re.I)),
    ("rollback", re.compile(r"rollback (?:plan|steps)|回滚方案|回滚步骤", re.I)),
    ("exec", re.compile(r"^execution\b|^steps\b|操作执行|执行步骤", re.I)),
)
# Known level-2 sections (the seed 000 layout); anything else is kept as an unknown section.
_KNOWN_SECTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("operation", re.compile(r"^operation|^操作", re.I)),
    ("risk", re.compile(r"risk assessment|风险评估", re.I)),
    ("impact", re.compile(r"^impact|影响", re.I)),
    ("rollback", re.compile(r"rollback plan|回滚方案", re.I)),
    ("verification", re.compile(r"verification evidence|验证证据", re.I)),
    ("log", re.compile(r"execution log|执行日志", re.I)),
    ("notes", re.compile(r"^notes|备注", re.I)),
    ("snapshot", re.compile(r"sync_snapshot|快照", re.I)),
    ("approval", re.compile(r"^approvals?|审批", re.I)),
)


@dataclass(frozen=True)
class Expect:
    """An assertion on a command's output: a substring, or a regex (written /.../)."""

    text: str
    regex: bool
    line: int

    def matches(self, output: str) -> bool:
        if self.regex:
            return re.search(self.text, output, re.MULTILINE) is not None
        return self.text in output

    def describe(self) -> str:
        return f"/{self.text}/" if self.regex else repr(self.text)


@dataclass(frozen=True)
class Step:
    kind: str  # one of STEP_KINDS
    name: str  # the comment above the command, else the command itself
    command: str
    line: int  # 1-based line of the command's first line
    expects: tuple[Expect, ...] = ()


@dataclass(frozen=True)
class Section:
    heading: str  # the heading's text ("" for the preamble before the first `## `)
    line: int  # 1-based line of the heading (1 for the preamble)
    text: str  # verbatim, heading line included
    key: str | None  # a known section of the seed 000 layout, or None (kept verbatim)


@dataclass(frozen=True)
class Issue:
    level: str  # "error" or "warning"
    line: int
    message: str


@dataclass
class Document:
    id: str
    title: str
    risk: str | None
    risk_line: int
    sections: list[Section]
    steps: list[Step]
    check_sections: dict[str, int] = field(default_factory=dict)  # kind -> heading line
    manual_checks: list[tuple[str, int]] = field(default_factory=list)  # (kind, line)
    notes: list[Issue] = field(default_factory=list)  # warnings found while parsing
    status: str = ""
    owner: str = ""  # the `**负责人 / Owner**: @name` field, without the @
    stacks: tuple[str, ...] = ()  # the `**Stack / 栈**: a, b` field

    def steps_of(self, kind: str) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)


def render(doc: Document) -> str:
    """The document's text, exactly as parsed."""
    return "".join(s.text for s in doc.sections)


def check_id(value: str) -> str:
    if not ID_RE.fullmatch(value) or ".." in value:
        raise BadInput(
            f"change id {value!r} is not allowed",
            hint="use letters, digits, '.', '-' and '_' (at most 64), e.g. G2-002",
        )
    return value


def _kind_of(heading: str) -> str | None:
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(heading):
            return kind
    return None


def _section_key(heading: str, doc_id: str) -> str | None:
    if heading.startswith(f"{doc_id}:") or heading.startswith(f"{doc_id}："):
        return "header"
    for key, pattern in _KNOWN_SECTIONS:
        if pattern.search(heading):
            return key
    return None


def _parse_risk(value: str, line: int, where: str) -> str:
    m = _RISK_WORD_RE.search(value)
    if not m:
        raise BadInput(f"{where}:{line}: risk level {value.strip()!r} is not LOW, MEDIUM or HIGH")
    return m.group(1).upper() if m.group(1) else _CN_RISK[m.group(2)]


def _parse_expect(value: str, line: int, where: str) -> Expect:
    value = value.strip()
    if not value:
        raise BadInput(f"{where}:{line}: expected-output line has no text")
    if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
        pattern = value[1:-1]
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadInput(f"{where}:{line}: bad regex /{pattern}/: {exc}") from None
        return Expect(pattern, True, line)
    return Expect(value, False, line)


def _complete(command: str) -> bool:
    """Is this shell text a whole command (no open quote, no trailing backslash)?"""
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=False)
    except ValueError:
        return False
    return True


def _parse_block(
    lines: list[tuple[int, str]], kind: str, where: str, notes: list[Issue]
) -> list[Step]:
    steps: list[Step] = []
    name = ""
    pending: list[str] = []  # lines of a command still open (quote or backslash)
    start = 0
    expects: list[Expect] = []

    def flush() -> None:
        nonlocal pending, expects, name
        if pending:
            command = "\n".join(pending)
            steps.append(Step(kind, name or command.splitlines()[0], command, start, ()))
            name = ""
        pending = []

    for number, raw in lines:
        text = raw.strip()
        if pending and not _complete("\n".join(pending)):
            pending.append(raw.rstrip())
            continue
        if not text:
            flush()
            name = ""
            continue
        if text.startswith("#"):
            body = text.lstrip("#").strip()
            m = _EXPECT_RE.match(body)
            if m:
                flush()
                expect = _parse_expect(m.group("value"), number, where)
                if not steps:
                    notes.append(Issue("warning", number, "expected output with no command"))
                    continue
                last = steps[-1]
                steps[-1] = Step(
                    last.kind, last.name, last.command, last.line, (*last.expects, expect)
                )
            elif not _RESULT_RE.match(body):
                flush()
                name = body
            continue
        flush()  # the previous command (if any) is complete: this line starts a new one
        start = number
        pending.append(raw.rstrip())
    if pending and not _complete("\n".join(pending)):
        raise BadInput(f"{where}:{start}: command is not finished (open quote or trailing '\\')")
    flush()
    return steps


def parse(text: str, *, where: str = "<document>") -> Document:
    """Parse a change record; raise BadInput ``where:line: what is wrong`` if malformed."""
    lines = text.splitlines(keepends=True)
    first = next((i for i, raw in enumerate(lines) if raw.strip()), None)
    if first is None:
        raise BadInput(f"{where}:1: the document is empty")
    m = _TITLE_RE.fullmatch(lines[first].strip().lstrip("\ufeff"))
    if not m or lines[first].lstrip("\ufeff").startswith("##"):
        raise BadInput(
            f"{where}:{first + 1}: the first line must be the title `# ID: title`",
            hint="e.g. `# G2-002: deploy the intake module`",
        )
    doc_id = m.group("id")
    if not ID_RE.fullmatch(doc_id):
        raise BadInput(f"{where}:{first + 1}: change id {doc_id!r} is not allowed")
    title = m.group("title")

    sections: list[Section] = []
    steps: list[Step] = []
    notes: list[Issue] = []
    check_sections: dict[str, int] = {}
    manual: list[tuple[str, int]] = []
    risk: str | None = None
    risk_line = 0
    status = ""
    owner = ""
    stacks: tuple[str, ...] = ()

    sec_start, sec_heading, sec_line = 0, "", 1
    kind2: str | None = None  # the step kind of the current `## ` section
    kind: str | None = None  # ... of the current `###` subsection (or inherited)
    in_risk_heading = False
    fence: tuple[str, int, str, int] | None = None  # (marker, indent, lang, line)
    block: list[tuple[int, str]] = []

    def close_section(end: int) -> None:
        if end > sec_start:
            key = _section_key(sec_heading, doc_id) if sec_heading else "title"
            sections.append(Section(sec_heading, sec_line, "".join(lines[sec_start:end]), key))

    for i, raw in enumerate(lines):
        number = i + 1
        line = raw.rstrip("\r\n")
        if fence is not None:
            marker, indent, lang, _ = fence
            stripped = line.strip()
            if stripped.startswith(marker[0] * len(marker)) and not stripped.strip(marker[0]):
                if kind in STEP_KINDS and lang in _SHELL_LANGS:
                    found = _parse_block(block, kind, where, notes)
                    steps.extend(found)
                fence = None
                block = []
            else:
                block.append((number, line[indent:] if line[:indent].isspace() else line))
            continue
        fm = _FENCE_RE.fullmatch(line)
        if fm:
            fence = (fm.group("fence"), len(fm.group("indent")), fm.group("info").lower(), number)
            continue
        hm = _HEADING_RE.fullmatch(line)
        if hm:
            heading = hm.group("text")
            level = len(hm.group("hashes"))
            if level == 2:
                close_section(i)
                sec_start, sec_heading, sec_line = i, heading, number
                kind2 = _kind_of(heading)
                kind = kind2
            else:
                sub = _kind_of(heading)
                kind = sub if sub is not None else kind2
            if kind in CHECK_KINDS or kind == "exec":
                check_sections.setdefault(kind, number)
            in_risk_heading = bool(re.search(r"risk level|风险等级", heading, re.I))
            continue
        stripped = line.strip()
        if in_risk_heading and stripped and risk is None:
            risk, risk_line = _parse_risk(stripped, number, where), number
            in_risk_heading = False
            continue
        field_m = _RISK_FIELD_RE.match(stripped)
        if field_m and risk is None:
            risk, risk_line = _parse_risk(field_m.group("v"), number, where), number
        status_m = re.match(r"\*\*\s*(?:状态|status)[^*]*\*\*\s*[:：]\s*(.*)", stripped, re.I)
        if status_m and not status:
            status = status_m.group(1).strip()
        owner_m = _OWNER_RE.match(stripped)
        if owner_m and not owner:
            owner = owner_m.group(1)
        stack_m = _STACK_RE.match(stripped)
        if stack_m and not stacks:
            words = re.split(r"[,，\s]+", stack_m.group("v").replace("`", ""))
            stacks = tuple(dict.fromkeys(w for w in words if w))
        if kind in CHECK_KINDS and re.match(r"(?:[-*+]|\d+[.)])\s+\S", stripped):
            manual.append((kind, number))
    if fence is not None:
        raise BadInput(f"{where}:{fence[3]}: code block opened here is never closed")
    close_section(len(lines))
    return Document(
        id=doc_id,
        title=title,
        risk=risk,
        risk_line=risk_line,
        sections=sections,
        steps=steps,
        check_sections=check_sections,
        manual_checks=manual,
        notes=notes,
        status=status,
        owner=owner,
        stacks=stacks,
    )


def validate(doc: Document) -> list[Issue]:
    """Errors (the plan cannot be approved or run) and warnings, in line order."""
    issues = list(doc.notes)
    if doc.risk is None:
        issues.append(Issue("error", 1, "no risk level (a `### Risk Level` of LOW/MEDIUM/HIGH)"))
    if doc.risk in ("MEDIUM", "HIGH") and not doc.steps_of("rollback"):
        where = doc.section("rollback")
        issues.append(
            Issue(
                "error",
                where.line if where else doc.risk_line or 1,
                f"{doc.risk} change without a rollback plan: add a command block under "
                "`## Rollback Plan`",
            )
        )
    if not doc.steps_of("exec"):
        issues.append(Issue("warning", doc.check_sections.get("exec", 1), "no execution commands"))
    for kind in CHECK_KINDS:
        if kind in doc.check_sections and not doc.steps_of(kind):
            manual = [n for k, n in doc.manual_checks if k == kind]
            extra = f" ({len(manual)} manual item(s))" if manual else ""
            issues.append(
                Issue(
                    "warning",
                    doc.check_sections[kind],
                    f"{KIND_LABELS[kind]}: check with no command{extra}; it cannot be verified",
                )
            )
    return sorted(issues, key=lambda i: (i.line, i.level))
