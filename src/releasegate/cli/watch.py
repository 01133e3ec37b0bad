"""`releasegate watch STACK ENV`: follow a deploy's watch window from another terminal, or
end it early with `--accept --reason TEXT` (recorded with your name and why)."""

from __future__ import annotations

import time
from typing import Any

import click

from releasegate.cli.app import App, print_json
from releasegate.cli.term import safe

pass_app = click.make_pass_decorator(App)

GRACE_S = 30.0  # past its end, a window still running is waited for this long at most
POLL_S = 0.25
_EXIT = {"success": 0, "fail": 4}


def _state_json(state: Any) -> dict[str, Any]:
    rec = state.record
    return {
        "stack": rec.stack,
        "env": rec.env,
        "version": rec.version,
        "window": rec.action_id,
        "deploy": rec.details.get("deploy"),
        "status": rec.status if (state.alive or not state.running) else "stale",
        "started_at": rec.started_at,
        "ends_at": state.ends_at,
        "left_s": round(state.left_s, 1) if state.running else 0,
        "checks": rec.details.get("checks", []),
        "outcome": rec.details.get("outcome"),
        "notes": rec.notes,
        "user": rec.user,
    }


@click.command()
@click.argument("stack")
@click.argument("env")
@click.option("--accept", is_flag=True, help="End the running window now: the release stays.")
@click.option("--reason", default="", metavar="TEXT", help="Why (with --accept): recorded.")
@click.option("--no-follow", is_flag=True, help="Show the window's state and return.")
@click.option("--json", "as_json", is_flag=True, help="The window's state as JSON.")
@pass_app
def watch(app: App, stack: str, env: str, accept: bool, reason: str, no_follow: bool,
          as_json: bool) -> int:  # fmt: skip
    """Follow STACK's watch window (the `watch:` step of a deploy) until it ends.

    \b
    The window re-runs its checks (smoke, the 5xx share of an access log, lines
    matching a pattern in the app's log, a Prometheus query) every interval; a
    failing check rolls the release back (the deploy ends ROLLED BACK, exit 4).
    --accept --reason TEXT ends it early: the release stays, recorded as yours.

    \b
    Exit codes: 0 the window passed (or was accepted), 4 a check failed and the
    release went back, 1 it was interrupted (the release stays live), 2 bad input.
    """
    from releasegate.errors import BadInput
    from releasegate.watch.flow import accept as record_accept
    from releasegate.watch.flow import last_window

    app.json = as_json
    app.engine().stack(stack, env)  # the names, and the stack's env, checked
    state = last_window(app.ledger, stack, host=app.actor.host)
    if state is None:
        if accept:
            raise BadInput(f"no watch window was recorded for {stack}: nothing to accept")
        if as_json:
            print_json({"stack": stack, "env": env, "status": "none"})
        else:
            app.console.print(f"{safe(stack)}: no watch window recorded")
        return 0
    if accept:
        if not reason.strip():
            raise BadInput("--accept needs --reason TEXT: say why; it is recorded with your name")
        if not state.running or not state.alive:
            raise BadInput(
                f"the watch window of {state.record.version} on {stack} is not running "
                f"({state.record.status if state.running is False else 'its process is gone'})",
                hint=f"releasegate history --stack {stack}",
            )
        record_accept(app.ledger, app.actor, state, reason.strip())
        if not as_json:
            app.console.print(
                f"accepted: the window of {safe(state.record.version)} ends at its next round"
            )
    elif not as_json:
        _show(app, state)
    if no_follow or not state.running:
        if as_json:
            print_json(_state_json(state))
        return _code(state)
    interval = float(state.record.details.get("interval_s") or 1.0)
    deadline = time.monotonic() + state.left_s + interval + GRACE_S
    while state.running and state.alive and time.monotonic() < deadline:
        time.sleep(POLL_S)
        found = last_window(app.ledger, stack, host=app.actor.host)
        if found is None or found.record.action_id != state.record.action_id:
            break
        state = found
    if as_json:
        print_json(_state_json(state))
    else:
        _show(app, state)
    return _code(state)


def _code(state: Any) -> int:
    if state.running:
        return 0 if state.alive else 1
    return _EXIT.get(state.record.status, 1)


def _show(app: App, state: Any) -> None:
    rec = state.record
    what = f"{safe(rec.stack)} {safe(rec.version)}"
    if state.running and state.alive:
        ends = state.ends_at.astimezone().strftime("%H:%M:%S") if state.ends_at else "?"
        app.console.print(
            f"{what}: watch window running, ends at {ends} ({state.left_s:.0f}s left), "
            f"started by {safe(rec.user)}"
        )
        for check in rec.details.get("checks", []):
            app.console.print(f"  · {safe(str(check))}", style="dim")
    elif state.running:
        app.console.print(
            f"[yellow]{what}: the window's process ({rec.pid}) is gone[/]: the next deploy or "
            "rollback closes it"
        )
    else:
        style = {"success": "green", "fail": "red"}.get(rec.status, "yellow")
        app.console.print(f"[{style}]{what}: watch window {safe(rec.status)}[/]: {safe(rec.notes)}")
