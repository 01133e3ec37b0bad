"""Change records: parsing seed 000 (the spec's own example), rendering, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.change.document import parse, render, validate
from releasegate.errors import BadInput

SEED = Path(__file__).parents[1] / "data" / "change" / "G2-001.md"


@pytest.fixture()
def seed_text() -> str:
    return SEED.read_bytes().decode("utf-8")


def test_seed_round_trips_byte_for_byte(seed_text: str) -> None:
    doc = parse(seed_text)
    assert render(doc).encode("utf-8") == SEED.read_bytes()


def test_seed_header_and_sections(seed_text: str) -> None:
    doc = parse(seed_text)
    assert (doc.id, doc.title, doc.risk, doc.owner) == (
        "G2-001",
        "示例 Gate2 操作",
        "MEDIUM",
        "engineer",
    )
    assert doc.status == "✅ DONE+VERIFIED"
    assert [s.key for s in doc.sections] == [
        "title", "header", "operation", "risk", "impact", "rollback", "verification",
        "log", "notes", "snapshot", "approval",
    ]  # fmt: skip
    assert doc.sections[5].heading == "Rollback Plan（回滚方案）"
    assert doc.sections[5].line == 61


def test_seed_steps_and_assertions(seed_text: str) -> None:
    doc = parse(seed_text)
    pre = doc.steps_of("pre")
    assert len(pre) == 1
    assert pre[0].name == "检查当前版本"
    assert pre[0].command.startswith("psql -d ERP -c")
    assert [(e.text, e.regex, e.line) for e in pre[0].expects] == [
        ("name | state | latest_version", False, 93)
    ]
    assert [s.name for s in doc.steps_of("exec")] == ["同步代码", "升级模块", "重启服务"]
    post = doc.steps_of("post")
    # `# 实际输出:` / `# 验证结果:` are recorded results, not assertions
    assert [(s.name, s.expects) for s in post] == [("检查模块版本", ()), ("检查服务状态", ())]
    assert [s.command for s in doc.steps_of("rollback")] == [
        "git checkout <previous_commit>",
        "sudo systemctl restart odoo.service",
        "curl http://localhost:8069/web",
    ]
    assert doc.steps_of("functional") == []


def test_seed_validates_with_a_warning_for_manual_functional_checks(seed_text: str) -> None:
    issues = validate(parse(seed_text))
    assert [i.level for i in issues] == ["warning"]
    assert issues[0].line == 122
    assert "Functional checks" in issues[0].message and "no command" in issues[0].message


def _doc(risk: str, body: str) -> str:
    return f"# C-1: test\n\n## Risk Assessment\n\n### Risk Level\n{risk}\n\n{body}"


EXEC = "## Execution\n\n```bash\necho hi\n```\n"


def test_english_headings_expect_and_regex() -> None:
    text = _doc(
        "LOW",
        "## Pre-checks\n\n```sh\n# disk\ndf -h /\n# expect: /\\d+%/\nuname -a\n"
        "# expect: Linux\n# expect: x\n```\n" + EXEC,
    )
    doc = parse(text)
    assert render(doc) == text
    (df, uname) = doc.steps_of("pre")
    assert df.name == "disk" and df.expects[0].regex and df.expects[0].matches("used 42%")
    assert not df.expects[0].matches("no numbers")
    assert uname.name == "uname -a" and [e.text for e in uname.expects] == ["Linux", "x"]
    assert validate(doc) == []


def test_multiline_commands_continuations_and_quotes() -> None:
    text = _doc("LOW", '## Execution\n\n```bash\nmysql -e "\nSELECT 1;"\nls \\\n  -l\n```\n')
    steps = parse(text).steps_of("exec")
    assert [s.command for s in steps] == ['mysql -e "\nSELECT 1;"', "ls \\\n  -l"]
    assert [s.line for s in steps] == [11, 13]


def test_unknown_sections_are_kept_and_other_code_blocks_ignored() -> None:
    text = _doc("LOW", "## Weird（奇怪）\n\n```bash\nrm -rf /\n```\n" + EXEC)
    doc = parse(text)
    assert [(s.heading, s.key) for s in doc.sections][-2:] == [
        ("Weird（奇怪）", None),
        ("Execution", None),
    ]
    assert [s.command for s in doc.steps] == ["echo hi"]
    assert render(doc) == text


@pytest.mark.parametrize("risk", ["MEDIUM", "HIGH"])
def test_medium_and_high_need_a_rollback_plan(risk: str) -> None:
    doc = parse(_doc(risk, "## Rollback Plan\n\nnothing here\n\n" + EXEC))
    errors = [i for i in validate(doc) if i.level == "error"]
    assert len(errors) == 1 and "rollback plan" in errors[0].message
    assert errors[0].line == 8
    ok = parse(_doc(risk, "## Rollback Plan\n\n```bash\necho undo\n```\n" + EXEC))
    assert [i for i in validate(ok) if i.level == "error"] == []


def test_low_without_rollback_is_fine_and_missing_risk_is_an_error() -> None:
    assert validate(parse(_doc("LOW", EXEC))) == []
    issues = validate(parse("# C-1: t\n\n" + EXEC))
    assert [i.level for i in issues] == ["error"]


def test_check_without_command_is_a_warning() -> None:
    doc = parse(_doc("LOW", "## Post-checks\n\n1. look at the dashboard\n\n" + EXEC))
    (w,) = validate(doc)
    assert w.level == "warning" and w.line == 8 and "1 manual item" in w.message


def test_chinese_risk_words() -> None:
    assert parse("# C-1: t\n\n**风险等级**: 🟡 低风险操作\n").risk == "LOW"


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("", 1, "empty"),
        ("\n\nhello\n", 3, "title"),
        ("## C-1: t\n", 1, "title"),
        ("# bad/id: t\n", 1, "not allowed"),
        ("# C-1: t\n\n## Execution\n\n```bash\necho\n", 5, "never closed"),
        (_doc("CRITICAL", ""), 6, "not LOW, MEDIUM or HIGH"),
        (_doc("LOW", "## Execution\n```bash\nls\n# expect: /(/\n```\n"), 11, "bad regex"),
        (_doc("LOW", "## Execution\n```bash\nls\n# expect:\n```\n"), 11, "no text"),
        (_doc("LOW", "## Execution\n```bash\necho 'open\n```\n"), 10, "not finished"),
    ],
)
def test_malformed_documents_name_the_line(text: str, line: int, what: str) -> None:
    with pytest.raises(BadInput) as err:
        parse(text, where="x.md")
    assert err.value.message.startswith(f"x.md:{line}:")
    assert what in err.value.message
