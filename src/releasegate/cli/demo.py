from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from releasegate.cli.app import App
from releasegate.errors import BadInput, ExitCode, ReleasegateError

if TYPE_CHECKING:
    from releasegate.engine import RunOutcome

# (headline, stack, env, version, expected exit code)
STORY: list[tuple[str, str, str, str, ExitCode]] = [
    ("v1 goes to staging first", "web-staging", "staging", "v1", ExitCode.OK),
    ("v1 is promoted to prod: it was verified on staging", "web-prod", "prod", "v1", ExitCode.OK),
    (
        "v2 is refused for prod: it was never verified on staging",
        "web-prod",
        "prod",
        "v2",
        ExitCode.REFUSED,
    ),
    ("v2 goes to staging", "web-staging", "staging", "v2", ExitCode.OK),
    ("v2 is promoted to prod", "web-prod", "prod", "v2", ExitCode.OK),
    (
        "v3 is broken: staging smoke fails and v2 comes back by itself",
        "web-staging",
        "staging",
        "v3",
        ExitCode.ROLLED_BACK,
    ),
]


@click.command()
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the workspace here (then: cd DIR && releasegate history).",
)
@click.option(
    "--keep-running", is_flag=True, help="Leave the sample app servers running at the end."
)
@click.pass_context
def demo(ctx: click.Context, workdir: Path | None, keep_running: bool) -> int:
    """Tell releasegate's story on a sample web app, with nothing but Python.

    \b
    Builds three versions of a small web app (v3 broken on purpose), a staging and
    a prod stack (prod promotes from staging), then: v1 to staging, v1 promoted
    to prod, v2 refused for prod, v2 staging then prod, v3 fails its smoke checks
    on staging and is rolled back automatically; a feature switch is turned on
    on staging and rolled back; with nginx, HAProxy or Caddy on PATH, a blue/green stack
    behind it: a traffic switch and a watch window that switches back; then the history
    and the audit.
    """
    from releasegate.cli.demo_proxy import proxy_story, skipped_line
    from releasegate.demo import proxy as demo_proxy
    from releasegate.demo import workspace
    from releasegate.workflows.deploy import DeployRequest

    root = workdir.resolve() if workdir else Path(tempfile.mkdtemp(prefix="releasegate-demo-"))
    found = demo_proxy.find()
    proxy = demo_proxy.plan(root, *found) if found else None
    try:
        ws = workspace.create(root, proxy)
    except FileExistsError as exc:
        raise BadInput(str(exc), hint="releasegate demo --dir NEW_EMPTY_FOLDER") from exc
    app = App(str(ws.config))
    app.show_record_paths = workdir is not None  # a temporary workspace is deleted at the end
    ctx.obj = app
    say = app.console.print
    say(f"[bold]releasegate demo[/bold] in {root}\n")
    failures: list[str] = []
    try:
        for i, (headline, stack, env, version, expected) in enumerate(STORY, 1):
            say(f"\n[bold cyan]{i}. {headline}[/bold cyan]")
            say(f"$ releasegate deploy {stack} {env} {version}", style="dim")
            try:
                code = app.finish(app.engine().deploy(DeployRequest(stack, env, version)))
            except ReleasegateError as exc:
                say(f"[red]{exc.message}[/red]")
                code = int(exc.exit_code)
            if code != expected:
                failures.append(f"step {i}: exit {code}, expected {int(expected)}")
        n = len(STORY) + 1
        failures += _flag_story(app, ws.ports["web-staging"], n)
        n += 2
        if proxy is not None:
            more, n = proxy_story(app, root, proxy, n)
            failures += more
        else:
            say(f"\n{skipped_line()}")
        say(f"\n[bold cyan]{n}. The history, as the seed's deploy-history.log[/bold cyan]")
        say("$ releasegate history --format log", style="dim")
        from releasegate.ledger import format_log_line

        for rec in app.ledger.actions():
            say(format_log_line(rec), markup=False)
        say(f"\n[bold cyan]{n + 1}. The ledger's hash chain is intact[/bold cyan]")
        say("$ releasegate audit verify", style="dim")
        report = app.ledger.verify_chain()
        say(
            f"{'ok' if report.ok else 'BROKEN'}: {report.rows_checked} rows; "
            f"head {report.head_hash[:16]}…"
        )
        if not report.ok:
            failures.append("audit verify failed")
        for row in app.engine().status():
            say(f"{row.stack} runs {row.running} (verified {row.verified})")
    finally:
        if not keep_running:
            if proxy is not None:
                demo_proxy.stop(proxy)
            workspace.stop_services(ws)
    if keep_running and proxy is not None and proxy.pid:
        say(f"{proxy.name} keeps running on {proxy.url}: kill {proxy.pid} stops it")
    if failures:
        say("[red]the demo did not go as expected:[/red] " + "; ".join(failures))
    if workdir:
        say(f"\nThe workspace stays in {root}: cd {root} && releasegate history")
        say(f"Each run's execution record (Markdown) is in {app.config.records_dir}")
        say(
            f"The dashboard: cd {root} && releasegate user add admin --role admin && "
            "releasegate serve  (then open http://127.0.0.1:8642/)"
        )
    else:
        shutil.rmtree(root, ignore_errors=True)
        say(
            "\nThe workspace was temporary and is gone, with each run's execution record: "
            "`releasegate demo --dir DIR` keeps them (then: cd DIR && releasegate history)"
        )
        say("The dashboard needs a kept workspace: `releasegate demo --dir DIR` says how")
    return ExitCode.FAILED if failures else ExitCode.OK


FLAG = "SUPPLIER_EVAL_ENABLED"


def _flag_story(app: App, port: int, n: int) -> list[str]:
    """Seed 003's switch: turned on for everyone on staging, then rolled back (off)."""
    from releasegate.workflows.flags import FlagRequest

    say = app.console.print
    failures: list[str] = []
    steps: tuple[tuple[str, str, Callable[[], RunOutcome], int], ...] = (
        (
            f"{FLAG} is switched on on staging: .env edited, app restarted, smoked",
            f"$ releasegate flag set web-staging staging {FLAG} true --reason 'open to everyone'",
            lambda: app.engine().flag_set(
                FlagRequest("web-staging", "staging", FLAG, "true", reason="open to everyone")
            ),
            200,
        ),
        (
            f"{FLAG} is rolled back: the value before, restarted, smoked",
            f"$ releasegate flag rollback web-staging staging {FLAG}",
            lambda: app.engine().flag_rollback("web-staging", "staging", FLAG),
            403,
        ),
    )
    for i, (headline, command, run, answer) in enumerate(steps, n):
        say(f"\n[bold cyan]{i}. {headline}[/bold cyan]")
        say(command, style="dim")
        try:
            code = app.finish(run())
        except ReleasegateError as exc:
            say(f"[red]{exc.message}[/red]")
            code = int(exc.exit_code)
        seen = _features(port)
        say(f"GET /features -> {seen}", style="dim")
        if code != ExitCode.OK or seen != answer:
            failures.append(f"step {i}: exit {code}, /features {seen}, expected 0 and {answer}")
    return failures


def _features(port: int) -> int:
    """The sample app's answer on /features: 200 with a switch on, 403 without."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/features", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0
