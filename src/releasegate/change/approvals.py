"""Approvals bound to the plan's content hash.

The plan hash is ``sha256:`` + the hex SHA-256 of the document's UTF-8 text, line endings
normalised to ``\\n``, without the sections that are records rather than plan (Execution
Log, SYNC_SNAPSHOT Entry, Approval): ticking the Approval checkboxes does not void
anything, while any edit to a command, an expectation, the risk or the prose does.
An approval counts only while its hash equals the current plan hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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

    def to_json(self) -> dict[str, str]:
        return {
            "by": self.by,
            "hash": self.hash,
            "at": self.at,
            "comment": self.comment,
            "user": self.user,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Approval:
        return cls(
            by=str(data["by"]),
            hash=str(data["hash"]),
            at=str(data.get("at", "")),
            comment=str(data.get("comment", "")),
            user=str(data.get("user", "")),
        )


@dataclass(frozen=True)
class ApprovalState:
    required: int
    valid: tuple[Approval, ...]  # on the current plan, one per approver
    void: tuple[Approval, ...]  # given on an earlier version of the plan
    self_approvals: tuple[Approval, ...]  # an author approving their own HIGH change
    hash: str

    @property
    def approved(self) -> bool:
        return len(self.valid) >= self.required

    def summary(self) -> str:
        text = f"{len(self.valid)}/{self.required}"
        if self.void:
            text += f", {len(self.void)} void (plan edited after approval)"
        return text


def authors(doc: Document, recorded_author: str) -> set[str]:
    return {a for a in (recorded_author, doc.owner) if a}


def state(doc: Document, approvals: list[Approval], recorded_author: str = "") -> ApprovalState:
    current = plan_hash(doc)
    risk = doc.risk or "HIGH"  # an unknown risk is treated as the strictest
    own = authors(doc, recorded_author) if risk == "HIGH" else set()
    valid: dict[str, Approval] = {}
    void: list[Approval] = []
    selfish: list[Approval] = []
    for a in approvals:
        if a.hash != current:
            void.append(a)
        elif a.by in own:
            selfish.append(a)
        else:
            valid.setdefault(a.by, a)
    return ApprovalState(
        REQUIRED[risk], tuple(valid.values()), tuple(void), tuple(selfish), current
    )
