"""Where change records live: ``<dir>/<ID>.md`` (the plan, written by people) and
``<dir>/<ID>.meta.json`` (the sidecar releasegate writes: author, creation time and
approvals). The tool never rewrites the plan document itself."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasegate import names
from releasegate.change.approvals import Approval, ApprovalState, Policy, Verifier, state
from releasegate.change.document import Document, check_id, parse, validate
from releasegate.errors import BadInput, Refused

TEMPLATE = """\
# {id}: {title}

> Encoding: UTF-8
> Change record created by `releasegate change new`; fill every section, then
> `releasegate change validate {id}`.

---

## {id}: {title}

**创建时间 / Created**: {date}{br}
**状态 / Status**: DRAFT{br}
**负责人 / Owner**: @{author}{stack_line}

---

## Operation（操作）

What is changed, where, and why.

---

## Risk Assessment（风险评估）

### Risk Level（风险等级）
{risk}

### Risk Points（风险点）
1. (what can go wrong)

### Impact Scope（影响范围）
- Services / modules: (which)
- Users: (who notices)
- Data: (what data)

### Mitigations（缓解措施）
1. (backup, canary, ...)

---

## Impact（影响）

### Expected Impact（预期影响）
- (when it works)

### Failure Impact（失败影响）
- (when it fails)

### Rollback Impact（回滚影响）
- (while rolling back)

---

## Rollback Plan（回滚方案）

### Rollback Triggers（回滚触发条件）
- A post-check fails

### Rollback Steps（回滚步骤）

