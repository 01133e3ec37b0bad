"""What the dashboard shows and does, over the same objects as the command line: the Engine
(status, preflight, smoke, rollback), the Ledger (history, runs, the chain), the change
store and its approval rules, the backup sets. Pages and the JSON API both call these; each
returns plain data (dicts and lists), never HTML.

Every function here runs in a worker thread with its own Ledger (a SQLite connection
belongs to the thread that opened it)."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate import names
from releasegate.errors import BadInput, ReleasegateError
from releasegate.identity import Actor, process_start

if TYPE_CHECKING:
    from collections.abc import Iterator

    from releasegate.engine import Engine, RunOutcome
    from releasegate.ledger import Ledger
    from releasegate.model import ActionRecord

PAGE_SIZE = 50
MAX_PAGE = 500
RECORD_BYTES = 1_000_000  # an execution record bigger than this is not shown inline
HISTORY_FILTERS = ("stack", "env", "action", "status", "user")
STATUSES = ("success", "fail", "refused", "interrupted", "running")


@dataclass
class Site:
    """The config the server was started with."""

    config: Any
    config_file: Path

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        from releasegate.ledger import Ledger

        ledger = Ledger.open(self.config.state_url)
        try:
            yield ledger
        finally:
            ledger.close()

    def actor(self, user: str) -> Actor:
        """The signed-in user as the ledger's actor: their name, this server's process."""
        names.check("user", user)
        pid = os.getpid()
        return Actor(user=user, host=socket.gethostname(), pid=pid, pid_start=process_start(pid))

    def engine(self, ledger: Ledger, user: str) -> Engine:
        from releasegate.engine import Engine

        # Events are the terminal's business; the ledger records every step anyway.
        return Engine(self.config, ledger, actor=self.actor(user), emit=lambda _e: None)

    def cli_app(self, ledger: Ledger, user: str) -> Any:
        """The command line's App over this server's config, ledger and signed-in user, for
        the change-record helpers that take one (the signing policy, the ledger mark)."""
        from releasegate.cli.app import App

        app = App(str(self.config_file))
        app.__dict__.update(config=self.config, ledger=ledger, actor=self.actor(user))
        return app


# -- plain data ------------------------------------------------------------------------------
def action_dict(rec: ActionRecord) -> dict[str, Any]:
    from releasegate.ledger import shown_notes

    return {
        "action_id": rec.action_id,
        "parent_id": rec.parent_id,
        "seq": rec.seq,
        "started_at": rec.started_at.isoformat(),
        "ended_at": rec.ended_at.isoformat() if rec.ended_at else None,
        "stack": rec.stack,
        "env": rec.env,
        "action": rec.action,
        "version": rec.version,
        "status": rec.status,
        "notes": shown_notes(rec.notes, rec.forced, rec.reason),
        "user": rec.user,
        "host": rec.host,
        "forced": rec.forced,
        "reason": rec.reason,
    }


# -- stacks ----------------------------------------------------------------------------------
def stacks(site: Site, user: str) -> dict[str, Any]:
    """`releasegate status` per stack, with its newest backup and the ledger's audit state."""
    with site.ledger() as ledger:
        engine = site.engine(ledger, user)
        rows = []
        for st in engine.status():
            chain: list[str] = []
            source = st.promote_from
            while source and source not in chain and len(chain) < 10:
                chain.insert(0, source)
                upstream = site.config.stacks.get(source)
                source = upstream.promote_from if upstream is not None else None
            rows.append(
                {
                    "stack": st.stack,
                    "env": st.env,
                    "running": st.running,
                    "last": action_dict(st.last) if st.last else None,
                    "verified": st.verified,
                    "promote_from": st.promote_from,
                    "promotion_chain": [*chain, st.stack],
                    "promotes_to": [s.name for s in site.config.stacks_promoting_from(st.stack)],
                    "lock": st.lock,
                    "warnings": st.warnings,
                    "hosts": st.hosts,
                    "mixed": st.mixed,
                    "backup": _newest_backup(site, ledger, st.stack),
                    "flags": _declared_flags(site, st.stack),
                }
            )
        return {"stacks": rows, "audit": audit_state(site, ledger)}


