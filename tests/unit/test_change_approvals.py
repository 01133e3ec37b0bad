"""Approvals bound to the plan hash: counts by risk, no self-approval of HIGH, voided by edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.change.approvals import plan_hash
from releasegate.change.document import parse
from releasegate.change.store import ChangeStore
from releasegate.errors import BadInput, Refused

PLAN = """\
# {id}: test change

**Owner**: @alice

## Risk Assessment

### Risk Level
{risk}

## Rollback Plan

```bash
echo undo
```

## Execution

```bash
echo do
```

## Approval

- [ ] lead
"""


def _store(tmp_path: Path, change_id: str, risk: str) -> ChangeStore:
    store = ChangeStore(tmp_path / "changes")
    store.create(change_id, title="t", risk=risk, author="alice")
    store.doc_path(change_id).write_text(PLAN.format(id=change_id, risk=risk), encoding="utf-8")
    return store


def test_low_needs_none_medium_one(tmp_path: Path) -> None:
    store = _store(tmp_path, "C-1", "LOW")
    assert store.load("C-1").approvals().approved
    store = _store(tmp_path, "C-2", "MEDIUM")
    assert not store.load("C-2").approvals().approved
    store.approve("C-2", by="bob")
    assert store.load("C-2").approvals().approved


def test_high_needs_two_distinct_approvers(tmp_path: Path) -> None:
    store = _store(tmp_path, "C-3", "HIGH")
    store.approve("C-3", by="bob")
    st = store.load("C-3").approvals()
    assert (len(st.valid), st.required, st.approved) == (1, 2, False)
    with pytest.raises(Refused, match="already approved"):
        store.approve("C-3", by="bob")
    store.approve("C-3", by="carol", comment="ok")
    st = store.load("C-3").approvals()
    assert st.approved and [a.by for a in st.valid] == ["bob", "carol"]


def test_high_refuses_self_approval(tmp_path: Path) -> None:
    store = _store(tmp_path, "C-4", "HIGH")
    with pytest.raises(Refused, match="author"):
        store.approve("C-4", by="alice")
    # the document's Owner field counts as an author too, even without the sidecar
    store.meta_path("C-4").unlink()
    with pytest.raises(Refused, match="author"):
        store.approve("C-4", by="alice")
    assert store.load("C-4").meta.approvals == []


def test_edit_voids_approvals_but_ticking_the_approval_section_does_not(tmp_path: Path) -> None:
    store = _store(tmp_path, "C-5", "MEDIUM")
    store.approve("C-5", by="bob")
    path = store.doc_path("C-5")
    path.write_text(path.read_text(encoding="utf-8").replace("- [ ] lead", "- [x] lead"))
    assert store.load("C-5").approvals().approved
    path.write_text(path.read_text(encoding="utf-8").replace("echo do", "echo do more"))
    st = store.load("C-5").approvals()
    assert not st.approved and [a.by for a in st.void] == ["bob"]
    assert "void" in st.summary()


def test_invalid_plan_cannot_be_approved(tmp_path: Path) -> None:
    store = ChangeStore(tmp_path / "changes")
    store.create("C-6", title="t", risk="MEDIUM", author="alice")  # template: no rollback yet
    with pytest.raises(Refused, match="does not validate"):
        store.approve("C-6", by="bob")


def test_plan_hash_ignores_line_endings_and_record_sections() -> None:
    text = PLAN.format(id="C-7", risk="LOW")
    h = plan_hash(parse(text))
    assert h.startswith("sha256:") and len(h) == 7 + 64
    assert plan_hash(parse(text.replace("\n", "\r\n"))) == h
    assert plan_hash(parse(text.replace("echo do", "echo da"))) != h


def test_new_refuses_existing_and_bad_ids(tmp_path: Path) -> None:
    store = ChangeStore(tmp_path)
    store.create("C-8", title="t", risk="low", author="alice")
    with pytest.raises(BadInput, match="already exists"):
        store.create("C-8", title="t", risk="LOW", author="alice")
    with pytest.raises(BadInput, match="not allowed"):
        store.create("../x", title="t", risk="LOW", author="alice")
    rec = store.load("C-8")
    assert (rec.doc.id, rec.doc.risk, rec.meta.author, rec.doc.owner) == (
        "C-8",
        "LOW",
        "alice",
        "alice",
    )
