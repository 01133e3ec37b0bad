from __future__ import annotations

import click

from releasegate.cli.app import App, print_json

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
    now = app.ledger.clock() if held else None  # heartbeats are judged on the ledger's clock
    for info in held:
        state = locks.holder_state(info, here, now)
        note = locks.state_note(info, state)
        if as_json:
            age = locks.heartbeat_age(info, now) if now else None
            print_json({**vars(info), "state": state, "note": note, "heartbeat_age_s": age})
        else:
            app.console.print(f"{info.stack}: {locks.describe(info)} [{state}]", markup=False)
            app.console.print(f"  {note}", markup=False)
    if not held and not as_json:
        app.console.print("no locks held")
    return 0


@lock.command("release")
@click.argument("stack")
@click.option(
    "--force",
    is_flag=True,
    help="Release a lock held from another host (never a live holder on this one).",
)
@click.option("--reason", default="", help="Why (needed with --force; recorded).")
@pass_app
def lock_release(app: App, stack: str, force: bool, reason: str) -> int:
    """Free STACK's lock: at once when its holder is gone from this host; never while it is
    alive here; held from another host, only with --force --reason TEXT (recorded)."""
    from releasegate import locks, names

    names.check("stack", stack)
    cfg = app.config.stack(stack)
    held = {i.stack: i for i in app.ledger.locks()}
    if stack not in held:
        app.console.print(f"{stack} is not locked")
        return 0
    info = held[stack]
    state = locks.check_release(info, app.actor.host, force=force, reason=reason)
    if not app.ledger.release_lock(stack, info.run_id):
        # taken over or released between our read and now: nothing of ours to free
        app.console.print(f"the lock of {stack} changed hands meanwhile; nothing released")
        return 0
    gone = state in locks.GONE  # dead here, or its heartbeat lapsed elsewhere
    how = "by force " if not gone else ""
    app.ledger.mark(
        stack=stack,
        env=cfg.env,
        action="unlock",
        notes=f"released {how}from {locks.describe(info)}" + (f": {reason}" if reason else ""),
        details={
            "holder_state": state,
            "holder_run_id": info.run_id,
            "holder_pid": info.pid,
            "holder_host": info.host,
            "forced": not gone,
            "reason": reason,
        },
        user=app.actor.user,
        host=app.actor.host,
        pid=app.actor.pid,
    )
    app.console.print(f"released the lock of {stack} ({locks.describe(info)})", markup=False)
    return 0