def _declared_flags(site: Site, stack: str) -> list[str]:
    """The stack's declared flag names (their values: the flags page, through flag_list)."""
    cfg = site.config.stacks[stack].flags if stack in site.config.stacks else None
    return list(cfg.declared) if cfg is not None else []


def _newest_backup(site: Site, ledger: Ledger, stack: str) -> dict[str, Any] | None:
    """The newest backup set (backup/sets.py, as `backup list` reads them) and whether a
    `backup verify` of it succeeded (the ledger's backup-verify runs)."""
    from releasegate.backup.sets import list_backups

    found = list_backups(Path(site.config.backups_dir), stack)
    if not found:
        return None
    newest = found[0]
    verified = any(
        rec.status == "success" and str(rec.details.get("backup")) == newest.id
        for rec in ledger.actions(stack=stack, action="backup-verify", last=50)
    )
    return {
        "id": newest.id,
        "complete": newest.complete,
        "created_at": newest.manifest.get("created_at"),
        "release": newest.release,
        "verified": verified,
    }


def audit_state(site: Site, ledger: Ledger) -> dict[str, Any]:
    """The chain proven up to its head (incrementally, from the last checkpoint, as the
    gates do), and the configured anchor's check."""
    from releasegate.errors import Tampered

    seq, head = ledger.head()
    state: dict[str, Any] = {"head_seq": seq, "head_hash": head, "ok": True, "message": ""}
    try:
        ledger.ensure_trusted([seq] if seq else [])
        state["message"] = f"chain intact up to row {seq}"
    except Tampered as exc:
        state.update(ok=False, message=exc.message)
        return state
    state["anchor"] = None
    if site.config.audit.anchor is not None:
        from releasegate.ledger.anchor import check_configured_anchor

        try:
            checked = check_configured_anchor(site.config, ledger)
        except Tampered as exc:
            state.update(ok=False, message=exc.message)
            return state
        if checked is not None:
            state["anchor"] = {
                "seq": checked.anchor.seq,
                "time": checked.anchor.time,
                "file": str(checked.path),
                "message": checked.message,
            }
    return state


# -- history and runs -------------------------------------------------------------------------
def clean_filters(query: dict[str, str]) -> dict[str, Any]:
    """History filters from a query string, each checked like the command line's values."""
    found: dict[str, Any] = {}
    for key in HISTORY_FILTERS:
        value = (query.get(key) or "").strip()
        if not value:
            continue
        if key == "status":
            if value not in STATUSES:
                raise BadInput(f"status must be one of {', '.join(STATUSES)}")
        elif key in ("stack", "env", "user"):
            names.check(key, value)
        elif len(value) > 64 or not value.replace("-", "").replace("_", "").isalnum():
            raise BadInput(f"action {value!r} is not an action name")
        found[key] = value
    if query.get("forced") in ("1", "true", "on"):
        found["forced"] = True
    kind = (query.get("kind") or "").strip()
    if kind:
        from releasegate.ledger.kinds import actions_of

        actions_of(kind)  # an unknown kind is refused
        found["kind"] = kind
    return found


def history(
    site: Site, filters: dict[str, Any], before: int | None, limit: int = PAGE_SIZE
) -> dict[str, Any]:
    from releasegate.ledger import ActionFilter
    from releasegate.ledger.kinds import actions_of

    limit = max(1, min(int(limit), MAX_PAGE))
    query = {k: v for k, v in filters.items() if k != "kind"}
    if "kind" in filters:  # a kind of history: any of its actions
        query["any_action"] = actions_of(filters["kind"])
    with site.ledger() as ledger:
        # One more than shown: whether an older page exists, without counting 100,000 rows.
        rows = ledger.page(ActionFilter(**query), limit=limit + 1, before_seq=before)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "actions": [action_dict(r) for r in rows],
        "next_before": rows[-1].seq if more and rows else None,
        "filters": filters,
    }


