"""`releasegate change run`: a LOW change end to end on the local host, a failing
post-check that runs the rollback plan, pre-checks that stop everything, a secret in a
command's output masked in the evidence, and approvals enforced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE
from tests.unit.test_change_cli import Rg

DOC = """\
# G2-010: rotate the app's config

## Operation（操作）

Write a new config file and check it.

## Risk Assessment（风险评估）

### Risk Level（风险等级）
{risk}

## Rollback Plan（回滚方案）

```bash
# restore the old config
cp old.conf app.conf
```

## Verification Evidence（验证证据）

### Pre-checks（前置验证）

```bash
# the old config is there
cat old.conf
# expect: version=1
```

### Execution（操作执行）

```bash
# write the new config
printf 'version=2\\n' > app.conf
```

### Post-checks（后置验证）

```bash
# the new config is live
cat app.conf
# expect: {expect}
# token in the output
echo "using token $API_TOKEN"
```

## Execution Log（执行日志）

| 时间 | 操作 | 结果 | 备注 |
|------|------|------|------|

## SYNC_SNAPSHOT Entry（快照条目）

## Approval（审批）
"""


def write(rg: Rg, risk: str = "LOW", expect: str = "version=2", old: str = "version=1") -> None:
    folder = rg.root / "changes"
    folder.mkdir(exist_ok=True)
    text = DOC.format(risk=risk, expect=expect)
    (folder / "G2-010.md").write_text(text, encoding="utf-8")
    (folder / "old.conf").write_text(old + "\n", encoding="utf-8")


@pytest.fixture()
def rg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rg:
    (tmp_path / "releasegate.yaml").write_text("stacks: {}\n", encoding="utf-8")
    monkeypatch.setenv("API_TOKEN", "tok-very-secret-42")
    return Rg(tmp_path)


def test_low_change_runs_end_to_end(rg: Rg) -> None:
    write(rg)
    out = rg("change", "run", "G2-010")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DONE+VERIFIED" in out.stdout
    assert (rg.root / "changes/app.conf").read_text() == "version=2\n"
    [rendered] = (rg.root / "changes/runs").glob("G2-010-*.md")
    text = rendered.read_text(encoding="utf-8")
    assert "DONE+VERIFIED" in text and "| post: the new config is live" in text
    assert "tok-very-secret-42" not in text  # the secret in the output is masked
    assert "tok-very-secret-42" not in out.stdout
    snapshot = (rg.root / "changes/SYNC_SNAPSHOT.md").read_text(encoding="utf-8")
    assert "| G2-010 | rotate the app's config | ✅ DONE+VERIFIED |" in snapshot
    plan = (rg.root / "changes/G2-010.md").read_text(encoding="utf-8")
    assert "version=2" not in plan.split("## Execution Log")[1]  # the plan is untouched
    [row] = [json.loads(x) for x in rg("change", "snapshot", "--json").stdout.splitlines()]
    assert row["id"] == "G2-010" and row["status"].endswith("DONE+VERIFIED")
    page = rg("change", "render", "G2-010", "--run", "--html").stdout
    assert page.startswith("<!doctype html>") and "<table>" in page and "DONE+VERIFIED" in page
    history = rg("history", "--json", "--steps").stdout
    rows = [json.loads(line) for line in history.splitlines()]
    assert [r["action"] for r in rows][:2] == ["change-run", "change-pre"]
    assert "tok-very-secret-42" not in history


def test_failing_post_check_runs_the_rollback_plan(rg: Rg) -> None:
    write(rg, expect="version=3")
    out = rg("change", "run", "G2-010")
    assert out.returncode == 4, out.stdout + out.stderr
    assert "ROLLED_BACK" in out.stdout
    assert (rg.root / "changes/app.conf").read_text() == "version=1\n"


def test_failing_pre_check_executes_nothing(rg: Rg) -> None:
    write(rg, old="version=0")
    out = rg("change", "run", "G2-010")
    assert out.returncode == 3, out.stdout + out.stderr
    assert not (rg.root / "changes/app.conf").exists()


def test_medium_change_needs_an_approval_to_run(rg: Rg) -> None:
    write(rg, risk="MEDIUM")
    out = rg("change", "run", "G2-010")
    assert out.returncode == 3 and "0/1" in out.stderr
    assert rg("change", "approve", "G2-010", "--as", "bob").returncode == 0
    out = rg("change", "run", "G2-010")
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_step_can_be_a_releasegate_action(rg: Rg) -> None:
    write(rg)
    doc = rg.root / "changes/G2-010.md"
    text = doc.read_text(encoding="utf-8").replace(
        "printf 'version=2\\n' > app.conf\n",
        "printf 'version=2\\n' > app.conf\n# the ledger is reachable from the record\n"
        "releasegate lock status\n# expect: no locks held\n",
    )
    doc.write_text(text, encoding="utf-8")
    out = rg("change", "run", "G2-010")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "exec: the ledger is reachable from the record: passed" in out.stdout


def test_an_interrupted_run_is_seen_then_resumed_or_rolled_back(rg: Rg) -> None:
    import os
    import signal
    import subprocess
    import time

    write(rg)
    doc = rg.root / "changes/G2-010.md"
    # The execution step hangs the first time (until killed), and passes once resumed.
    slow = "if [ ! -f resumed ]; then touch started; sleep 60; fi\n"
    doc.write_text(
        doc.read_text(encoding="utf-8").replace(
            "printf 'version=2\\n' > app.conf\n", "printf 'version=2\\n' > app.conf\n" + slow
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env["RELEASEGATE_USER"] = "alice"
    proc = subprocess.Popen(
        [RELEASEGATE, "change", "run", "G2-010"],
        cwd=rg.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (rg.root / "changes/started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # releasegate and its step, mid-run
    proc.wait()

    out = rg("change", "run", "G2-010")
    assert out.returncode == 3 and "interrupted" in out.stderr, out.stdout + out.stderr
    assert "--resume" in out.stderr
    (rg.root / "changes/resumed").touch()
    out = rg("change", "run", "G2-010", "--resume")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pre: the old config is there" not in out.stdout  # passed before: skipped
    assert "DONE+VERIFIED" in out.stdout

    out = rg("change", "rollback", "G2-010")
    assert out.returncode == 4, out.stdout + out.stderr
    assert (rg.root / "changes/app.conf").read_text() == "version=1\n"
    assert rg("change", "run", "G2-010").returncode == 0  # after a rollback: a fresh run


def test_high_change_needs_two_approvers_and_never_the_author(rg: Rg) -> None:
    write(rg, risk="HIGH")
    meta = rg.root / "changes/G2-010.meta.json"
    meta.write_text(json.dumps({"id": "G2-010", "author": "alice", "approvals": []}))
    assert rg("change", "approve", "G2-010", "--as", "alice").returncode == 3  # own change
    assert rg("change", "approve", "G2-010", "--as", "bob").returncode == 0
    out = rg("change", "run", "G2-010")
    assert out.returncode == 3 and "1/2" in out.stderr, out.stdout + out.stderr
    assert rg("change", "approve", "G2-010", "--as", "carol").returncode == 0
    # an edit to the plan voids both approvals
    doc = rg.root / "changes/G2-010.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace("version=2", "version=22"))
    out = rg("change", "run", "G2-010")
    assert out.returncode == 3 and "void" in out.stderr, out.stdout + out.stderr
