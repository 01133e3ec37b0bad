"""The watch window as a step of a deploy, and its state in the ledger.

The window is a top-level action `watch-window` (its start, its end and its checks in the
open row's details; its outcome on the close row), so `releasegate watch STACK ENV` in
another terminal can follow it, and `--accept --reason` ends it early through a
`watch-accept` action that the window reads between rounds. A failing check sends the
release back through a "switch back" callable: a proxy's switch to the warm slot when
there is one, else the normal automatic rollback."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from releasegate.execution.interrupts import Interrupted
from releasegate.model import CheckResult, Event
from releasegate.watch.logs import Want, mark_program, read_program
from releasegate.watch.window import Checks, ReadLogs, prometheus_query, run_window

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.engine.base import EngineBase, RunOutcome
    from releasegate.execution.hosts import StackHosts
    from releasegate.hosttext import HostRange
    from releasegate.ledger import Ledger
    from releasegate.model import ActionRecord
    from releasegate.watch.config import WatchConfig
    from releasegate.workflows.steps import Run, StepBody

WINDOW = "watch-window"
ACCEPT = "watch-accept"
# The release goes back for this reason; returns the deploy's final outcome.
SwitchBack = Callable[[str], "RunOutcome"]


def log_paths(cfg: WatchConfig) -> list[str]:
    """The watched logs (a path named twice is read once)."""
    return list(dict.fromkeys(str(c.path) for c in (cfg.log, cfg.access_log) if c is not None))


def log_offsets(stack: StackConfig, hosts: StackHosts) -> dict[str, dict[str, Any]]:
    """Where each watched log ends now on each host (host -> path -> its size and inode):
    taken just before the switch, so the window counts only what the new release (and the
    traffic it got) wrote. A host that does not answer gets no place: the window reads its
    logs from where they end when it starts."""
    cfg = stack.watch
    paths = log_paths(cfg) if cfg is not None else []
    if not paths:
        return {}
    return hosts.run_programs(
        "watch-offsets",
        lambda h, rt: mark_program(paths),
        hosts=None,
        report=False,
        failed=lambda h, why: {p: {"offset": None, "error": why[:300]} for p in paths},
    )


def _read_logs(hosts: StackHosts, max_bytes: int) -> ReadLogs:
    """One read program per host, side by side over SSH, in turn here."""

    def read(wants: dict[str, list[Want]]) -> dict[str, dict[str, HostRange]]:
        from releasegate.hosttext import HostRange

        def failed(host: str, why: str) -> dict[str, HostRange]:
            return {w.path: HostRange(error=f"cannot read {w.path}: {why}") for w in wants[host]}

        return hosts.run_programs(
            "watch-logs",
            lambda h, rt: read_program(wants[h], max_bytes),
            hosts=[h for h in wants if h in hosts.hosts],
            report=False,
            failed=failed,
        )

    return read


def _smoke(engine: EngineBase, run: Run) -> Callable[[], CheckResult]:
    def check() -> CheckResult:
        outcomes = run.hosts.smoke(run.out.version, list(run.hosts.active))
        bad = {h: o for h, o in outcomes.items() if not o.ok}
        if not bad:
            return CheckResult("smoke", True, f"smoke passed on {len(outcomes)} host(s)")
        one = len(outcomes) == 1
        why = "; ".join(o.summary if one else f"{h}: {o.summary}" for h, o in bad.items())
        return CheckResult("smoke", False, why, {"hosts": {h: o.as_dict() for h, o in bad.items()}})

    return check


def watch_step(engine: EngineBase, run: Run) -> StepBody:
    """The deploy's `watch` step: open the window's ledger action, run its rounds, close
    it with the outcome. An interruption (Ctrl-C) closes it `interrupted` and goes on up:
    the release, already verified, stays live."""
    cfg = run.stack.watch
    assert cfg is not None  # the plan has this step only then
    stack, out, ledger = run.stack, run.out, engine.ledger
    offsets = out.details.pop("watch_from", None) or log_offsets(stack, run.hosts)
    started = datetime.now(UTC)
    ends = started + timedelta(seconds=cfg.duration)
    checks_named = cfg.describe()
    window = engine._begin(
        stack,
        WINDOW,
        out.version,
        parent=None,
        notes=f"watching until {ends.isoformat(timespec='seconds')}",
        details={
            "deploy": out.action_id,
            "started_at": started.isoformat(),
            "ends_at": ends.isoformat(),
            "duration_s": cfg.duration,
            "interval_s": cfg.interval,
            "checks": checks_named,
            "offsets": offsets,
        },
    )
    record = ledger.get_action(window)
    since = record.seq if record is not None else 0
    engine.emit(
        Event(
            "message",
            stack.name,
            step="watch",
            message=f"watching {out.version} for {cfg.duration:g}s (until "
            f"{ends.astimezone().strftime('%H:%M:%S')}): {'; '.join(checks_named)}; "
            f"`releasegate watch {stack.name} {stack.env} --accept --reason TEXT` ends it early",
        )
    )
    checks = Checks(
        cfg,
        list(run.hosts.active),
        offsets,
        read_logs=_read_logs(run.hosts, cfg.max_read_bytes),
        smoke=_smoke(engine, run) if cfg.smoke and stack.smoke else None,
        query=prometheus_query,
        redact=engine._redactor(stack),
    )

    def on_round(n: int, ok: bool, summary: str) -> None:
        engine.emit(
            Event("check", stack.name, step="watch", ok=ok, message=f"round {n}: {summary}")
        )

    def accepted() -> str | None:
        engine.check_lock(stack.name)  # a window lasts minutes: a takeover ends it at a round
        return accepted_by(ledger, stack.name, window, since)

    out.details["watch"] = {"window": window, "outcome": "running"}
    try:
        result = run_window(
            checks.round,
            duration=cfg.duration,
            interval=cfg.interval,
            accepted=accepted,
            on_round=on_round,
        )
    except Interrupted as stop:
        why = f"interrupted by {stop.name}: {out.version} stays live (verified)"
        out.details["watch"] = {"window": window, "outcome": "interrupted"}
        engine.close_action(window, "interrupted", why, {"evidence": checks.evidence()})
        raise
    except Exception as exc:  # a bug must still close the window's row
        engine.close_action(window, "fail", f"{type(exc).__name__}: {exc}")
        raise
    evidence = {"window": window, "rounds": result.rounds, **checks.evidence()}
    out.details["watch"] = {"window": window, "outcome": result.outcome}
    status = "fail" if result.outcome == "failed" else "success"
    summary = f"watch failed: {result.summary}" if result.outcome == "failed" else result.summary
    engine.close_action(window, status, summary, {"outcome": result.outcome, **evidence})
    return result.outcome != "failed", summary, result.checks, evidence


def accepted_by(ledger: Ledger, stack: str, window: str, since: int) -> str | None:
    """ "USER: REASON" of a `watch-accept` naming this window, if one was recorded."""
    for rec in ledger.actions(stack=stack, action=ACCEPT, since_seq=since):
        if rec.details.get("window") == window and rec.status == "success":
            return f"{rec.user}: {rec.reason}"
    return None


def watch_failed(
    engine: Any, run: Run, summary: str, switch_back: SwitchBack | None = None
) -> RunOutcome:
    """A check failed: the release goes back (`switch_back`, by default the automatic
    rollback), the deploy ends ROLLED BACK (exit 4) when that worked; the version brought
    back is marked verified again, so a stack promoting from this one never takes the
    version that failed its window."""
    why = summary.removeprefix("watch failed: ")  # the way back says "watch failed: " itself
    back: SwitchBack = switch_back or (lambda text: engine._go_back(run, "watch", text))
    result = back(why)
    target = next((f for f in reversed(result.followups) if f.action == "rollback"), None)
    if result.status == "rolled_back" and target is not None and target.status == "success":
        try:
            content = run.hosts.first.content(target.version)
        except Exception:  # the content is evidence; its absence proves nothing either way
            content = {}
        engine.ledger.mark(
            stack=run.stack.name,
            env=run.stack.env,
            action="verify",
            version=target.version,
            notes=f"verified again: the watch window of {run.out.version} failed",
            details={"rollback": target.action_id, "content": content},
            user=engine.actor.user,
            host=engine.actor.host,
            pid=engine.actor.pid,
        )
    return result


# ---- the window seen from another terminal ----------------------------------------------------


@dataclass(frozen=True)
class WindowState:
    record: ActionRecord
    running: bool
    ends_at: datetime | None
    alive: bool  # its process still runs (a running window whose process died is stale)

    @property
    def left_s(self) -> float:
        if self.ends_at is None:
            return 0.0
        return max(0.0, (self.ends_at - datetime.now(UTC)).total_seconds())


def last_window(ledger: Ledger, stack: str, *, host: str) -> WindowState | None:
    found = ledger.actions(stack=stack, action=WINDOW, last=1)
    if not found:
        return None
    rec = found[0]
    try:
        ends: datetime | None = datetime.fromisoformat(str(rec.details.get("ends_at")))
    except ValueError:
        ends = None
    running = rec.status == "running"
    alive = running and (rec.host != host or _pid_alive(rec.pid))
    return WindowState(rec, running, ends, alive)


def _pid_alive(pid: int) -> bool:
    from releasegate.identity import pid_alive

    return pid_alive(pid)


def accept(ledger: Ledger, actor: Any, state: WindowState, reason: str) -> str:
    """Record that `actor` ends the window early, and why: the window reads it between
    rounds. Returns the action's id."""
    rec = state.record
    aid = ledger.begin_action(
        stack=rec.stack,
        env=rec.env,
        action=ACCEPT,
        version=rec.version,
        notes=f"the watch window of {rec.version} accepted early",
        reason=reason,
        details={"window": rec.action_id, "left_s": round(state.left_s, 1)},
        user=actor.user,
        host=actor.host,
        pid=actor.pid if hasattr(actor, "pid") else os.getpid(),
    )
    ledger.end_action(aid, "success")
    return aid
