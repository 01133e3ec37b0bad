"""Backups that belong to releases: take, list, verify (by restoring), prune; restore."""

from __future__ import annotations

from typing import Any

import click

from releasegate.cli.app import App, print_json

pass_app = click.make_pass_decorator(App)


class _DefaultTake(click.Group):
    """`releasegate backup STACK ENV` takes a backup; `backup list|verify|prune` are
    subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["take", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultTake)
def backup() -> None:
    """Back up a stack's databases and files, tied to the release they precede.

    \b
    releasegate backup STACK ENV            take one now (then apply retention)
    releasegate backup list STACK           newest first; * = protected
    releasegate backup verify STACK [ID]    sha256 + restore into a scratch db + checks
    releasegate backup prune STACK          apply keep_days / keep_last now

    Each backup is <backups>/<stack>/<YYYYmmdd_HHMMSS>/ with one zstd file per
    source and a manifest (sizes, sha256, durations, tool versions, versions).
    """


@backup.command("take")
@click.argument("stack")
@click.argument("env")
@click.option("--reason", default="", help="Recorded with the backup.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def take(app: App, stack: str, env: str, reason: str, as_json: bool) -> int:
    """Back up every source of STACK now."""
    app.json = as_json
    return app.finish(app.engine().backup(stack, env, reason=reason), record=False)


@backup.command("list")
@click.argument("stack")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def list_(app: App, stack: str, as_json: bool) -> int:
    """STACK's backups, newest first."""
    rows = app.engine().backup_list(stack)
    if as_json:
        for row in rows:
            print_json(row)
        return 0
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in ("id", "ok", "running", "before release", "sources", "size"):
        table.add_column(col)
    for row in rows:
        size = sum(int(s.get("compressed_size") or 0) for s in row["sources"])
        table.add_row(
            row["id"] + (" *" if row["protected"] else ""),
            "yes" if row["complete"] else "[red]INCOMPLETE[/]",
            row["running_version"] or "-",
            row["release"] or "-",
            ", ".join(str(s["name"]) for s in row["sources"]),
            f"{size / 1e6:.1f} MB",
        )
    app.console.print(table)
    if not rows:
        app.console.print(f"no backups for {stack} yet")
    return 0


@backup.command("verify")
@click.argument("stack")
@click.argument("backup_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def verify(app: App, stack: str, backup_id: str | None, as_json: bool) -> int:
    """Prove a backup restores (default: the newest): every sha256 checked, each
    database restored into a scratch database, the sanity checks run, scratch dropped."""
    app.json = as_json
    return app.finish(app.engine().backup_verify(stack, backup_id), record=False)


@backup.command("prune")
@click.argument("stack")
@click.option("--dry-run", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def prune(app: App, stack: str, dry_run: bool, as_json: bool) -> int:
    """Apply STACK's retention (keep_days, keep_last); the backups of the verified
    version and of the last good releases are never removed."""
    app.json = as_json
    out = app.engine().backup_prune(stack, dry_run=dry_run)
    details: dict[str, Any] = out.details
    if as_json:
        print_json(details)
    else:
        app.console.print(f"remove: {', '.join(details.get('removed', [])) or '(none)'}")
        app.console.print(f"protected: {', '.join(details.get('protected', [])) or '(none)'}")
    if dry_run:
        if not as_json:
            app.console.print(out.message, markup=False)
        return int(out.exit_code)
    return app.finish(out, record=False)


@click.command()
@click.argument("stack")
@click.argument("env")
@click.option("--from", "backup_id", required=True, metavar="ID", help="The backup to restore.")
@click.option(
    "--config",
    is_flag=True,
    help="Also restore the config files the backup holds (backup.files; a fleet: each host's).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def restore(
    app: App,
    stack: str,
    env: str,
    backup_id: str,
    config: bool,
    yes: bool,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Restore STACK's databases from backup ID; with --config, its config files too.

    \b
    Takes a fresh backup of the current state first, stops the writers (compose:
    docker compose stop; otherwise backup.stop or commands.stop), restores (a
    backup whose sha256 does not match is refused), starts, smokes; all recorded.
    Config files are extracted over the live ones (on a fleet, each host gets back
    its own); files the backup does not hold are left alone.

    \b
    Examples:
      releasegate restore odoo18-prod prod --from 20260130_143022
      releasegate restore web-prod prod --from 20260130_143022 --config
    """
    app.json = as_json
    if dry_run:
        from releasegate.cli.deploy import show_plans

        plan = app.engine().plan_restore(stack, env, backup_id, config=config)
        return show_plans(app, [plan], f"restore {stack} ({env}) from {plan.notes}")
    what = "data and config files" if config else "data"
    if not yes:
        click.confirm(
            f"Replace {stack}'s {what} with backup {backup_id}? (a fresh backup is taken first)",
            abort=True,
            err=True,
        )
    return app.finish(app.engine().restore(stack, env, backup_id, config=config))
