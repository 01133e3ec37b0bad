from __future__ import annotations

from typing import Any

import click

from releasegate.cli.app import App, print_json

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("stack")
@click.argument("env")
@click.argument("version")
@click.option(
    "--force",
    is_flag=True,
    help="Proceed past the promotion gate (needs --reason; recorded as FORCED).",
)
@click.option(
    "--reason", default="", metavar="TEXT", help="Why: recorded in the ledger with your name."
)
@click.option(
    "--skip-backup", is_flag=True, help="Do not back up config files first (needs --reason)."
)
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Events and the result as JSON lines.")
@click.option(
    "--strategy",
    type=click.Choice(["all", "rolling", "canary"]),
    help="Fleets: every host at once, batches of --batch hosts, or --canary host(s) first.",
)
@click.option("--batch", metavar="N|N%", help="Fleets, rolling: hosts per batch (3 or 25%).")
@click.option("--canary", type=click.IntRange(min=1), help="Fleets, canary: hosts smoked first.")
@click.option("--pause", type=click.FloatRange(min=0), help="Fleets: seconds between batches.")
@click.option(
    "--max-failures",
    metavar="N|N%",
    help="Fleets: hosts that may fail before the whole fleet goes back (default 0).",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    help="Fleets: hosts worked on at once (capped by the open-file limit).",
)
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="SSH hosts: trust hosts missing from known_hosts (their keys are added and recorded).",
)
@click.option(
    "--reprepare",
    is_flag=True,
    help="Prepare the release again even if releases/VERSION is already there.",
)
@pass_app
def deploy(
    app: App,
    stack: str,
    env: str,
    version: str,
    force: bool,
    reason: str,
    skip_backup: bool,
    dry_run: bool,
    as_json: bool,
    strategy: str | None,
    batch: str | None,
    canary: int | None,
    pause: float | None,
    max_failures: str | None,
    parallel: int | None,
    accept_new_host_keys: bool,
    reprepare: bool,
) -> int:
    """Deploy VERSION to STACK (whose environment must be ENV).

    \b
    Steps: lock -> promotion gate (stacks with promote_from) -> preflight
    -> backup of config files -> prepare release -> migrate -> switch -> restart
    -> smoke -> mark verified. If switch, restart or smoke fails, the last good
    version is brought back and smoked. Every step is recorded in the ledger,
    and an execution record (Markdown) is written.

    \b
    Fleets (a stack with ssh:// hosts): the artifact is uploaded to every host
    (checked by sha256) and prepared there; then hosts are switched, restarted and
    smoked batch by batch (`fleet:` in releasegate.yaml, or the options below). If
    more hosts fail than --max-failures allows, every host that switched goes back
    to the last good version and is smoked: the fleet stays on one version. A host
    that cannot be reached refuses the deploy before anything changes.

    \b
    Examples:
      releasegate deploy web-staging staging v2
      releasegate deploy web-prod prod v2 --dry-run
      releasegate deploy web-prod prod v3 --force --reason "hotfix INC-42"
      releasegate deploy web-prod prod v4 --strategy rolling --batch 25% --pause 10
      releasegate deploy web-prod prod v4 --strategy canary --canary 1 --json

    \b
    Exit codes: 0 live, 1 failed, 2 bad input, 3 refused (a gate), 4 rolled back,
    5 the stack is locked, 6 a ledger row the gates rely on failed verification.
    """
    from releasegate.engine.base import HostOptions
    from releasegate.workflows.deploy import DeployRequest

    app.json = as_json
    rollout = rollout_options(
        strategy=strategy,
        batch=batch,
        canary=canary,
        pause=pause,
        max_failures=max_failures,
        parallel=parallel,
    )
    request = DeployRequest(
        stack,
        env,
        version,
        force=force,
        reason=reason,
        skip_backup=skip_backup,
        reprepare=reprepare,
        hosts=HostOptions(rollout, accept_new_host_keys),
    )
    engine = app.engine()
    if dry_run:
        title = f"deploy {version} to {stack} ({env})" + ("  [red]FORCED[/red]" if force else "")
        return show_plans(app, [engine.plan_deploy(request)], title)
    check_anchor(app)
    out = engine.deploy(request)
    anchor_ledger(app, stack)
    return app.finish(out)


