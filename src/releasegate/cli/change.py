"""`releasegate change ...`: change records (Gate2 documents) as plans to validate and approve."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from releasegate.cli.app import App, print_json
from releasegate.cli.term import echo, safe
from releasegate.errors import BadInput

if TYPE_CHECKING:
    from releasegate.change.approvals import ApprovalState, Policy, Verifier
    from releasegate.change.store import ChangeStore, Record

pass_app = click.make_pass_decorator(App)

LEDGER_STACK = "changes"  # ledger rows of change records: stack "changes", version = the ID
LEDGER_ENV = "-"


@click.group()
@click.option(
    "--dir",
    "folder",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of change records (default: changes/ beside releasegate.yaml).",
)
@click.pass_context
def change(ctx: click.Context, folder: Path | None) -> None:
    """Change records: a Gate2 document is the plan; validate, approve, inspect it."""
    ctx.meta["change_dir"] = folder


def _store(app: App, ref: str | None = None) -> ChangeStore:
    """The folder of records: --dir, else the FILE's own folder when `ref` names a file (no
    releasegate.yaml needed, like a linter), else changes/ beside releasegate.yaml."""
    from releasegate.change.store import ChangeStore, is_file_ref

    folder = click.get_current_context().meta.get("change_dir")
    if folder is None and ref is not None and is_file_ref(ref):
        folder = Path(ref).parent
    if folder is None:
        folder = app.config_file.parent / "changes"
    return ChangeStore(Path(folder))


def _notify_approval(
    app: App, change_id: str, title: str, risk: str, why: str, path: str, stack: str | None = None
) -> None:
    """`notify:` in releasegate.yaml: tell the team a change waits for approvals."""
    try:
        config = app.config
    except BadInput:  # no releasegate.yaml: nobody to notify
        return
    if stack is not None and stack not in config.stacks:
        stack = None
    from releasegate.notify.hooks import notify_approval_needed

    env = config.stacks[stack].env if stack else LEDGER_ENV
    failed = notify_approval_needed(
        config, app.ledger, app.actor, change_id=change_id, title=title, risk=risk, why=why,
        path=path, stack=stack or LEDGER_STACK, env=env,
    )  # fmt: skip
    app.show_notices([f"notification {d.target} failed: {d.detail}" for d in failed if not d.ok])


def _mark(app: App, action: str, change_id: str, notes: str, details: dict[str, Any]) -> bool:
    """Record a fact in the ledger when there is a releasegate.yaml; False when there is none."""
    try:
        ledger = app.ledger
    except BadInput:
        return False
    ledger.mark(
        stack=LEDGER_STACK,
        env=LEDGER_ENV,
        action=action,
        version=change_id,
        notes=notes,
        details=details,
        user=app.actor.user,
        host=app.actor.host,
        pid=app.actor.pid,
    )
    return True


def _policy(app: App, rec: Record, stacks: tuple[str, ...] = ()) -> tuple[Policy, Verifier | None]:
    """The signing policy for a record: the top-level `approvals` of releasegate.yaml plus
    those of the stacks it names (`**Stack**:`) or runs on (`--stack`), and the checker of
    its allowed_signers file. The full config is loaded only when it mentions approvals, so
    a file without them costs nothing, and a broken one never drops a requirement."""
    from releasegate.change.approvals import Policy

    try:
        path = app.config_file
        text = path.read_text(encoding="utf-8")
    except (BadInput, OSError, UnicodeDecodeError):
        return Policy(), None  # no releasegate.yaml (`--dir` alone): names only
    if "approvals" not in text:
        return Policy(), None
    config = app.config
    parts = [("approvals", config.approvals)]
    for name in dict.fromkeys((*rec.doc.stacks, *stacks)):
        own = config.stack(name).approvals  # an unknown stack is an error, not a loophole
        if own is not None:
            parts.append((f"stacks.{name}.approvals", own))
    files = {p.allowed_signers for _, p in parts[1:] if p.allowed_signers}
    if len(files) > 1:
        raise BadInput(
            f"change {rec.doc.id} names stacks with different allowed_signers files",
            hint="one change, one allowed_signers: split the change, or share the file",
        )
    signers = next(iter(files), None) or config.approvals.allowed_signers
    policy = Policy(
        allowed_signers=signers,
        require_signed=any(p.require_signed for _, p in parts),
        require_for_risk=frozenset(r for _, p in parts for r in p.require_signed_for_risk),
        origin=tuple(f"{where} in {config.path}" for where, p in parts if p.requires),
    )
    if signers is None:
        return policy, None
    from releasegate.change.signatures import Signers

    checker = Signers(signers)
    return policy, lambda approval, plan: checker.signer(approval.signature, plan)


def _approvals(app: App, rec: Record, stacks: tuple[str, ...] = ()) -> ApprovalState:
    return rec.approvals(*_policy(app, rec, stacks))


@change.command("new")
@click.argument("change_id", metavar="ID")
@click.option("--title", required=True, help="One line: what the change does.")
@click.option(
    "--risk",
    required=True,
    type=click.Choice(["LOW", "MEDIUM", "HIGH"], case_sensitive=False),
    help="LOW needs no approval, MEDIUM one, HIGH two (not the author).",
)
@click.option(
    "--stack",
    "stacks",
    multiple=True,
    metavar="STACK",
    help="A stack the change touches (repeatable): written as the record's `**Stack / 栈**` "
    "line, so that stack's own approval policy (stacks.NAME.approvals) applies.",
)
@pass_app
def change_new(
    app: App, change_id: str, title: str, risk: str, stacks: tuple[str, ...]
) -> int:
    """Write a new change record with seed 000's section layout, ready to fill."""
    store = _store(app)
    for name in stacks:
        app.config.stack(name)  # an unknown stack is refused here, not at approval time
    path = store.create(
        change_id, title=title, risk=risk, author=app.actor.user, stacks=stacks
    )
    details: dict[str, Any] = {"risk": risk.upper(), "path": str(path)}
    if stacks:
        details["stacks"] = list(dict.fromkeys(stacks))
    _mark(app, "change-new", change_id, title, details)
    if risk.upper() != "LOW":
        _notify_approval(app, change_id, title, risk.upper(), "approvals needed", str(path))
    app.console.print(f"created {path}")
    app.console.print(f"fill it in, then: releasegate change validate {change_id}", style="dim")
    return 0