```bash
# Restore the previous version (one command per line; `# expect: text` after a command)
```

---

## Verification Evidence（验证证据）

### Pre-checks（前置验证）

```bash
# What must hold before anything is changed
# (a line `# expect: TEXT` or `# expect: /REGEX/` after a command asserts its output)
```

### Execution（操作执行）

```bash
# The change itself
```

### Post-checks（后置验证）

```bash
# What must hold afterwards
```

### Functional checks（功能验证）

```bash
```

---

## Execution Log（执行日志）

| 时间 | 操作 | 结果 | 备注 |
|------|------|------|------|

---

## Notes（备注）

- (anything else)

---

## SYNC_SNAPSHOT Entry（快照条目）

```markdown
| {id} | {title} | DRAFT | |
```

---

## Approval（审批）

Recorded by `releasegate change approve {id} --as NAME`.

---

*End of {id}*
"""


@dataclass
class Meta:
    id: str
    author: str = ""
    created_at: str = ""
    approvals: list[Approval] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "author": self.author,
            "created_at": self.created_at,
            "approvals": [a.to_json() for a in self.approvals],
        }


@dataclass
class Record:
    path: Path
    text: str
    doc: Document
    meta: Meta

    def approvals(
        self, policy: Policy | None = None, verify: Verifier | None = None
    ) -> ApprovalState:
        return state(self.doc, self.meta.approvals, self.meta.author, policy=policy, verify=verify)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def is_file_ref(ref: str) -> bool:
    """A path to a document (``x.md``, ``dir/x``) rather than an ID in the folder."""
    return ref.endswith(".md") or os.sep in ref or "/" in ref


class ChangeStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def doc_path(self, change_id: str) -> Path:
        return self.folder / f"{check_id(change_id)}.md"

    def meta_path(self, change_id: str) -> Path:
        return self.folder / f"{check_id(change_id)}.meta.json"

    def create(
        self, change_id: str, *, title: str, risk: str, author: str, stacks: Sequence[str] = ()
    ) -> Path:
        """Write the template. `stacks`: the `**Stack / 栈**` line, whose stacks' approval
        policies then apply to the record (names checked here; that they exist, by the caller)."""
        risk = risk.upper()
        stacks = list(dict.fromkeys(names.check("stack", s) for s in stacks))
        if risk not in ("LOW", "MEDIUM", "HIGH"):
            raise BadInput(f"risk {risk!r} is not LOW, MEDIUM or HIGH")
        title = " ".join(title.split())
        if not title:
            raise BadInput("--title is empty")
        path = self.doc_path(change_id)
        if path.exists():
            raise BadInput(f"change {change_id} already exists: {path}")
        self.folder.mkdir(parents=True, exist_ok=True)
        created = _now()
        stack_line = f"  \n**Stack / 栈**: {', '.join(stacks)}" if stacks else ""
        text = TEMPLATE.format(
            id=change_id, title=title, risk=risk, author=author, date=created[:10], br="  ",
            stack_line=stack_line,
        )  # fmt: skip
        parse(text, where=str(path))  # the template must always parse
        with open(path, "x", encoding="utf-8") as fh:  # never overwrite
            fh.write(text)
        self._save_meta(Meta(change_id, author=author, created_at=created))
        return path

    def resolve(self, ref: str) -> Path:
        """An ID in the folder, or a path to a document."""
        if is_file_ref(ref):
            path = Path(ref)
            if not path.is_file():
                raise BadInput(f"no change record file {path}")
            return path
        path = self.doc_path(ref)
        if not path.is_file():
            raise BadInput(
                f"no change {ref} in {self.folder}",
                hint="`releasegate change list` shows the records; --dir picks another folder",
            )
        return path

    def load(self, ref: str) -> Record:
        path = self.resolve(ref)
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path}: not UTF-8 text (byte {exc.start})") from None
        doc = parse(text, where=str(path))
        return Record(path, text, doc, self._load_meta(path, doc.id))

    def _load_meta(self, path: Path, change_id: str) -> Meta:
        meta_file = path.with_name(path.name.removesuffix(".md") + ".meta.json")
        if not meta_file.is_file():
            return Meta(change_id)
        try:
            data = json.loads(meta_file.read_text(encoding="utf-8"))
            return Meta(
                id=str(data.get("id", change_id)),
                author=str(data.get("author", "")),
                created_at=str(data.get("created_at", "")),
                approvals=[Approval.from_json(a) for a in data.get("approvals", [])],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadInput(f"{meta_file}: unreadable sidecar ({exc})") from None

    def _save_meta(self, meta: Meta) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(meta.to_json(), ensure_ascii=False, indent=2) + "\n"
        _write_atomic(self.meta_path(meta.id), text)

    def list(self) -> list[Record | tuple[Path, BadInput]]:
        out: list[Record | tuple[Path, BadInput]] = []
        if not self.folder.is_dir():
            return out
        for path in sorted(self.folder.glob("*.md")):
            try:
                out.append(self.load(str(path)))
            except BadInput as exc:
                out.append((path, exc))
        return out

    def approve(
        self,
        ref: str,
        *,
        by: str,
        comment: str = "",
        user: str = "",
        policy: Policy | None = None,
        sign: Callable[[str], tuple[str, str]] | None = None,
        verify: Verifier | None = None,
    ) -> Approval:
        """Record an approval of the current plan; Refused when the rules forbid it.

        `sign(plan_hash)` returns (armored signature, key fingerprint); with `verify` the
        signature is checked at once, so a key that allowed_signers does not name, or one
        that already approved under another name, is refused here rather than at run time.
        """
        rec = self.load(ref)
        if rec.path.parent.resolve() != self.folder.resolve():
            raise BadInput(f"approve a change by its ID in {self.folder}, not by a file path")
        errors = [i for i in validate(rec.doc) if i.level == "error"]
        if errors:
            first = errors[0]
            raise Refused(
                f"{rec.doc.id} does not validate ({rec.path}:{first.line}: {first.message})",
                hint=f"fix it, then `releasegate change validate {rec.doc.id}`",
            )
        current = rec.approvals(policy, verify)
        own = {rec.meta.author, rec.doc.owner} - {""}
        if rec.doc.risk == "HIGH" and by in own:
            raise Refused(
                f"{by} is the author of HIGH change {rec.doc.id} and cannot approve it",
                hint="a HIGH change needs two approvers other than its author",
            )
        if current.signed_required and sign is None:
            where = ", ".join((policy.origin if policy else ()) or ("approvals",))
            raise Refused(
                f"{rec.doc.id} ({rec.doc.risk}) needs signed approvals ({where})",
                hint=f"releasegate change approve {rec.doc.id} --as {by} --key ~/.ssh/id_ed25519",
            )
        if any(a.by == by for a in current.valid):
            raise Refused(f"{by} already approved this version of {rec.doc.id}")
        approval = Approval(by=by, hash=current.hash, at=_now(), comment=comment, user=user)
        if sign is not None:
            signature, key = sign(current.hash)
            approval = replace(approval, signature=signature, key=key)
            if verify is not None:
                signer = verify(approval, current.hash)
                if signer is None:
                    raise Refused(
                        f"the key {key} is not an allowed signer"
                        + (
                            f" in {policy.allowed_signers}"
                            if policy and policy.allowed_signers
                            else ""
                        ),
                        hint="add its public key, with the approver's name, to allowed_signers",
                    )
                if rec.doc.risk == "HIGH" and signer in own:
                    raise Refused(f"{signer} is the author of HIGH change {rec.doc.id}")
                for a in current.valid:
                    if current.signers.get(a.by) == signer:
                        raise Refused(
                            f"the key of {signer} already approved this version of "
                            f"{rec.doc.id} (as {a.by})",
                            hint="four eyes: a second approval needs a second person's key",
                        )
                approval = replace(approval, signer=signer)
        rec.meta.id = rec.doc.id
        rec.meta.approvals.append(approval)
        self._save_meta(rec.meta)
        return approval
