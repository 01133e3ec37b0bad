from __future__ import annotations

import sys
from pathlib import Path

import click

from releasegate.cli.app import App, print_json, print_json_lines
from releasegate.cli.term import printable, safe

pass_app = click.make_pass_decorator(App)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per stack.")
@pass_app
def status(app: App, as_json: bool) -> int:
    """Per stack: the version running (read from the runtime), the last recorded
    deploy, the verified version, the lock, and a warning wherever they differ.

    A run whose process died (a crash, SIGKILL) makes the stack "need recovery":
    status only reports it, and the next deploy or rollback recovers the stack.
    Each stack is also checked: is its current release still there, does its
    health URL answer.
    """
    rows = app.engine().status()
    if as_json:
        for row in rows:
            print_json(row)
        return 0
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in ("stack", "env", "running", "last", "verified", "lock"):
        table.add_column(col)
    for row in rows:
        last = f"{row.last.action} {row.last.version} {row.last.status}" if row.last else "-"
        lock = f"{row.lock['user']} ({row.lock['state']})" if row.lock else "-"
        table.add_row(
            *(safe(v) for v in (row.stack, row.env, row.running or "-", last)),
            safe(row.verified or "-"),
            safe(lock),
        )
    app.console.print(table)
    for row in rows:
        if row.hosts is not None and not row.mixed:
            app.console.print(
                f"{safe(row.stack)}: all {len(row.hosts)} host(s) on {safe(row.running)}"
            )
        elif row.hosts is not None:
            for host, state in row.hosts.items():
                app.console.print(f"{safe(row.stack)} {safe(host)}: {safe(state or 'no release')}")
        for service, seen in sorted((row.services or {}).items()):
            app.console.print(
                f"{safe(row.stack)} service {safe(service)}: {safe(seen.get('image', '?'))}"
                f"@{safe(seen.get('digest') or '?')} {safe(seen.get('replicas', '?'))}"
            )
        for warning in row.warnings:
            app.console.print(f"[yellow]warning[/yellow] {safe(row.stack)}: {safe(warning)}")
    return 0


@click.command()
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write DIR/<stack>.txt for every stack (seed 001's verified/ folder).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per stack.")
@pass_app
def verified(app: App, export_dir: Path | None, as_json: bool) -> int:
    """The version each stack verified last (its smoke checks passed after a deploy)."""
    data = app.ledger.verified_all()
    if export_dir is not None:
        from releasegate.ledger import export_verified

        for path in export_verified(app.ledger, export_dir):
            if not as_json:
                app.console.print(f"wrote {path}")
    if as_json:
        for stack, (version, when) in sorted(data.items()):
            print_json({"stack": stack, "version": version, "since": when})
        return 0
    if not data:
        app.console.print("no verified versions yet")
    for stack, (version, when) in sorted(data.items()):
        app.console.print(f"{stack:<24} {version:<24} since {when.astimezone():%Y-%m-%d %H:%M:%S}")
    return 0


@click.command()
@click.option("--stack", help="Only this stack.")
@click.option("--env", help="Only this environment.")
@click.option("--action", help="deploy, rollback, smoke, preflight, ...")
@click.option("--status", help="success, fail, refused, interrupted, running.")
@click.option("--forced", is_flag=True, help="Only FORCED actions (to audit them).")
@click.option(
    "--kind",
    type=click.Choice(["auth", "deploys"]),
    help="auth: dashboard sign-ins and sign-outs; deploys: deploys and rollbacks.",
)
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="Only the newest N.")
@click.option("--steps", is_flag=True, help="Include the steps inside each run.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "log", "json"]),
    default="table",
    help="log: exactly seed 001's deploy-history.log lines.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@pass_app
def history(
    app: App,
    stack: str | None,
    env: str | None,
    action: str | None,
    status: str | None,
    forced: bool,
    kind: str | None,
    last: int | None,
    steps: bool,
    fmt: str,
    as_json: bool,
) -> int:
    """What was done, when, by whom, with what outcome (oldest first).

    \b
    --format log prints `YYYY-MM-DD HH:MM:SS | stack | env | action | version | status | notes`,
    the seed's deploy-history.log, so old greps keep working:
      releasegate history --format log | grep "| FORCED"
    """
    from releasegate.ledger import ActionFilter
    from releasegate.ledger.kinds import actions_of

    keep = ActionFilter(
        stack=stack,
        env=env,
        action=action,
        status=status,
        forced=True if forced else None,
        top_level_only=not steps,
        any_action=actions_of(kind) if kind is not None else (),
    )
    if fmt == "log" and not as_json:
        from releasegate.ledger import format_log_row

        rows = app.ledger.log_rows(keep, last=last)
        sys.stdout.write("".join(printable(format_log_row(row)) + "\n" for row in rows))
        return 0
    records = app.ledger.matching(keep, last=last)
    if as_json or fmt == "json":
        print_json_lines(records)
        return 0
    from rich.table import Table

    from releasegate.ledger import shown_notes

    table = Table(show_edge=False, pad_edge=False)
    for col in ("time", "stack", "env", "action", "version", "status", "user"):
        table.add_column(col, no_wrap=True)  # short values: cut with "…" on a narrow terminal
    table.add_column("notes", overflow="fold")
    colors = {
        "success": "green",
        "fail": "red",
        "refused": "red",
        "interrupted": "yellow",
        "running": "cyan",
    }
    for rec in records:
        indent = "  " if rec.parent_id else ""
        table.add_row(
            f"{rec.started_at.astimezone():%Y-%m-%d %H:%M:%S}",
            safe(rec.stack),
            safe(rec.env),
            indent + safe(rec.action),
            safe(rec.version),
            f"[{colors.get(rec.status, 'white')}]{safe(rec.status)}[/]",
            safe(rec.user),
            safe(shown_notes(rec.notes, rec.forced, rec.reason)),
        )
    app.console.print(table)
    return 0
