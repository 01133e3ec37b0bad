"""One run per stack at a time. A lock whose holder died is detected (same host, pid gone
or reused) and taken over, recorded in the ledger; a live holder refuses with its name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from releasegate.errors import LockHeld
from releasegate.identity import Actor, pid_alive
from releasegate.model import LockInfo

if TYPE_CHECKING:
    from releasegate.ledger import Ledger


def holder_state(info: LockInfo, here: str) -> str:
    """'alive', 'dead', or 'unknown' (held from another host: we cannot look)."""
    if info.host != here:
        return "unknown"
    return "alive" if pid_alive(info.pid, info.pid_start) else "dead"


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
        if holder_state(holder, actor.host) != "dead":
            raise LockHeld(
                f"stack {stack} is {describe(holder)}",
                hint=(
                    "wait for that run to finish; if its process is gone for good, "
                    f"`releasegate lock release {stack} --force` frees it"
                ),
            )
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
