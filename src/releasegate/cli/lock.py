from __future__ import annotations

import click

from releasegate.cli.app import App, print_json
from releasegate.errors import LockHeld

pass_app = click.make_pass_decorator(App)


@click.group()
def lock() -> None:
    """Stack locks: one deploy or rollback per stack at a time."""


@lock.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def lock_status(app: App, as_json: bool) -> int:
    """Who holds which stack's lock, and whether that process is still alive."""
    from releasegate import locks

    held = app.ledger.locks()
    here = app.actor.host
    for info in held:
        state = locks.holder_state(info, here)
        if as_json:
            print_json({**vars(info), "state": state})
        else:
            app.console.print(f"{info.stack}: {locks.describe(info)} [{state}]", markup=False)
    if not held and not as_json:
        app.console.print("no locks held")
    return 0


@lock.command("release")
@click.argument("stack")
@click.option("--force", is_flag=True, help="Release even if the holder may still be alive.")
@pass_app
def lock_release(app: App, stack: str, force: bool) -> int:
    """Free STACK's lock. Without --force, only when its holder is gone."""
    from releasegate import locks, names

    names.check("stack", stack)
    cfg = app.config.stack(stack)
    held = {i.stack: i for i in app.ledger.locks()}
    if stack not in held:
        app.console.print(f"{stack} is not locked")
        return 0
    info = held[stack]
    state = locks.holder_state(info, app.actor.host)
    if state != "dead" and not force:
        raise LockHeld(
            f"stack {stack} is {locks.describe(info)} and that process is {state}",
            hint="wait for it, or --force if you are sure it is gone",
        )
    app.ledger.release_lock(stack, info.run_id)
    app.ledger.mark(
        stack=stack,
        env=cfg.env,
        action="unlock",
        notes=f"released {'by force ' if force else ''}from {locks.describe(info)}",
        user=app.actor.user,
        host=app.actor.host,
        pid=app.actor.pid,
    )
    app.console.print(f"released the lock of {stack} ({locks.describe(info)})", markup=False)
    return 0
