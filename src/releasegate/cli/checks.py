from __future__ import annotations

import os

import click

from releasegate.cli.app import App

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("stack")
@click.argument("env")
@click.argument("version", required=False)
@click.option("--json", "as_json", is_flag=True, help="Events and the result as JSON lines.")
@pass_app
def preflight(app: App, stack: str, env: str, version: str | None, as_json: bool) -> int:
    """Run STACK's preflight gates (and, with VERSION, its promotion gate and artifact check).

    Rules: disk free on the run directory, required commands, shared files,
    the stack's own preflight commands. Exit 3 when a rule fails.
    """
    app.json = as_json
    out = app.engine().preflight(stack, env, version)
    # Not a gate (a deploy goes on without a notification), but worth saying before one.
    from releasegate.notify.targets import missing_env

    app.show_notices(missing_env(app.config, out.stack, os.environ))
    return app.finish(out, record=False)


@click.command()
@click.argument("stack")
@click.argument("env")
@click.argument("version", required=False)
@click.option("--json", "as_json", is_flag=True, help="Events and the result as JSON lines.")
@pass_app
def smoke(app: App, stack: str, env: str, version: str | None, as_json: bool) -> int:
    """Run STACK's smoke checks against what runs now.

    With VERSION, `{version}` in the checks means VERSION and the stack must be
    running it. Exit 1 when a check fails.
    """
    app.json = as_json
    return app.finish(app.engine().smoke(stack, env, version), record=False)
