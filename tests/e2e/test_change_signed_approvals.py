"""Approvals that prove who approved (issue 16, case 18): `change approve --key` signs the
plan hash with a real SSH key (ssh-keygen -Y sign), checked against an allowed_signers file
named in releasegate.yaml; where signatures are required, four eyes are two keys.

Real CLI in subprocesses, real ed25519 keys made here with ssh-keygen, a real change run."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen"),
]

CONFIG = """\
approvals:
  allowed_signers: keys/allowed_signers
  require_signed_for_risk: [HIGH]
stacks:
  web-prod:
    env: prod
    runtime: releases
    dir: srv/web-prod
    artifacts: artifacts
    approvals: {require_signed: true}
  web-staging:
    env: staging
    runtime: releases
    dir: srv/web-staging
    artifacts: artifacts
"""

# Seed 000's section layout (its Chinese headings, `{br}`: its Markdown line breaks), with
# commands that run here.
PLAN = """\
# {id}: 升级 intake 模块

> Encoding: UTF-8

---

## {id}: 升级 intake 模块

**创建时间**: 2026-12-03{br}
**状态**: DRAFT{br}
**负责人**: @carol{br}
{stack_line}
---

## Operation（操作）

写入 done.flag。

---

## Risk Assessment（风险评估）

### 风险等级
{risk}

---

## Rollback Plan（回滚方案）

### 回滚步骤

```bash
rm -f done.flag
```

---

## Verification Evidence（验证证据）

### 前置验证（操作前）

```bash
echo ready
# 预期输出: ready
```

### 操作执行

```bash
# 写入标记
echo {payload} > done.flag
```

### 后置验证（操作后）

```bash
cat done.flag
# 预期输出: {payload}
```

---

## Execution Log（执行日志）

| 时间 | 操作 | 结果 | 备注 |
|------|------|------|------|

---

## Approval（审批）

- [ ] 技术负责人审批

---

