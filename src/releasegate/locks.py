"""One run per stack at a time. A lock whose holder died is detected and taken over, the
takeover recorded in the ledger; a live holder refuses with its name.

On this host a holder is judged by its process (pid gone or reused: dead). From another
host (a team's ledger on PostgreSQL) it is judged by its heartbeat: the holder refreshes
its lock's `heartbeat` every lease/3 seconds from a thread of its own (`Heartbeat`), and a
lock whose heartbeat is older than its lease belongs to a machine that died or lost the
database; the next run takes it over and closes the dead run's rows as interrupted, so
the stack needs recovery exactly as after a local crash."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from releasegate.errors import BadInput, LockHeld
from releasegate.identity import Actor, pid_alive
from releasegate.model import LockInfo

if TYPE_CHECKING:
    from releasegate.ledger import Ledger

_log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30.0
# The heartbeat's period is a third of the lease (two beats may be lost before it lapses),
# bounded: never busier than 20 beats a second, never quieter than every 10 s.
MIN_BEAT_S = 0.05
MAX_BEAT_S = 10.0
# Taking a lock from a holder on another host: `states` that mean it is gone.
GONE = ("dead", "lapsed")


def beat_interval(lease_s: float) -> float:
    return min(MAX_BEAT_S, max(MIN_BEAT_S, lease_s / 3))


def heartbeat_age(info: LockInfo, now: datetime) -> float | None:
    """Seconds since the holder's last heartbeat, by `now` (the ledger's clock)."""
    if info.heartbeat is None:
        return None
    return (now - info.heartbeat).total_seconds()


def holder_state(info: LockInfo, here: str, now: datetime | None = None) -> str:
    """On this host: 'alive' or 'dead' (its process). From another host: 'beating' (its
    heartbeat is within its lease), 'lapsed' (it is not: the holder is gone), or 'unknown'
    (a lock without a heartbeat, from an older releasegate: we cannot tell)."""
    if info.host == here:
        return "alive" if pid_alive(info.pid, info.pid_start) else "dead"
    age = heartbeat_age(info, now or datetime.now(UTC))
    if age is None or info.lease_s is None:
        return "unknown"
    return "lapsed" if age > info.lease_s else "beating"


def state_note(info: LockInfo, state: str) -> str:
    """What `lock status` says of a holder in `state` (holder_state)."""
    if state == "dead":
        return (
            f"holder is dead: pid {info.pid} is gone from this host; the next deploy or "
            f"rollback takes the lock over, or `releasegate lock release {info.stack}` frees it"
        )
    if state == "alive":
        return f"holder is alive: pid {info.pid} is running on this host"
    if state == "beating":
        return (
            f"held from host {info.host}: its heartbeat is fresh (lease {info.lease_s:g}s); "
            "it is taken over only once it stays silent for longer than that"
        )
    if state == "lapsed":
        return (
            f"held from host {info.host}, whose heartbeat lapsed (lease {info.lease_s:g}s): "
            "that machine or its run is gone; the next deploy or rollback takes the lock over"
        )
    return f"held from host {info.host}: its process cannot be checked from here"


def check_release(info: LockInfo, here: str, *, force: bool, reason: str) -> str:
    """May `lock release` free this lock? Returns the holder's state, or raises.

    A dead holder on this host is freed as is. A live one never is, even with --force:
    two runs at once on one stack is what the lock exists to prevent. A holder on another
    host cannot be checked from here: freeing it is a judgement, so it needs --force and a
    --reason, which the ledger records."""
    state = holder_state(info, here)
    if state in GONE:
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


def _refusal_hint(holder: LockInfo, state: str, stack: str) -> str:
    if state == "alive":
        return (
            f"wait for that run to finish; if it hangs, stop it (kill {holder.pid}): "
            "the next run takes a dead holder's lock over"
        )
    if state == "beating":
        return (
            f"wait for that run to finish; if {holder.host} died, its lock is taken over "
            f"once its heartbeat has been silent for {holder.lease_s:g}s"
        )
    return (
        f"wait for that run to finish; if it is gone for good on {holder.host}: "
        f"`releasegate lock release {stack} --force --reason TEXT`"
    )


def acquire(
    ledger: Ledger,
    *,
    stack: str,
    env: str,
    run_id: str,
    actor: Actor,
    lease_s: float = DEFAULT_LEASE_S,
) -> LockInfo | None:
    """Take the stack's lock. Returns the dead holder's info when it was taken over.

    The lock carries a heartbeat (the ledger's clock) and the holder's lease: the caller
    keeps it beating (`Heartbeat`) for as long as it holds the lock."""
    now = ledger.clock()
    mine = LockInfo(
        stack=stack,
        run_id=run_id,
        user=actor.user,
        host=actor.host,
        pid=actor.pid,
        pid_start=actor.pid_start,
        since=now,
        heartbeat=now,
        lease_s=float(lease_s),
    )
    for _ in range(3):  # the holder may change between our read and our swap
        holder = ledger.try_acquire_lock(mine)
        if holder is None:
            return None
        seen = ledger.clock()
        state = holder_state(holder, actor.host, seen)
        if state not in GONE:
            raise LockHeld(
                f"stack {stack} is {describe(holder)}",
                hint=_refusal_hint(holder, state, stack),
            )
        if ledger.replace_lock(stack, holder.run_id, mine):
            _record_takeover(ledger, holder, state, seen, env=env, actor=actor)
            return holder
    raise LockHeld(f"stack {stack} is locked and its holder keeps changing; try again")


def _record_takeover(
    ledger: Ledger, holder: LockInfo, state: str, seen: datetime, *, env: str, actor: Actor
) -> None:
    """The takeover in the ledger (who took over from whom, and why); a holder from another
    host also has its run's rows closed: nobody else will ever close them."""
    notes = f"holder died: {describe(holder)}"
    details: dict[str, object] = {
        "dead_run_id": holder.run_id,
        "dead_pid": holder.pid,
        "dead_host": holder.host,
        "dead_user": holder.user,
        "holder_state": state,
        "taken_by_host": actor.host,
        "taken_by_pid": actor.pid,
    }
    if state == "lapsed":
        age = heartbeat_age(holder, seen) or 0.0
        notes += (
            f"; its heartbeat lapsed ({age:.1f}s without one, lease {holder.lease_s:g}s): "
            f"taken over from {actor.host}"
        )
        details.update(heartbeat_age_s=round(age, 3), lease_s=holder.lease_s)
    ledger.mark(
        stack=holder.stack,
        env=env,
        action="lock-takeover",
        notes=notes,
        details=details,
        user=actor.user,
        host=actor.host,
        pid=actor.pid,
    )
    if state == "lapsed":
        close_abandoned(ledger, holder, taker=actor.host)


def close_abandoned(ledger: Ledger, holder: LockInfo, *, taker: str) -> int:
    """Close the rows a holder on another host left `running` (its machine died): steps
    `interrupted`, then its run `interrupted` (or `success` when it had verified the release:
    it was live before the machine died), as the local crash recovery does for a dead pid.
    The stack then needs recovery if that run had switched. Returns the rows closed."""
    found = [
        a
        for a in ledger.open_actions(holder.stack)
        if a.host == holder.host and a.pid == holder.pid
    ]
    died = f"its holder on {holder.host} (pid {holder.pid}) stopped beating; taken over by {taker}"
    # Children first, so a run is never closed while a step of it still looks open.
    for rec in sorted(found, key=lambda a: a.parent_id is None):
        if rec.parent_id is None and any(
            s.action == "verify" and s.status == "success" for s in ledger.children(rec.action_id)
        ):
            ledger.end_action(
                rec.action_id, "success", notes=f"{rec.version} was live and verified; {died}"
            )
            continue
        ledger.end_action(rec.action_id, "interrupted", notes=f"interrupted: {died}")
    return len(found)


class Heartbeat:
    """Keeps a held lock's heartbeat fresh from a daemon thread, on a connection of its own,
    every `beat_interval(lease_s)` seconds, until `stop()`. A failed beat (the database
    away for a moment) is retried at the next period; a lock found taken over ends the
    beating and sets `lost`."""

    def __init__(self, ledger: Ledger, stack: str, run_id: str, lease_s: float) -> None:
        self._ledger = ledger
        self.stack = stack
        self.run_id = run_id
        self.interval = beat_interval(lease_s)
        self.lost = False
        self.beats = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{stack}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        own: Ledger | None = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    if own is None:
                        own = self._ledger.reopen()
                    if not own.heartbeat(self.stack, self.run_id):
                        self.lost = True
                        return
                    self.beats += 1
                except Exception as exc:  # a dropped connection: open a new one next time
                    self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                    _log.debug("heartbeat of %s failed: %s", self.stack, self.last_error)
                    if own is not None:
                        _close_quietly(own)
                        own = None
        finally:
            if own is not None:
                _close_quietly(own)

    def stop(self) -> None:
        self._stop.set()
        # A beat in flight is bounded by the connection's own timeouts; not waiting longer
        # than a period here keeps the run's exit prompt (the thread is a daemon).
        self._thread.join(timeout=max(self.interval, 5.0))


def _close_quietly(ledger: Ledger) -> None:
    try:
        ledger.close()
    except Exception as exc:
        _log.debug("closing the heartbeat's connection failed: %s", exc)


def release(ledger: Ledger, stack: str, run_id: str) -> None:
    ledger.release_lock(stack, run_id)