@change.command("validate")
@click.argument("ref", metavar="ID|FILE")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def change_validate(app: App, ref: str, as_json: bool) -> int:
    """Check a record: exit 2 on errors (a MEDIUM/HIGH change without rollback plan, ...)."""
    from releasegate.change.document import validate

    rec = _store(app, ref).load(ref)
    issues = validate(rec.doc)
    errors = [i for i in issues if i.level == "error"]
    if as_json:
        print_json({"id": rec.doc.id, "path": rec.path, "ok": not errors, "issues": issues})
    else:
        for i in issues:
            style = "red" if i.level == "error" else "yellow"
            app.console.print(f"{rec.path}:{i.line}: [{style}]{i.level}[/]: {safe(i.message)}")
        steps = len(rec.doc.steps)
        verdict = "[red]invalid[/]" if errors else "[green]valid[/]"
        app.console.print(
            f"{rec.doc.id}: {verdict} ({rec.doc.risk or '?'} risk, {steps} command(s), "
            f"{len(errors)} error(s), {len(issues) - len(errors)} warning(s))"
        )
    return 2 if errors else 0


def _summary(app: App, rec: Record) -> dict[str, Any]:
    from releasegate.change.document import validate

    st = _approvals(app, rec)
    errors = sum(1 for i in validate(rec.doc) if i.level == "error")
    return {
        "id": rec.doc.id,
        "title": rec.doc.title,
        "risk": rec.doc.risk,
        "status": rec.doc.status or "DRAFT",
        "valid": errors == 0,
        "approved": st.approved,
        "approvals": st.summary(),
        "path": str(rec.path),
    }


@change.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def change_list(app: App, as_json: bool) -> int:
    """Every record: id, title, risk, status, approvals."""
    from releasegate.change.store import Record

    store = _store(app)
    found = store.list()
    if as_json:
        for item in found:
            if isinstance(item, Record):
                print_json(_summary(app, item))
            else:
                print_json({"path": item[0], "error": item[1].message})
        return 0
    if not found:
        app.console.print(f"no change records in {store.folder}")
        return 0
    from rich.table import Table

    table = Table(box=None)
    for col in ("ID", "TITLE", "RISK", "STATUS", "APPROVALS"):
        table.add_column(col)
    for item in found:
        if isinstance(item, Record):
            s = _summary(app, item)
            mark = "" if s["approved"] else " (pending)"
            table.add_row(s["id"], s["title"], s["risk"] or "?", s["status"], s["approvals"] + mark)
        else:
            table.add_row(item[0].stem, "", "", "[red]unreadable[/]", item[1].message)
    app.console.print(table)
    return 0


