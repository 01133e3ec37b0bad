"""Commands for compose stacks: sync, stacks, prune (seed 001)."""

from __future__ import annotations

import click

from releasegate.cli.app import App, print_json
from releasegate.cli.term import safe
from releasegate.redact import mask_url

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("stack")
@click.option("--dry-run", is_flag=True, help="Show the diff and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="The changes and the result as JSON.")
@pass_app
def sync(app: App, stack: str, dry_run: bool, as_json: bool) -> int:
    """Copy STACK's source config (compose.source) into its run directory.

    \b
    Shows the diff first (secrets masked), backs up every file it replaces
    (.releasegate/backups/<stack>/<stamp>/), copies each file whole (written
    aside, then renamed), and records the sync in the ledger. The run dir's
    own .env (the running version, the secrets) is never overwritten, and
    files only in the run dir are left alone.

    \b
    Examples:
      releasegate sync odoo18-prod --dry-run
      releasegate sync odoo18-prod
    """
    app.json = as_json
    out, plan = app.engine().sync(stack, dry_run=dry_run)
    if as_json:
        print_json(
            {
                "changes": [
                    {"path": c.path, "kind": c.kind, "binary": c.binary, "diff": c.diff}
                    for c in plan.changes
                ],
                "unchanged": plan.unchanged,
                "only_in_run_dir": plan.only_in_target,
                "never_copied": plan.kept,
            }
        )
    else:
        for change in plan.changes:
            what = "binary, " if change.binary else ""
            app.console.print(
                f"[bold]{change.kind}[/]: {safe(change.path)} ({what}{safe(plan.target)})"
            )
            for line in change.diff:
                color = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                # A diff line is the files' own text: never markup.
                shown = f"[{color}]{safe(line)}[/]" if color else line
                app.console.print(shown, markup=bool(color))
        if plan.only_in_target:
            left = ", ".join(plan.only_in_target)
            app.console.print(f"only in the run dir (left alone): {left}", markup=False)
    if dry_run:
        if not as_json:
            app.console.print(out.message, markup=False)
        return int(out.exit_code)
    return app.finish(out, record=False)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per stack.")
@pass_app
def stacks(app: App, as_json: bool) -> int:
    """The stack table: run dir, source dir, health URL, running and verified version."""
    rows = app.engine().stacks_overview()
    kinds: dict[str, set[str]] = {row["stack"]: set(row["flags"]) for row in rows}
    for row in rows:  # a health URL may carry credentials: shown masked, as smoke shows it
        if row.get("health_url"):
            row["health_url"] = mask_url(row["health_url"])
    if as_json:
        for row in rows:
            print_json(row)
        return 0
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in ("stack", "env", "runtime", "run dir", "source dir", "health", "running"):
        table.add_column(col, overflow="fold")
    table.add_column("verified")
    for row in rows:
        running = row["running"] or "-"
        verified = row["verified"] or "-"
        mark = "" if running == verified or "-" in (running, verified) else " [yellow](differs)[/]"
        flagged = kinds[row["stack"]]
        health_mark = (
            " [red](no answer)[/]"
            if "health-no-answer" in flagged
            else " [red](unhealthy)[/]"
            if "health-bad-status" in flagged
            else ""
        )
        gone_mark = " [red](release gone)[/]" if "release-gone" in flagged else ""
        table.add_row(
            row["stack"],
            row["env"],
            row["runtime"],
            row["run_dir"],
            row["source_dir"] or "-",
            (row["health_url"] or "-") + health_mark,
            running + gone_mark,
            verified + mark,
        )
    app.console.print(table)
    for row in rows:
        for warning in row["warnings"]:
            app.console.print(f"[yellow]warning[/yellow] {row['stack']}: ", end="")
            app.console.print(warning, markup=False, highlight=False)
    return 0


@click.command()
@click.argument("stack")
@click.option(
    "--keep", type=click.IntRange(min=1), help="Versions to keep (default keep_releases)."
)
@click.option("--dry-run", is_flag=True, help="Say what would go, remove nothing.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def prune(app: App, stack: str, keep: int | None, dry_run: bool, as_json: bool) -> int:
    """Remove the images of STACK's old releases.

    \b
    Keeps the newest --keep deployed versions (in the ledger's order, never by
    image dates), the running one, the verified one and the last good ones.
    Tags that releasegate never deployed are never touched.

    \b
    Examples:
      releasegate prune odoo18-prod --dry-run
      releasegate prune odoo18-prod --keep 3
    """
    app.json = as_json
    out, choice = app.engine().prune(stack, keep=keep, dry_run=dry_run)
    if as_json:
        print_json({"remove": choice.remove, "keep": choice.keep, "unknown": choice.unknown})
    else:
        app.console.print(f"remove: {', '.join(choice.remove) or '(none)'}")
        app.console.print(f"keep: {', '.join(choice.keep) or '(none)'}")
        if choice.unknown:
            app.console.print(
                f"not deployed by releasegate, left alone: {', '.join(choice.unknown)}"
            )
    if dry_run:
        if not as_json:
            app.console.print(out.message, markup=False)
        return int(out.exit_code)
    return app.finish(out, record=False)