def show_plans(app: App, plans: list[Any], title: str) -> int:
    """What --dry-run prints: the steps the run would record, in its order."""
    if app.json:
        print_json({"plan": plans[0]} if len(plans) == 1 else {"plans": plans})
        return 0
    app.console.print(f"[bold]Plan[/bold]: {title}")
    number = 0
    for plan in plans:
        if len(plans) > 1:
            app.console.print(f"  {plan.action} ({plan.version or 'nothing running'}):")
        for step in plan.steps:
            number += 1
            app.console.print(f"  {number:>2}. {step.title}", highlight=False, markup=False)
        if plan.notes and plan.action != "restore":
            label = "on failure" if plan.action == "deploy" else "notes"
            app.console.print(f"  {label}: {plan.notes}", style="dim", markup=False)
    app.console.print("dry run: nothing was changed", style="dim")
    return 0


def check_anchor(app: App) -> None:
    """`audit.anchor` in the config: a ledger that no longer extends its newest anchor is
    not acted on (exit 6, before anything runs)."""
    if app.config.audit.anchor is None:  # nothing to check (and nothing to import)
        return
    from releasegate.ledger.anchor import check_configured_anchor

    check_configured_anchor(app.config, app.ledger)


def anchor_ledger(app: App, stack: str) -> None:
    """`audit.anchor` in the config: the head goes outside the database after each run."""
    if app.config.audit.anchor is None:
        return
    from releasegate.ledger.anchor import anchor_after_run
    from releasegate.model import Event

    note = anchor_after_run(app.config, app.ledger)
    if note:
        app.render_event(Event("message", stack, message=note))


def rollout_options(**given: object) -> dict[str, object]:
    """The fleet options that were given; `N` or `N%` shares checked here."""
    from releasegate.errors import BadInput
    from releasegate.execution.rollout import parse_share

    chosen = {k: v for k, v in given.items() if v is not None}
    for key in ("batch", "max_failures"):
        if key in chosen:
            try:
                chosen[key] = parse_share(str(chosen[key]))
            except ValueError as exc:
                raise BadInput(f"--{key.replace('_', '-')} {exc}") from exc
    if chosen.get("batch") == 0:
        raise BadInput("--batch 0: a batch is at least one host")
    return chosen


@click.command()
@click.argument("stack")
@click.argument("env")
@click.option(
    "--to", "to", metavar="VERSION", help="A version that was deployed successfully before."
)
@click.option("--reason", default="", metavar="TEXT", help="Why: recorded in the ledger.")
@click.option("--json", "as_json", is_flag=True, help="Events and the result as JSON lines.")
@click.option(
    "--with-db",
    is_flag=True,
    help="Also restore the database backup taken before the current release was deployed.",
)
@click.option("--yes", is_flag=True, help="With --with-db: do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="SSH hosts: trust hosts missing from known_hosts (their keys are added and recorded).",
)
@pass_app
def rollback(
    app: App,
    stack: str,
    env: str,
    to: str | None,
    reason: str,
    as_json: bool,
    with_db: bool,
    yes: bool,
    dry_run: bool,
    accept_new_host_keys: bool,
) -> int:
    """Roll STACK back to the previous successful version, or --to a named one.

    The target comes from the ledger (the last successful deploy or rollback that
    is not what runs now), never from directory dates; it is smoked after the switch.

    \b
    --with-db first saves the current data (a fresh backup), stops the writers and
    restores the backup that was taken before the current release was deployed:
    for a release whose migration broke the data.
    """
    from releasegate.engine.base import HostOptions
    from releasegate.workflows.rollback import RollbackRequest

    app.json = as_json
    request = RollbackRequest(
        stack,
        env,
        to=to,
        reason=reason,
        with_db=with_db,
        hosts=HostOptions(accept_new_host_keys=accept_new_host_keys),
    )
    if dry_run:
        plans = app.engine().plan_rollback(request)
        return show_plans(app, plans, f"roll back {stack} ({env}) to {plans[-1].version}")
    if with_db and not yes:
        click.confirm(
            f"Restore {stack}'s databases to the state before its current release?",
            abort=True,
            err=True,
        )
    check_anchor(app)
    out = app.engine().rollback(request)
    anchor_ledger(app, stack)
    return app.finish(out)