*End of {id}*
"""


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = root / "keys"

    def rg(self, *args: str, user: str = "carol") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
        env.update(NO_COLOR="1", COLUMNS="200", RELEASEGATE_USER=user)
        env.pop("SSH_AUTH_SOCK", None)  # the keys are files; no agent is consulted
        return subprocess.run(
            [RELEASEGATE, *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def key(self, name: str, *, allowed: bool = True) -> Path:
        """A fresh ed25519 key; its public half in allowed_signers as name@example.org."""
        path = self.keys / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
            check=True,
            capture_output=True,
        )
        if allowed:
            public = path.with_suffix(".pub").read_text().split()
            line = f'{name}@example.org namespaces="releasegate-approval" {public[0]} {public[1]}'
            with (self.keys / "allowed_signers").open("a") as fh:
                fh.write(line + "\n")
        return path

    def plan(self, change_id: str, risk: str, *, stack: str = "", payload: str = "ok") -> Path:
        doc = self.root / "changes" / f"{change_id}.md"
        stack_line = f"**Stack**: {stack}  \n" if stack else ""
        doc.write_text(
            PLAN.format(id=change_id, risk=risk, stack_line=stack_line, payload=payload, br="  "),
            encoding="utf-8",
        )
        return doc

    def show(self, change_id: str) -> dict:
        out = self.rg("change", "show", change_id, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def states(self, change_id: str) -> list[tuple[str, str]]:
        return [(a["by"], a["state"]) for a in self.show(change_id)["approval_list"]]


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "keys").mkdir(parents=True)
    (root / "changes").mkdir()
    (root / "keys" / "allowed_signers").write_text("")
    (root / "releasegate.yaml").write_text(CONFIG, encoding="utf-8")
    return Workspace(root)


def test_one_key_under_two_names_is_one_approver(ws: Workspace) -> None:
    alice, bob = ws.key("alice"), ws.key("bob")
    ws.plan("G2-101", "HIGH")

    out = ws.rg("change", "approve", "G2-101", "--as", "alice", "--key", str(alice))
    assert out.returncode == 0, out.stderr
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{alice}.pub"], capture_output=True, text=True, check=True
    )
    fingerprint = listed.stdout.split()[1]  # the key's fingerprint, as ssh-keygen prints it
    assert f"signed by alice@example.org ({fingerprint})" in out.stdout
    # The same person types another name with the same key: refused at once.
    out = ws.rg("change", "approve", "G2-101", "--as", "bob", "--key", str(alice))
    assert out.returncode == 3, out.stdout + out.stderr
    assert "alice@example.org already approved" in out.stderr
    out = ws.rg("change", "run", "G2-101")
    assert out.returncode == 3 and "1/2 signed" in out.stderr, out.stdout + out.stderr
    assert not (ws.root / "changes" / "done.flag").exists()

    # Forcing it into the sidecar does not help: the run counts signers, not names.
    meta_path = ws.root / "changes" / "G2-101.meta.json"
    meta = json.loads(meta_path.read_text())
    meta["approvals"].append({**meta["approvals"][0], "by": "bob"})
    meta_path.write_text(json.dumps(meta))
    assert ws.states("G2-101") == [("alice", "valid"), ("bob", "same-signer")]
    out = ws.rg("change", "run", "G2-101")
    assert out.returncode == 3 and "by a key already counted" in out.stderr
    assert not (ws.root / "changes" / "done.flag").exists()

    # A second person's key makes two.
    meta["approvals"].pop()
    meta_path.write_text(json.dumps(meta))
    out = ws.rg("change", "approve", "G2-101", "--as", "bob", "--key", str(bob))
    assert out.returncode == 0, out.stderr
    assert "approvals: 2/2 signed: approved" in out.stdout
    out = ws.rg("change", "run", "G2-101")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (ws.root / "changes" / "done.flag").read_text().strip() == "ok"

    # The run's record keeps seed 000's layout, the approvals ticked under Approval.
    record = next((ws.root / "changes" / "runs").glob("G2-101-*.md")).read_text()
    approval = record.split("## Approval（审批）", 1)[1].split("*End of G2-101*", 1)[0]
    assert "- [ ] 技术负责人审批" in approval
    assert "- [x] alice, signed by alice@example.org (SHA256:" in approval
    assert "- [x] bob, signed by bob@example.org (SHA256:" in approval
    headings = [line for line in record.splitlines() if line.startswith("## ")]
    assert headings[:8] == [
        "## G2-101: 升级 intake 模块",
        "## Operation（操作）",
        "## Risk Assessment（风险评估）",
        "## Rollback Plan（回滚方案）",
        "## Verification Evidence（验证证据）",
        "## Execution Log（执行日志）",
        "## Approval（审批）",
        next(h for h in headings if h.startswith("## Run evidence")),
    ]

    # The ledger names the signer of each approval and the approvers of the run.
    db = sqlite3.connect(ws.root / ".releasegate" / "state.db")
    rows = db.execute(
        "SELECT action, details FROM entries WHERE action IN ('change-approve', 'change-run') "
        "ORDER BY rowid"
    ).fetchall()
    db.close()
    signers = [json.loads(d).get("signer") for a, d in rows if a == "change-approve"]
    assert signers == ["alice@example.org", "bob@example.org"]
    run = next(json.loads(d) for a, d in rows if a == "change-run" and "approvals" in d)
    assert [a["signer"] for a in run["approvals"]] == ["alice@example.org", "bob@example.org"]


def test_signatures_required_by_risk_and_by_stack(ws: Workspace) -> None:
    alice = ws.key("alice")
    ws.plan("G2-102", "HIGH")
    out = ws.rg("change", "approve", "G2-102", "--as", "alice")
    assert out.returncode == 3 and "needs signed approvals" in out.stderr, out.stderr
    assert "--key" in out.stderr

    # MEDIUM: names suffice at the top level...
    ws.plan("G2-103", "MEDIUM")
    assert ws.rg("change", "approve", "G2-103", "--as", "dave").returncode == 0
    assert ws.show("G2-103")["approved"]
    # ...but not for a run on web-prod, whose policy requires every approval signed.
    out = ws.rg("change", "run", "G2-103", "--stack", "web-prod")
    assert out.returncode == 3 and "0/1 signed, 1 unsigned" in out.stderr, out.stderr
    assert not (ws.root / "changes" / "done.flag").exists()
    # A record naming its stack gets that policy everywhere (show, approve, run).
    ws.plan("G2-104", "MEDIUM", stack="web-prod")
    out = ws.rg("change", "approve", "G2-104", "--as", "dave")
    assert out.returncode == 3 and "stacks.web-prod.approvals" in out.stderr
    assert ws.rg("change", "approve", "G2-104", "--as", "dave", "--key", str(alice)).returncode == 0
    assert ws.show("G2-104")["approved"]
    # A stack that does not exist is an error, not a way around its policy.
    ws.plan("G2-105", "MEDIUM", stack="web-prd")
    out = ws.rg("change", "show", "G2-105")
    assert out.returncode == 2 and "unknown stack 'web-prd'" in out.stderr


def test_change_new_with_a_stack_writes_its_line_and_gets_its_policy(ws: Workspace) -> None:
    for change_id, stack in (("G2-110", ["--stack", "web-prod"]), ("G2-113", [])):
        out = ws.rg("change", "new", change_id, "--title", "t", "--risk", "MEDIUM", *stack)
        assert out.returncode == 0, out.stderr
    assert "**Stack / 栈**: web-prod" in (ws.root / "changes" / "G2-110.md").read_text("utf-8")
    with_stack, without = ws.show("G2-110"), ws.show("G2-113")
    assert (with_stack["stacks"], without["stacks"]) == (["web-prod"], [])
    # web-prod's policy: every approval signed; the top level: only for HIGH.
    assert (with_stack["signed_required"], without["signed_required"]) == (True, False)
    # A stack that does not exist is refused when the record is made; nothing is written.
    out = ws.rg("change", "new", "G2-111", "--title", "t", "--risk", "LOW", "--stack", "web-prd")
    assert out.returncode == 2 and "unknown stack 'web-prd'" in out.stderr, out.stderr
    assert not (ws.root / "changes" / "G2-111.md").exists()
    out = ws.rg("change", "new", "G2-112", "--title", "t", "--risk", "LOW", "--stack", "Web;rm")
    assert out.returncode == 2 and not (ws.root / "changes" / "G2-112.md").exists()


def test_key_not_in_allowed_signers_is_refused(ws: Workspace) -> None:
    ws.key("alice")
    mallory = ws.key("mallory", allowed=False)
    ws.plan("G2-106", "HIGH")
    out = ws.rg("change", "approve", "G2-106", "--as", "alice", "--key", str(mallory))
    assert out.returncode == 3 and "not an allowed signer" in out.stderr, out.stderr
    assert ws.show("G2-106")["approval_list"] == []


def test_tampered_plan_invalidates_the_signatures(ws: Workspace) -> None:
    alice, bob = ws.key("alice"), ws.key("bob")
    doc = ws.plan("G2-107", "HIGH")
    for name, key in (("alice", alice), ("bob", bob)):
        assert ws.rg("change", "approve", "G2-107", "--as", name, "--key", str(key)).returncode == 0
    assert ws.show("G2-107")["approved"]

    # Someone edits the command after the approvals...
    doc.write_text(doc.read_text().replace("echo ok > done.flag", "echo pwned > done.flag"))
    assert ws.states("G2-107") == [("alice", "void"), ("bob", "void")]
    # ...and rewrites the sidecar's hashes to the edited plan: the signatures give it away.
    meta_path = ws.root / "changes" / "G2-107.meta.json"
    meta = json.loads(meta_path.read_text())
    current = ws.show("G2-107")["hash"]
    for approval in meta["approvals"]:
        approval["hash"] = current
    meta_path.write_text(json.dumps(meta))
    assert ws.states("G2-107") == [("alice", "bad-signature"), ("bob", "bad-signature")]
    out = ws.rg("change", "run", "G2-107")
    assert out.returncode == 3 and "2 with a signature that does not verify" in out.stderr
    assert not (ws.root / "changes" / "done.flag").exists()
    out = ws.rg("change", "show", "G2-107")
    assert "the signature is not an allowed key's over this plan" in out.stdout
