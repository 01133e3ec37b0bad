"""One run per stack at a time. A lock whose holder died is detected (same host, pid gone
or reused) and taken over, recorded in the ledger; a live holder refuses with its name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from releasegate.errors import BadInput, LockHeld
from releasegate.identity import Actor, pid_alive
from releasegate.model import LockInfo

if TYPE_CHECKING:
    from releasegate.ledger import Ledger


def holder_state(info: LockInfo, here: str) -> str:
    """'alive', 'dead', or 'unknown' (held from another host: we cannot look)."""
    if info.host != here:
        return "unknown"
    return "alive" if pid_alive(info.pid, info.pid_start) else "dead"


def state_note(info: LockInfo, state: str) -> str:
    """What `lock status` says of a holder in `state` (holder_state)."""
    if state == "dead":
        return (
            f"holder is dead: pid {info.pid} is gone from this host; the next deploy or "
            f"rollback takes the lock over, or `releasegate lock release {info.stack}` frees it"
        )
    if state == "alive":
        return f"holder is alive: pid {info.pid} is running on this host"
    return f"held from host {info.host}: its process cannot be checked from here"


def check_release(info: LockInfo, here: str, *, force: bool, reason: str) -> str:
    """May `lock release` free this lock? Returns the holder's state, or raises.

    A dead holder on this host is freed as is. A live one never is, even with --force:
    two runs at once on one stack is what the lock exists to prevent. A holder on another
    host cannot be checked from here: freeing it is a judgement, so it needs --force and a
    --reason, which the ledger records."""
    state = holder_state(info, here)
    if state == "dead":
        return state
    if state == "alive":
        raise LockHeld(
            f"stack {info.stack} is {describe(info)} and that process is alive on this host:"
            " not released, --force or not",
            hint=f"wait for that run to finish, or stop it (kill {info.pid}); a dead holder's "
            "lock is taken over by the next run",
        )
    if not force:
        raise LockHeld(
            f"stack {info.stack} is {describe(info)}, on another host: releasegate cannot "
            "tell from here whether that run is still going",
            hint=f"check on {info.host}; if it is gone for good: "
            f"releasegate lock release {info.stack} --force --reason TEXT",
        )
    if not reason.strip():
        raise BadInput(
            f"releasing a lock held from another host ({info.host}) needs --reason",
            hint="the reason is recorded in the ledger with the release",
        )
    return state


def describe(info: LockInfo) -> str:
    since = info.since.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return f"locked by {info.user} since {since} (pid {info.pid}, host {info.host})"


def acquire(ledger: Ledger, *, stack: str, env: str, run_id: str, actor: Actor) -> LockInfo | None:
    """Take the stack's lock. Returns the dead holder's info when it was taken over."""
    mine = LockInfo(
        stack=stack,
        run_id=run_id,
        user=actor.user,
        host=actor.host,
        pid=actor.pid,
        pid_start=actor.pid_start,
        since=datetime.now(UTC),
    )
    for _ in range(3):  # the holder may change between our read and our swap
        holder = ledger.try_acquire_lock(mine)
        if holder is None:
            return None
        state = holder_state(holder, actor.host)
        if state != "dead":
            hint = (
                f"wait for that run to finish; if it hangs, stop it (kill {holder.pid}): "
                "the next run takes a dead holder's lock over"
                if state == "alive"
                else f"wait for that run to finish; if it is gone for good on {holder.host}: "
                f"`releasegate lock release {stack} --force --reason TEXT`"
            )
            raise LockHeld(f"stack {stack} is {describe(holder)}", hint=hint)
        if ledger.replace_lock(stack, holder.run_id, mine):
            ledger.mark(
                stack=stack,
                env=env,
                action="lock-takeover",
                notes=f"holder died: {describe(holder)}",
                details={"dead_run_id": holder.run_id, "dead_pid": holder.pid},
                user=actor.user,
                host=actor.host,
                pid=actor.pid,
            )
            return holder
    raise LockHeld(f"stack {stack} is locked and its holder keeps changing; try again")


def release(ledger: Ledger, stack: str, run_id: str) -> None:
    ledger.release_lock(stack, run_id)
