"""`releasegate cron list|verify STACK ENV`: the scheduled jobs each host has installed,
against those its running release should have (read-only; nothing is recorded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from releasegate.cli.app import App, print_json
from releasegate.cli.term import printable, safe

if TYPE_CHECKING:
    from releasegate.cron.flow import CronReport

pass_app = click.make_pass_decorator(App)


@click.group()
def cron() -> None:
    """Scheduled jobs installed with each release (the stack's `cron:`)."""


def _show(app: App, report: CronReport, *, jobs: bool) -> None:
    app.console.print(
        f"{safe(report.stack)} ({safe(report.env)}): jobs in {safe(report.target)}, "
        f"running {safe(report.running or 'nothing')}"
    )
    for host, info in report.hosts.items():
        mark = "[green]✔[/green]" if info["ok"] else "[red]✘ DRIFT[/red]"
        app.console.print(f"  {mark} {safe(host)}: {safe(info['summary'])}")
        if jobs:
            for name, line in (info.get("installed") or {}).items():
                app.console.print(f"      {printable(name)}: {printable(line)}", markup=False)
        for item in info.get("drift") or []:
            app.console.print(f"      - {printable(item)}", markup=False)


def _run(app: App, stack: str, env: str, as_json: bool, *, jobs: bool) -> int:
    report = app.engine().cron_report(stack, env)
    if as_json:
        print_json(
            {
                "stack": report.stack,
                "env": report.env,
                "running": report.running,
                "target": report.target,
                "ok": report.ok,
                "hosts": report.hosts,
            }
        )
    else:
        _show(app, report, jobs=jobs)
        if not report.ok:
            app.console.print(
                "[red]drift[/red]: the installed jobs differ from the release's "
                f"(a deploy or rollback installs them again: releasegate rollback {stack} {env})"
            )
    return 0 if report.ok else 3


@cron.command("list")
@click.argument("stack")
@click.argument("env")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@pass_app
def cron_list(app: App, stack: str, env: str, as_json: bool) -> int:
    """The jobs installed on each host of STACK, and any drift. Exit 3 on drift."""
    return _run(app, stack, env, as_json, jobs=True)


@cron.command("verify")
@click.argument("stack")
@click.argument("env")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@pass_app
def cron_verify(app: App, stack: str, env: str, as_json: bool) -> int:
    """Compare each host's installed jobs with the running release's: exit 3 on drift."""
    return _run(app, stack, env, as_json, jobs=False)