@change.command("show")
@click.argument("ref", metavar="ID|FILE")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def change_show(app: App, ref: str, as_json: bool) -> int:
    """A record's plan: steps with their assertions, approvals (and whether they are void)."""
    from releasegate.change.document import KIND_LABELS, STEP_KINDS, validate

    rec = _store(app).load(ref)
    st = _approvals(app, rec)
    doc = rec.doc
    if as_json:
        print_json(
            {
                **_summary(app, rec),
                "author": rec.meta.author or doc.owner,
                "stacks": list(doc.stacks),
                "hash": st.hash,
                "required_approvals": st.required,
                "signed_required": st.signed_required,
                "approval_list": [{**a.to_json(), "state": "valid"} for a in st.valid]
                + [{**a.to_json(), "state": "void"} for a in st.void]
                + [{**a.to_json(), "state": "self"} for a in st.self_approvals]
                + [{**a.to_json(), "state": "unsigned"} for a in st.unsigned]
                + [{**a.to_json(), "state": "bad-signature"} for a in st.bad_signatures]
                + [{**a.to_json(), "state": "same-signer"} for a in st.same_signer],
                "sections": [
                    {"heading": s.heading, "line": s.line, "key": s.key} for s in doc.sections
                ],
                "steps": doc.steps,
                "issues": validate(doc),
            }
        )
        return 0
    c = app.console
    c.print(f"[bold]{safe(doc.id)}[/]: {safe(doc.title)}")
    status = doc.status or "DRAFT"
    c.print(f"risk: {doc.risk or '?'}   status: {status}   file: {rec.path}", markup=False)
    c.print(f"author: {rec.meta.author or doc.owner or '?'}   plan: {st.hash}", markup=False)
    if doc.stacks:
        c.print(f"stacks: {', '.join(doc.stacks)} (their approval policies apply)", markup=False)
    for kind in STEP_KINDS:
        steps = doc.steps_of(kind)
        if not steps:
            continue
        c.print(f"[bold]{KIND_LABELS[kind]}[/]")
        for s in steps:
            c.print(f"  {s.line:>4}  {s.name}", markup=False)
            c.print(f"        $ {s.command}", style="dim", markup=False)
            for e in s.expects:
                c.print(f"        expect {e.describe()}", markup=False)
    verdict = "[green]approved[/]" if st.approved else "[yellow]not approved[/]"
    c.print(f"[bold]Approvals[/]: {safe(st.summary())}: {safe(verdict)}")
    for a in st.valid:
        key = f" (signed by {a.signer}, {a.key})" if a.signer else ""
        text = f"  ✔ {a.by}{key} at {a.at}" + (f": {a.comment}" if a.comment else "")
        c.print(text, markup=False)
    for a in st.self_approvals:
        c.print(f"  ✘ {a.by} at {a.at}: the author cannot approve a HIGH change", markup=False)
    for a in st.unsigned:
        c.print(f"  ✘ {a.by} at {a.at}: not signed, and signatures are required", markup=False)
    for a in st.bad_signatures:
        c.print(
            f"  ✘ {a.by} at {a.at}: the signature is not an allowed key's over this plan",
            markup=False,
        )
    for a in st.same_signer:
        c.print(f"  ✘ {a.by} at {a.at}: signed with a key already counted", markup=False)
    if st.void:
        c.print(f"  [yellow]{len(st.void)} approval(s) void: the plan was edited after approval[/]")
        for a in st.void:
            c.print(f"  ✘ {a.by} at {a.at} (plan {a.hash[:19]}…)", markup=False)
    return 0