def run(site: Site, action_id: str) -> dict[str, Any] | None:
    if not (len(action_id) == 32 and all(c in "0123456789abcdef" for c in action_id)):
        return None
    with site.ledger() as ledger:
        rec = ledger.get_action(action_id)
        if rec is None:
            return None
        steps = ledger.children(action_id)
    return {
        "action": {**action_dict(rec), "details": rec.details},
        "steps": [{**action_dict(s), "details": s.details} for s in steps],
        "record": _record_text(site, rec),
    }


def _record_text(site: Site, rec: ActionRecord) -> str | None:
    """The execution record (Markdown) the command line wrote for this run, if any: found by
    its file name's pattern and the ledger action id it names."""
    folder = Path(site.config.records_dir)
    if not folder.is_dir():
        return None
    pattern = f"*-{rec.stack}-{rec.action}-{rec.version or 'none'}*.md"
    marker = f"`{rec.action_id}`"
    for path in sorted(folder.glob(pattern), reverse=True)[:50]:
        try:
            with path.open("rb") as fh:
                data = fh.read(RECORD_BYTES + 1)
        except OSError:
            continue
        if len(data) > RECORD_BYTES:
            continue
        text = data.decode("utf-8", "replace")
        if marker in text:
            return text
    return None


def live_rows(site: Site, after: int, stack: str | None, limit: int = 200) -> list[dict[str, Any]]:
    """Ledger rows written after row `after`: the steps of running deploys as they happen."""
    with site.ledger() as ledger:
        rows = ledger.entries_after(after, limit=limit, stack=stack)
    keys = ("seq", "ts", "kind", "action_id", "parent_id", "stack", "env", "action", "version",
            "status", "notes", "user")  # fmt: skip
    return [dict(zip(keys, r, strict=True)) for r in rows]


def head_seq(site: Site) -> int:
    with site.ledger() as ledger:
        return int(ledger.head()[0])


# -- change records ---------------------------------------------------------------------------
def _store(site: Site) -> Any:
    from releasegate.change.store import ChangeStore

    return ChangeStore(site.config_file.parent / "changes")


def changes(site: Site, user: str) -> list[dict[str, Any]]:
    from releasegate.change.store import Record
    from releasegate.cli.change import _summary

    out: list[dict[str, Any]] = []
    with site.ledger() as ledger:
        app = site.cli_app(ledger, user)
        for item in _store(site).list():
            if isinstance(item, Record):
                out.append(_summary(app, item))
            else:
                out.append({"id": item[0].stem, "error": item[1].message})
    return out


def change(site: Site, change_id: str, user: str) -> dict[str, Any]:
    from releasegate.change.approvals import authors
    from releasegate.cli.change import _approvals, _summary

    store = _store(site)
    rec = store.load(_change_ref(change_id))
    with site.ledger() as ledger:
        app = site.cli_app(ledger, user)
        st = _approvals(app, rec)
        summary = _summary(app, rec)
    own = authors(rec.doc, rec.meta.author)

    def rows(items: Any, state: str) -> list[dict[str, str]]:
        return [{**a.to_json(), "state": state} for a in items]

    return {
        **summary,
        "author": rec.meta.author or rec.doc.owner,
        "hash": st.hash,
        "required": st.required,
        "summary": st.summary(),
        "approvals": rows(st.valid, "valid")
        + rows(st.void, "void")
        + rows(st.self_approvals, "self")
        + rows(st.unsigned, "unsigned")
        + rows(st.bad_signatures, "bad-signature"),
        "text": rec.text,
        # What the page offers; the store's rules decide when it is used.
        "can_approve_as": user not in own or rec.doc.risk != "HIGH",
        "signed_required": st.signed_required,
    }


def _change_ref(change_id: str) -> str:
    # An ID only: never a path (the store would read a file named by the request).
    if not change_id or len(change_id) > 100 or "/" in change_id or change_id.startswith("."):
        raise BadInput(f"{change_id!r} is not a change ID")
    if not all(c.isalnum() or c in "-_." for c in change_id):
        raise BadInput(f"{change_id!r} is not a change ID")
    return change_id


