"""`releasegate check STACK ENV`: seed 004's health-check in one report."""

from __future__ import annotations

import click

from releasegate.cli.app import App
from releasegate.cli.term import safe

pass_app = click.make_pass_decorator(App)


def _age(text: str) -> float:
    from pydantic import TypeAdapter, ValidationError

    from releasegate.config.schedules import AgeSeconds
    from releasegate.errors import BadInput

    try:
        return float(TypeAdapter(AgeSeconds).validate_python(text))
    except ValidationError as exc:
        raise BadInput(f"--max-backup-age: {exc.errors()[0]['msg']}") from None


@click.command()
@click.argument("stack")
@click.argument("env")
@click.option(
    "--max-backup-age",
    metavar="AGE",
    help="The newest verified backup may be at most this old (26h, 2d); "
    "default: the stack's check.max_backup_age.",
)
@click.option("--json", "as_json", is_flag=True, help="Events and the report as JSON lines.")
@pass_app
def check(app: App, stack: str, env: str, max_backup_age: str | None, as_json: bool) -> int:
    """Is STACK healthy: preflight, smoke and data checks, scheduled jobs, the newest
    verified backup's age, its lock and the ledger, in one report (seed 004's health-check).

    Changes nothing on the hosts; the check is recorded. Exit 0, or 3 naming what failed.
    """
    app.json = as_json
    from releasegate.workflows.health import health_check

    limit = _age(max_backup_age) if max_backup_age is not None else None
    out = health_check(app.engine(), stack, env, max_backup_age=limit)
    if not as_json:
        for step in out.steps:
            mark = "[green]✔[/green]" if step.ok else "[red]✘[/red]"
            app.console.print(f"{mark} {safe(step.step)}: {safe(step.summary)}")
    return app.finish(out, record=False)