@change.command("approve")
@click.argument("change_id", metavar="ID")
@click.option("--as", "by", required=True, metavar="NAME", help="Who approves.")
@click.option("--comment", default="", help="Why, or under which conditions.")
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="KEY",
    help="Sign with this SSH key (ssh-keygen -Y sign; a .pub uses ssh-agent): the approval "
    "then counts for the key's principal in allowed_signers, not for the typed name.",
)
@click.option(
    "--stack",
    "stacks",
    multiple=True,
    metavar="STACK",
    help="Apply this stack's approvals policy too (as `change run --stack` will).",
)
@pass_app
def change_approve(
    app: App, change_id: str, by: str, comment: str, key: Path | None, stacks: tuple[str, ...]
) -> int:
    """Approve the current version of a plan; an edit to the plan voids the approval."""
    from releasegate import names

    names.check("user", by)
    store = _store(app)
    policy, verify = _policy(app, store.load(change_id), stacks)
    sign = None
    if key is not None:
        if policy.allowed_signers is None:
            raise BadInput(
                "a signed approval needs `approvals: {allowed_signers: FILE}` in releasegate.yaml",
                hint="without it no signature could ever be checked",
            )
        from releasegate.change import signatures

        def sign(plan: str) -> tuple[str, str]:
            signature = signatures.sign(key, plan)
            return signature, signatures.fingerprint(signature)

    approval = store.approve(
        change_id,
        by=by,
        comment=comment,
        user=app.actor.user,
        policy=policy,
        sign=sign,
        verify=verify,
    )
    rec = store.load(change_id)
    st = rec.approvals(policy, verify)
    details = {"approver": by, "hash": approval.hash, "comment": comment, "risk": rec.doc.risk}
    if approval.signature:
        details.update(signer=approval.signer, key=approval.key, signature=approval.signature)
    in_ledger = _mark(app, "change-approve", rec.doc.id, f"{by} approved {rec.doc.id}", details)
    signed = f", signed by {approval.signer} ({approval.key})" if approval.signature else ""
    shown = f"{by} approved {rec.doc.id} (plan {approval.hash[:19]}…){signed}"
    app.console.print(shown, markup=False)
    state = "approved" if st.approved else "still needs more approvals"
    app.console.print(f"approvals: {st.summary()}: {state}", markup=False)
    if not in_ledger:
        app.console.print("no releasegate.yaml: recorded in the sidecar only", style="dim")
    return 0