def approve(site: Site, change_id: str, plan_hash: str, comment: str, user: str) -> dict[str, Any]:
    """`releasegate change approve ID --as USER`, bound to the plan the approver saw: a plan
    edited since the page was shown is refused (its hash differs)."""
    from releasegate.cli.change import _mark, _policy
    from releasegate.errors import Refused

    if len(comment) > 2000:
        raise BadInput("the comment is longer than 2000 characters")
    store = _store(site)
    rec = store.load(_change_ref(change_id))
    with site.ledger() as ledger:
        app = site.cli_app(ledger, user)
        policy, verify = _policy(app, rec)
        current = rec.approvals(policy, verify)
        if plan_hash != current.hash:
            raise Refused(
                f"the plan of {rec.doc.id} changed since you read it",
                hint="read the current plan, then approve it",
            )
        approval = store.approve(
            rec.doc.id, by=user, comment=comment, user=user, policy=policy, verify=verify
        )
        after = store.load(rec.doc.id).approvals(policy, verify)
        details = {"approver": user, "hash": approval.hash, "comment": comment,
                   "risk": rec.doc.risk, "via": "web"}  # fmt: skip
        _mark(app, "change-approve", rec.doc.id, f"{user} approved {rec.doc.id}", details)
    return {"id": rec.doc.id, "hash": approval.hash, "approved": after.approved,
            "summary": after.summary()}  # fmt: skip


# -- actions ---------------------------------------------------------------------------------
def outcome_dict(out: RunOutcome) -> dict[str, Any]:
    return {
        "action": out.action,
        "stack": out.stack,
        "env": out.env,
        "version": out.version,
        "status": out.status,
        "exit_code": int(out.exit_code),
        "message": out.message,
        "hint": out.hint,
        "action_id": out.action_id,
        "record": str(out.record_path) if out.record_path else None,
    }


def _stack_env(site: Site, stack: str) -> str:
    names.check("stack", stack)
    return str(site.config.stack(stack).env)


def rollback(
    site: Site, stack: str, reason: str, user: str, to: str | None = None
) -> dict[str, Any]:
    """`releasegate rollback STACK ENV --reason TEXT [--to V]` as the signed-in user."""
    from releasegate import record as records
    from releasegate.workflows.rollback import RollbackRequest

    reason = reason.strip()
    if not reason:
        raise BadInput("a rollback from the dashboard needs a reason")
    if len(reason) > 500 or "\n" in reason:
        raise BadInput("the reason is one line of at most 500 characters")
    if to:
        names.check("version", to)
    env = _stack_env(site, stack)
    with site.ledger() as ledger:
        if site.config.audit.anchor is not None:
            from releasegate.ledger.anchor import check_configured_anchor

            check_configured_anchor(site.config, ledger)
        actor = site.actor(user)
        out = site.engine(ledger, user).rollback(
            RollbackRequest(stack, env, to=to or None, reason=reason)
        )
        if site.config.audit.anchor is not None:
            from releasegate.ledger.anchor import anchor_after_run

            anchor_after_run(site.config, ledger)
    try:
        out.record_path = records.write(
            out, Path(site.config.records_dir), user=actor.user, host=actor.host
        )
    except OSError as exc:
        out.hint = f"the execution record could not be written: {exc.strerror or exc}"
    return outcome_dict(out)


def check(site: Site, stack: str, which: str, user: str) -> dict[str, Any]:
    """`releasegate preflight|smoke STACK ENV` as the signed-in user (recorded as theirs)."""
    env = _stack_env(site, stack)
    with site.ledger() as ledger:
        engine = site.engine(ledger, user)
        out = engine.preflight(stack, env) if which == "preflight" else engine.smoke(stack, env)
    return outcome_dict(out)


def error_dict(exc: ReleasegateError) -> dict[str, Any]:
    return {"error": exc.message, "hint": exc.hint, "exit_code": int(exc.exit_code)}
