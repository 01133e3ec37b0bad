"""Approvals bound to the plan's content hash.

The plan hash is ``sha256:`` + the hex SHA-256 of the document's UTF-8 text, line endings
normalised to ``\\n``, without the sections that are records rather than plan (Execution
Log, SYNC_SNAPSHOT Entry, Approval): ticking the Approval checkboxes does not void
anything, while any edit to a command, an expectation, the risk or the prose does.
An approval counts only while its hash equals the current plan hash.

A signed approval (signatures.py) counts for the principal whose key signed the current
plan hash, not for the name typed after `--as`: where a policy requires signatures, four
eyes are two keys. The checking itself is a callable given to `state`, so this module stays
pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from releasegate.change.document import Document

REQUIRED = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}
RECORD_SECTIONS = ("log", "snapshot", "approval")


def plan_hash(doc: Document) -> str:
    text = "".join(s.text for s in doc.sections if s.key not in RECORD_SECTIONS)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Approval:
    by: str
    hash: str
    at: str
    comment: str = ""
    user: str = ""  # who ran `change approve` (the login), when not the approver
    signature: str = ""  # armored `ssh-keygen -Y sign` of the plan hash, if signed
    signer: str = ""  # the principal the key belonged to when approved (re-checked on use)
    key: str = ""  # the signing key's fingerprint (SHA256:...), for the record

    def to_json(self) -> dict[str, str]:
        data = {
            "by": self.by,
            "hash": self.hash,
            "at": self.at,
            "comment": self.comment,
            "user": self.user,
        }
        if self.signature:
            data.update(signature=self.signature, signer=self.signer, key=self.key)
        return data

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Approval:
        return cls(
            by=str(data["by"]),
            hash=str(data["hash"]),
            at=str(data.get("at", "")),
            comment=str(data.get("comment", "")),
            user=str(data.get("user", "")),
            signature=str(data.get("signature", "")),
            signer=str(data.get("signer", "")),
            key=str(data.get("key", "")),
        )


# (approval, current plan hash) -> the principal that signed it, or None
Verifier = Callable[[Approval, str], "str | None"]


@dataclass(frozen=True)
class Policy:
    """When approvals must be signed (releasegate.yaml `approvals`, top level and stacks)."""

    allowed_signers: Path | None = None
    require_signed: bool = False
    require_for_risk: frozenset[str] = frozenset()
    origin: tuple[str, ...] = ()  # the config keys the requirement comes from

    def signed_required(self, risk: str | None) -> bool:
        return self.require_signed or (risk or "HIGH") in self.require_for_risk


@dataclass(frozen=True)
class ApprovalState:
    required: int
    valid: tuple[Approval, ...]  # on the current plan, one per approver (signer, if signed)
    void: tuple[Approval, ...]  # given on an earlier version of the plan
    self_approvals: tuple[Approval, ...]  # an author approving their own HIGH change
    hash: str
    signed_required: bool = False
    unsigned: tuple[Approval, ...] = ()  # not signed, where signatures are required
    bad_signatures: tuple[Approval, ...] = ()  # not by an allowed key over the current plan
    same_signer: tuple[Approval, ...] = ()  # a second name typed by a signer already counted
    signers: dict[str, str] = field(default_factory=dict)  # approver -> verified principal

    @property
    def approved(self) -> bool:
        return len(self.valid) >= self.required

    def summary(self) -> str:
        text = f"{len(self.valid)}/{self.required}"
        if self.signed_required:
            text += " signed"
        if self.void:
            text += f", {len(self.void)} void (plan edited after approval)"
        if self.unsigned:
            text += f", {len(self.unsigned)} unsigned (signatures required)"
        if self.bad_signatures:
            text += f", {len(self.bad_signatures)} with a signature that does not verify"
        if self.same_signer:
            text += f", {len(self.same_signer)} by a key already counted"
        return text


def authors(doc: Document, recorded_author: str) -> set[str]:
    return {a for a in (recorded_author, doc.owner) if a}


def state(
    doc: Document,
    approvals: list[Approval],
    recorded_author: str = "",
    *,
    policy: Policy | None = None,
    verify: Verifier | None = None,
) -> ApprovalState:
    """Which approvals count. A signature is checked only with `verify`; without it (no
    allowed_signers configured) a signed approval counts as its typed name, unless the
    policy requires signatures, which then cannot be met."""
    policy = policy or Policy()
    current = plan_hash(doc)
    risk = doc.risk or "HIGH"  # an unknown risk is treated as the strictest
    signed = policy.signed_required(risk)
    own = authors(doc, recorded_author) if risk == "HIGH" else set()
    valid: dict[str, Approval] = {}
    signers: dict[str, str] = {}
    void: list[Approval] = []
    selfish: list[Approval] = []
    unsigned: list[Approval] = []
    bad: list[Approval] = []
    same: list[Approval] = []
    for a in approvals:
        if a.hash != current:
            void.append(a)
            continue
        signer = None
        if a.signature and verify is not None:
            signer = verify(a, current)
            if signer is None:
                bad.append(a)
                continue
        elif signed:
            unsigned.append(a)
            continue
        if a.by in own or (signer is not None and signer in own):
            selfish.append(a)
            continue
        who = signer or a.by  # four eyes: two keys when signed, two names otherwise
        if who in valid:
            if signer is not None and valid[who].by != a.by:
                same.append(a)
            continue
        valid[who] = replace(a, signer=signer) if signer else a
        if signer:
            signers[a.by] = signer
    return ApprovalState(
        REQUIRED[risk],
        tuple(valid.values()),
        tuple(void),
        tuple(selfish),
        current,
        signed_required=signed,
        unsigned=tuple(unsigned),
        bad_signatures=tuple(bad),
        same_signer=tuple(same),
        signers=signers,
    )