@change.command("run")
@click.argument("change_id", metavar="ID")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="HOST",
    help="Run on this host: local or ssh://[user@]host[:port] (repeatable; default local).",
)
@click.option("--stack", "stack_name", metavar="STACK", help="Run on the hosts of this stack.")
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run: steps that passed are skipped."
)
@click.option("--only-rollback", is_flag=True, hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Each step and the result as JSON lines.")
@pass_app
def change_run(
    app: App,
    change_id: str,
    hosts: tuple[str, ...],
    stack_name: str | None,
    resume: bool,
    only_rollback: bool,
    as_json: bool,
) -> int:
    """Run a change record on this host: the document is the plan.

    \b
    Refused without the approvals its risk needs (LOW none, MEDIUM one, HIGH two).
    Pre-checks must all pass, else nothing is executed. Then the execution steps,
    then the post- and functional checks. A failing step or check runs the Rollback
    Plan: ROLLED_BACK (exit 4), or FAILED (exit 1) when the rollback fails too;
    DONE+VERIFIED (exit 0) only when every check passed.

    \b
    Each step runs on every host (--host, or --stack's hosts; SSH settings from
    ~/.ssh or RELEASEGATE_SSH_CONFIG / RELEASEGATE_KNOWN_HOSTS / RELEASEGATE_SSH_KEY)
    and passes only where it passed on all of them.

    \b
    Every step's exit code, duration and output (bounded, secrets masked) is kept as
    evidence: in the ledger, and in a rendered copy of the document under
    changes/runs/ with the Execution Log filled in (the plan file is never rewritten).
    The SYNC_SNAPSHOT row is appended to changes/SYNC_SNAPSHOT.md.
    """
    import os
    import socket
    from datetime import UTC, datetime

    from releasegate.change.document import validate
    from releasegate.change.runner import (
        DONE,
        REFUSED,
        ROLLED_BACK,
        render_run,
        run_change,
        snapshot_row,
    )
    from releasegate.errors import ExitCode, Refused
    from releasegate.redact import Redactor

    store = _store(app)
    rec = store.load(change_id)
    errors = [i for i in validate(rec.doc) if i.level == "error"]
    if errors:
        raise BadInput(
            f"{rec.path}:{errors[0].line}: {errors[0].message}",
            hint=f"`releasegate change validate {change_id}` lists every problem",
        )
    approvals = _approvals(app, rec, (stack_name,) if stack_name else ())
    if not approvals.approved:
        _notify_approval(
            app, rec.doc.id, rec.doc.title, rec.doc.risk or "?",
            f"run refused: {approvals.summary()} approval(s)", str(rec.path), stack_name,
        )  # fmt: skip
        key = " --key KEY" if approvals.signed_required else ""
        raise Refused(
            f"change {rec.doc.id} ({rec.doc.risk}) has {approvals.summary()} approval(s)",
            hint=f"releasegate change approve {rec.doc.id} --as NAME{key}",
        )
    from releasegate.transport import for_host

    names = list(hosts)
    if stack_name:
        names += [str(h) for h in app.config.stack(stack_name).hosts]
    names = list(dict.fromkeys(names or ["local"]))
    targets = [(name, for_host(name)) for name in names]
    actor = app.actor
    from releasegate.engine.base import Recorder

    # Runs and steps recorded the one way deploys record theirs (no stack config needed).
    engine = Recorder(app.ledger, actor=actor)
    redact = Redactor.from_env(dict(os.environ))
    done = _interrupted_steps(app, rec.doc.id, resume=resume or only_rollback)
    run_id = engine.open_action(
        LEDGER_STACK, LEDGER_ENV, "change-rollback" if only_rollback else "change-run",
        rec.doc.id, notes=rec.doc.title[:200],
        details={
            "hash": approvals.hash, "risk": rec.doc.risk,
            "approvals": [
                {"by": a.by, "signer": a.signer, "key": a.key} if a.signer else {"by": a.by}
                for a in approvals.valid
            ],
        },
    )  # fmt: skip
    open_steps: dict[tuple[int, str], str] = {}

    def before(step: Any, host: str) -> None:
        open_steps[(step.line, host)] = engine.open_action(
            LEDGER_STACK, LEDGER_ENV, f"change-{step.kind}", rec.doc.id, parent=run_id,
            notes=f"{step.name} @ {host}"[:200],
        )  # fmt: skip

    def after(outcome: Any) -> None:
        engine.close_action(
            open_steps.pop((outcome.step.line, outcome.host)),
            "success" if outcome.ok else "fail",
            outcome.summary[:200],
            {
                "command": redact(outcome.step.command),
                "exit_code": outcome.exit_code,
                "duration_s": round(outcome.duration_s, 3),
                "output": outcome.output,
                "failed_expects": list(outcome.failed_expects),
                "host": outcome.host,
                "step": outcome.step.name,
            },
        )
        if as_json:
            print_json(
                {
                    "event": "step",
                    "kind": outcome.step.kind,
                    "step": outcome.step.name,
                    "ok": outcome.ok,
                    "summary": outcome.summary,
                    "exit_code": outcome.exit_code,
                    "host": outcome.host,
                }
            )
        else:
            mark = "[green]✔[/]" if outcome.ok else "[red]✘[/]"
            where = "" if outcome.host == "local" else f" @ {outcome.host}"
            from rich.markup import escape  # step names are the document's text

            text = f"{outcome.step.kind}: {outcome.step.name}{where}: {outcome.summary}"
            app.console.print(f"  {mark} {escape(text)}", highlight=False)

    # A step may be a releasegate action (`releasegate deploy ...`): this releasegate.
    import sys

    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    report = run_change(
        rec.doc,
        hosts=targets,
        redact=redact,
        cwd=rec.path.parent,
        env=env,
        on_step=after,
        before_step=before,
        already_done=None if only_rollback else (lambda st, h: (st.kind, st.name, h) in done),
        only_rollback=only_rollback,
    )
    for _name, transport in targets:
        close = getattr(transport, "close", None)
        if close is not None:
            close()  # SSH connections were kept open for the whole run
    status = {DONE: "success", ROLLED_BACK: "rolled_back", REFUSED: "refused"}.get(
        report.status, "fail"
    )
    engine.close_action(
        run_id, status, f"{report.status}: {report.message}"[:300], {"status": report.status}
    )
    stamp = datetime.now(UTC).astimezone().strftime("%Y%m%d_%H%M%S")
    runs = store.folder / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rendered = runs / f"{rec.doc.id}-{stamp}.md"
    rendered.write_text(
        render_run(
            rec.doc,
            rec.text,
            report,
            user=actor.user,
            host=socket.gethostname(),
            approvals=approvals.valid,
        ),
        encoding="utf-8",
    )
    snapshot = store.folder / "SYNC_SNAPSHOT.md"
    if not snapshot.exists():
        snapshot.write_text(
            "| ID | Title | Status | Notes |\n|---|---|---|---|\n", encoding="utf-8"
        )
    with snapshot.open("a", encoding="utf-8") as fh:
        fh.write(snapshot_row(rec.doc, report) + "\n")
    code = {DONE: ExitCode.OK, ROLLED_BACK: ExitCode.ROLLED_BACK, REFUSED: ExitCode.REFUSED}.get(
        report.status, ExitCode.FAILED
    )
    if as_json:
        print_json(
            {
                "result": {
                    "id": rec.doc.id,
                    "status": report.status,
                    "message": report.message,
                    "exit_code": int(code),
                    "record": str(rendered),
                }
            }
        )
    else:
        app.console.print(f"{report.status}: {report.message}", markup=False)
        app.console.print(f"record: {rendered}")
    return int(code)


@change.command("render")
@click.argument("ref", metavar="ID|FILE")
@click.option("--html", "as_html", is_flag=True, help="HTML instead of Markdown.")
@click.option("--run", "latest_run", is_flag=True, help="The newest run's record, not the plan.")
@pass_app
def change_render(app: App, ref: str, as_html: bool, latest_run: bool) -> int:
    """Print a change record (or, with --run, its newest executed copy), as Markdown
    or as a standalone HTML page."""
    store = _store(app)
    rec = store.load(ref)
    text = rec.text
    if latest_run:
        runs = sorted((store.folder / "runs").glob(f"{rec.doc.id}-*.md"))
        if not runs:
            raise BadInput(f"change {rec.doc.id} has not been run yet")
        text = runs[-1].read_text(encoding="utf-8")
    if not as_html:
        echo(text, nl=False)
        return 0
    import html

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(text)
    title = html.escape(f"{rec.doc.id}: {rec.doc.title}")
    echo(
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}"
        "pre{background:#f6f6f6;padding:.5em;overflow:auto}</style></head>\n"
        f"<body>\n{body}</body></html>"
    )
    return 0


