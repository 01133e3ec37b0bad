"""Approvals bound to the plan hash: counts by risk, no self-approval of HIGH, voided by edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.change.approvals import Approval, Policy, plan_hash, state
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


# -- signed approvals: the counting, with a stand-in for ssh-keygen -----------------------
KEYS = {"sig-alice": "alice@example.org", "sig-bob": "bob@example.org", "sig-al": "alice"}


def _verify(approval: Approval, plan: str) -> str | None:
    """Signatures here are `sig-NAME`; they verify only over the plan hash they name."""
    name, _, signed_plan = approval.signature.partition("|")
    return KEYS.get(name) if signed_plan == plan else None


def _approvals(plan: str, *rows: tuple[str, str]) -> list[Approval]:
    return [
        Approval(by=by, hash=plan, at="t", signature=f"{sig}|{plan}" if sig else "")
        for by, sig in rows
    ]


HIGH_SIGNED = Policy(require_for_risk=frozenset({"HIGH"}))


def test_four_eyes_counts_signers_not_typed_names() -> None:
    doc = parse(PLAN.format(id="S-1", risk="HIGH"))
    plan = plan_hash(doc)
    two_names = _approvals(plan, ("dana", "sig-alice"), ("erik", "sig-alice"))
    st = state(doc, two_names, "carol", policy=HIGH_SIGNED, verify=_verify)
    assert [a.by for a in st.valid] == ["dana"] and [a.by for a in st.same_signer] == ["erik"]
    assert not st.approved and st.summary() == "1/2 signed, 1 by a key already counted"
    assert st.valid[0].signer == "alice@example.org"
    two_keys = _approvals(plan, ("dana", "sig-alice"), ("erik", "sig-bob"))
    st = state(doc, two_keys, "carol", policy=HIGH_SIGNED, verify=_verify)
    assert st.approved and st.signers == {"dana": "alice@example.org", "erik": "bob@example.org"}


def test_unsigned_and_bad_signatures_do_not_count() -> None:
    doc = parse(PLAN.format(id="S-2", risk="HIGH"))
    plan = plan_hash(doc)
    rows = _approvals(plan, ("bob", ""), ("dave", "sig-bob"))
    rows.append(Approval(by="erin", hash=plan, at="t", signature="sig-bob|sha256:older"))
    rows.append(Approval(by="fred", hash=plan, at="t", signature="sig-nobody|" + plan))
    st = state(doc, rows, "carol", policy=HIGH_SIGNED, verify=_verify)
    assert [a.by for a in st.valid] == ["dave"]
    assert [a.by for a in st.unsigned] == ["bob"]
    assert [a.by for a in st.bad_signatures] == ["erin", "fred"]
    # Not required: a typed name counts, a signature that fails still does not.
    st = state(doc, rows, "carol", policy=Policy(), verify=_verify)
    assert [a.by for a in st.valid] == ["bob", "dave"] and not st.signed_required
    assert [a.by for a in st.bad_signatures] == ["erin", "fred"]


def test_the_author_key_cannot_approve_a_high_change() -> None:
    doc = parse(PLAN.format(id="S-3", risk="HIGH"))  # Owner: @alice
    plan = plan_hash(doc)
    st = state(doc, _approvals(plan, ("zed", "sig-al")), "", policy=HIGH_SIGNED, verify=_verify)
    assert st.valid == () and [a.by for a in st.self_approvals] == ["zed"]


@pytest.mark.parametrize(
    ("policy", "risk", "required"),
    [
        (Policy(), "HIGH", False),
        (Policy(require_signed=True), "LOW", True),
        (HIGH_SIGNED, "HIGH", True),
        (HIGH_SIGNED, "MEDIUM", False),
        (HIGH_SIGNED, None, True),  # an unknown risk is the strictest
    ],
)
def test_policy_by_risk(policy: Policy, risk: str | None, required: bool) -> None:
    assert policy.signed_required(risk) is required


def test_store_refuses_unsigned_where_required_and_a_second_name_for_one_key(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path, "S-4", "HIGH")
    with pytest.raises(Refused, match="needs signed approvals"):
        store.approve("S-4", by="bob", policy=HIGH_SIGNED)

    def sign(plan: str) -> tuple[str, str]:
        return f"sig-bob|{plan}", "SHA256:bob"

    first = store.approve("S-4", by="bob", policy=HIGH_SIGNED, sign=sign, verify=_verify)
    assert (first.signer, first.key) == ("bob@example.org", "SHA256:bob")
    with pytest.raises(Refused, match=r"bob@example.org already approved .* \(as bob\)"):
        store.approve("S-4", by="dave", policy=HIGH_SIGNED, sign=sign, verify=_verify)

    def stranger(plan: str) -> tuple[str, str]:
        return f"sig-nobody|{plan}", "SHA256:x"

    with pytest.raises(Refused, match="not an allowed signer"):
        store.approve("S-4", by="dave", policy=HIGH_SIGNED, sign=stranger, verify=_verify)
    assert [a.by for a in store.load("S-4").meta.approvals] == ["bob"]


@pytest.mark.parametrize(
    ("line", "stacks"),
    [
        ("**Stack**: web-prod", ("web-prod",)),
        ("**栈 / Stacks**: `web-prod`, api-prod", ("web-prod", "api-prod")),
        ("**Stack**: a，b a", ("a", "b")),
    ],
)
def test_document_names_its_stacks(line: str, stacks: tuple[str, ...]) -> None:
    text = PLAN.format(id="S-5", risk="LOW").replace(
        "**Owner**: @alice", f"**Owner**: @alice\n{line}"
    )
    assert parse(text).stacks == stacks