@change.command("snapshot")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def change_snapshot(app: App, as_json: bool) -> int:
    """The SYNC_SNAPSHOT table: one row per run of every change record, newest last."""
    store = _store(app)
    path = store.folder / "SYNC_SNAPSHOT.md"
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines()[2:]:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 4:
                rows.append(dict(zip(("id", "title", "status", "notes"), cells, strict=True)))
    if as_json:
        for row in rows:
            print_json(row)
        return 0
    if not rows:
        app.console.print("no change has been run yet")
        return 0
    echo(path.read_text(encoding="utf-8"), nl=False)
    return 0


def _interrupted_steps(app: App, change_id: str, *, resume: bool) -> set[tuple[str, str, str]]:
    """A previous run of this change that never finished: refuse to start over blindly.

    Returns the (kind, step, host) that passed in it, which --resume skips.
    """
    from releasegate.errors import LockHeld, Refused
    from releasegate.identity import pid_alive

    runs = sorted(
        (
            r
            for action in ("change-run", "change-rollback")
            for r in app.ledger.actions(stack=LEDGER_STACK, action=action)
            if r.version == change_id
        ),
        key=lambda r: r.seq,
    )
    last = runs[-1] if runs else None
    if last is None or last.status not in ("running", "interrupted"):
        return set()  # never run, finished, or rolled back since
    if last.status == "running":
        if last.host == app.actor.host and pid_alive(last.pid):
            raise LockHeld(
                f"change {change_id} is being run by {last.user} (pid {last.pid}, {last.host})"
            )
        for step in app.ledger.children(last.action_id):
            if step.status == "running":
                app.ledger.end_action(step.action_id, "interrupted", notes="its process died")
        app.ledger.end_action(
            last.action_id, "interrupted", notes=f"process {last.pid} on {last.host} died"
        )
    if not resume:
        raise Refused(
            f"the last run of change {change_id} was interrupted",
            hint=f"releasegate change run {change_id} --resume  (skips the steps that passed), "
            f"or: releasegate change rollback {change_id}",
        )
    done = set()
    for step in app.ledger.children(last.action_id):
        if step.status == "success" and "step" in step.details:
            kind = step.action.removeprefix("change-")
            done.add((kind, str(step.details["step"]), str(step.details.get("host", "local"))))
    return done


@change.command("rollback")
@click.argument("change_id", metavar="ID")
@click.option("--host", "hosts", multiple=True, metavar="HOST", help="As for `change run`.")
@click.option("--stack", "stack_name", metavar="STACK", help="As for `change run`.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def change_rollback(
    ctx: click.Context,
    change_id: str,
    hosts: tuple[str, ...],
    stack_name: str | None,
    as_json: bool,
) -> int:
    """Run only the Rollback Plan of a change (e.g. after an interrupted run)."""
    result: int = ctx.invoke(
        change_run,
        change_id=change_id,
        hosts=hosts,
        stack_name=stack_name,
        resume=False,
        only_rollback=True,
        as_json=as_json,
    )
    return result
