"""A flag change is a change like a deploy: the stack's lock, a gate (prod needs a reason),
the new value written on every host through the one executor, the service reloaded or
restarted as configured, the smoke checks, every step recorded; a failure puts the old
files back, applies and smokes them again, and says so (exit 4).

Also here: what a deploy records of its flags (`record_release_flags`) and what a rollback
puts back (`restore_release_flags`), so a release comes back with the flags it ran with."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate.engine.base import EngineBase, HostOptions, RunOutcome
from releasegate.errors import BadInput, ExitCode
from releasegate.execution.interrupts import Interrupted, LockLost, safe_points
from releasegate.flags import flagd, state, values
from releasegate.flags.hostfiles import HostFiles, read_program, write_program
from releasegate.model import CheckResult, Event
from releasegate.ops import Program
from releasegate.runtimes.base import PhaseResult

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.execution.hosts import HostOutcome, StackHosts
    from releasegate.flags.config import FlagsConfig
    from releasegate.model import ActionRecord
    from releasegate.workflows.steps import Run

StepBody = tuple[bool, str, list[CheckResult], dict[str, Any]]
HISTORY_SCAN = 2000  # newest top-level actions of a stack searched for a release's flags


@dataclass(frozen=True)
class FlagRequest:
    """One `releasegate flag set` (or the set a `flag rollback` makes)."""

    stack: str
    env: str
    name: str
    value: str | None  # None: remove the flag from its files (it was not set before)
    reason: str = ""
    targeting: dict[str, Any] | None = None  # flagd: a JsonLogic rule
    hosts: HostOptions = field(default_factory=HostOptions)
    rollback_of: str = ""  # the flag action this one undoes


@dataclass
class FlagRow:
    """One declared flag as `flag list` shows it."""

    name: str
    type: str
    default: str | None
    description: str
    stores: list[str]
    hosts: dict[str, dict[str, Any]]  # host -> {"value", "targeting", "stores"} or {"error"}
    value: str | None  # the most common value over the hosts
    recorded: str | None  # what the ledger last set (None: never set by releasegate)
    drift: list[str]
    secret: bool = False


def flags_of(stack: StackConfig) -> FlagsConfig:
    if stack.flags is None:
        raise BadInput(
            f"stack {stack.name} has no flags: section",
            hint="declare them in releasegate.yaml: flags: {dotenv: shared/.env, declared: ...}",
        )
    return stack.flags


def paths(stack: StackConfig, cfg: FlagsConfig) -> dict[str, PurePosixPath]:
    root = PurePosixPath(str(stack.dir))
    return {s: root / cfg.path_of(s) for s in ("dotenv", "flagd") if getattr(cfg, s)}


def read_hosts(hosts: StackHosts, stack: StackConfig, cfg: FlagsConfig) -> dict[str, HostFiles]:
    """Each active host's flag files (one program per host, side by side over SSH)."""
    where = paths(stack, cfg)
    return hosts.run_programs(
        "flags",
        lambda h, rt: read_program(where),
        hosts=None,
        report=False,
        failed=lambda h, why: HostFiles(False, why),
    )


def _release_of(rec: ActionRecord) -> str | None:
    if rec.action in ("deploy", "rollback"):
        return rec.version
    release = rec.details.get("release")
    return release if isinstance(release, str) else None


def release_flags(engine: EngineBase, stack: StackConfig, version: str) -> ActionRecord | None:
    """The newest successful deploy, rollback or flag change recorded with `version`
    running that kept a flags snapshot: the flags that went with that release."""
    found = engine.ledger.actions(stack=stack.name, status="success", last=HISTORY_SCAN)
    for rec in reversed(found):
        if rec.action not in ("deploy", "rollback", "flag"):
            continue
        if _release_of(rec) == version and isinstance(rec.details.get("flags"), dict):
            engine.ledger.ensure_action_trusted(rec.action_id)  # acted upon: proven first
            return rec
    return None


def record_release_flags(engine: EngineBase, run: Run) -> None:
    """After a deploy's smoke passed: the flags it runs with go on its close row."""
    cfg = run.stack.flags
    if cfg is None:
        return
    try:
        read = read_hosts(run.hosts, run.stack, cfg)
        good = {h: f.texts for h, f in read.items() if f.ok}
        if good:
            run.out.details["flags"] = state.snapshot(cfg, good)
    except BadInput as exc:  # a damaged flag file must not fail a release that is live
        run.out.details["flags_error"] = exc.message


def restore_release_flags(engine: EngineBase, run: Run) -> StepBody:
    """A rollback's `flags` step: the target release's recorded flags written back on the
    hosts it moves (before they restart). Secret flags were never recorded: left as is."""
    stack, target = run.stack, run.out.version
    cfg = stack.flags
    if cfg is None:
        return True, "no flags configured", [], {}
    rec = release_flags(engine, stack, target)
    if rec is None:
        record_release_flags(engine, run)  # what it runs with from now on
        return True, f"no flags were recorded with {target}: left as they are", [], {}
    snap: dict[str, Any] = rec.details["flags"]
    read = read_hosts(run.hosts, stack, cfg)
    bad = {h: f.error for h, f in read.items() if not f.ok}
    if bad:
        return False, "; ".join(f"{h}: {why}" for h, why in bad.items()), [], {}
    wanted = {
        n: s for n, s in snap.items() if n in cfg.declared and isinstance(s, dict) and "value" in s
    }
    changes: dict[str, dict[str, str]] = {}
    try:
        for host, files in read.items():
            texts = dict(files.texts)
            for name, saved in wanted.items():
                value = saved["value"]
                if value is not None:
                    value = values.normalize(cfg.declared[name].type, str(value))
                targeting = saved.get("targeting") if "flagd" in cfg.stores_of(name) else None
                current = state.value_of(state.states(cfg, texts, name))
                if current.value == value and (current.targeting or None) == (targeting or None):
                    continue
                texts.update(state.changed(cfg, texts, name, value, targeting or None))
            changes[host] = {
                s: t for s, t in texts.items() if t is not None and t != files.texts[s]
            }
    except BadInput as exc:
        return False, f"the flags recorded with {target} cannot be written: {exc.message}", [], {}
    outcomes = _write(engine, run.hosts, stack, cfg, changes)
    failed = [h for h, o in outcomes.items() if not o.ok]
    names = ", ".join(wanted) or "none"
    run.out.details["flags"] = snap
    evidence = {"from": rec.action_id, "hosts": {h: o.summary for h, o in outcomes.items()}}
    if failed:
        return False, "flags not written on " + ", ".join(failed), [], evidence
    moved = sum(1 for c in changes.values() if c)
    summary = f"flags of {target} ({names}) " + (
        f"written on {moved} host(s)" if moved else "already in place"
    )
    return True, summary, [], evidence


def _write(
    engine: EngineBase,
    hosts: StackHosts,
    stack: StackConfig,
    cfg: FlagsConfig,
    changes: dict[str, dict[str, str]],
) -> dict[str, HostOutcome]:
    """Each host's changed files written (host -> store -> text); hosts with none skip."""
    from releasegate.execution.hosts import HostOutcome

    where = paths(stack, cfg)

    def one(host: str, rt: Any) -> Program[HostOutcome]:
        writes = {where[s]: text for s, text in changes.get(host, {}).items()}
        phase = PhaseResult(True, "")
        if writes:
            yield from write_program(phase, rt.redact, writes)
        files = ", ".join(str(p) for p in writes) or "nothing to change"
        summary = phase.summary or f"wrote {files}"
        return HostOutcome(host, phase.ok, summary, phase.evidence())

    chosen = [h for h in hosts.active if h in changes]
    return hosts.fan_out("flags", one, hosts=chosen)


def _judge(outcomes: dict[str, HostOutcome]) -> StepBody:
    failed = [h for h, o in outcomes.items() if not o.ok]
    evidence = {"hosts": {h: o.as_dict() for h, o in outcomes.items()}}
    checks = [c for o in outcomes.values() for c in o.checks]
    if len(outcomes) == 1:
        only = next(iter(outcomes.values()))
        return only.ok, only.summary, checks, evidence
    summary = f"{len(outcomes) - len(failed)} of {len(outcomes)} host(s) passed"
    if failed:
        summary += "; failed: " + "; ".join(f"{h}: {outcomes[h].summary}" for h in failed)
    return not failed, summary, checks, evidence


def _text(value: str | None) -> str:
    return "(unset)" if value is None else value


class FlagsFlow(EngineBase):
    """`flag set`, `flag rollback`, `flag list`, `flag history`."""

    # -- reading ---------------------------------------------------------------------------
    def flag_history(
        self, name: str, env: str, flag: str | None = None, last: int | None = None
    ) -> list[ActionRecord]:
        stack = self.stack(name, env)
        rows = self.ledger.actions(stack=stack.name, action="flag", last=last)
        return [r for r in rows if flag is None or (r.details.get("flag") or r.version) == flag]

    def flag_list(self, name: str, env: str, options: HostOptions | None = None) -> list[FlagRow]:
        stack = self.stack(name, env)
        cfg = flags_of(stack)
        hosts = self._hosts(stack, "flags", options)
        try:
            read = read_hosts(hosts, stack, cfg)
        finally:
            hosts.close()
        recorded = self._recorded(stack)
        rows = []
        for flag, decl in cfg.declared.items():
            per_host: dict[str, dict[str, Any]] = {}
            drift: list[str] = []
            seen: list[str | None] = []
            for host, files in read.items():
                if not files.ok:
                    per_host[host] = {"error": files.error}
                    drift.append(f"{host}: {files.error}")
                    continue
                try:
                    found = state.states(cfg, files.texts, flag)
                except BadInput as exc:
                    per_host[host] = {"error": exc.message}
                    drift.append(f"{host}: {exc.message}")
                    continue
                one = state.value_of(found)
                shown = state.shown(cfg, flag, one.value)
                per_host[host] = {
                    "value": shown,
                    "targeting": flagd.summary(one.targeting) or None,
                    "stores": {s: state.shown(cfg, flag, v.value) for s, v in found.items()},
                }
                seen.append(one.value)
                if (why := state.drift_in_stores(found)) and not decl.secret:
                    drift.append(f"{host}: {why}")
                if one.value is not None:
                    try:
                        values.normalize(decl.type, one.value)
                    except BadInput as exc:
                        drift.append(f"{host}: {state.shown(cfg, flag, one.value)}: {exc.message}")
            if len(set(seen)) > 1:
                drift.append("hosts differ")
            value = max(set(seen), key=seen.count) if seen else None
            last = recorded.get(flag)
            if last is not None and seen and value != last[0] and not decl.secret:
                drift.append(f"changed outside releasegate: the ledger last set {last[0]}")
            rows.append(
                FlagRow(
                    flag,
                    decl.type,
                    decl.default_text,
                    decl.description,
                    cfg.stores_of(flag),
                    per_host,
                    state.shown(cfg, flag, value),
                    state.shown(cfg, flag, last[0]) if last else None,
                    drift,
                    decl.secret,
                )
            )
        return rows

    def _recorded(self, stack: StackConfig) -> dict[str, tuple[str | None]]:
        """flag -> (value,) as the newest successful flag change set it (masked ones skip)."""
        found: dict[str, tuple[str | None]] = {}
        for rec in self.ledger.actions(stack=stack.name, action="flag", status="success"):
            flag = rec.details.get("flag")
            if isinstance(flag, str) and rec.details.get("new") != state.MASK:
                found[flag] = (rec.details.get("new"),)
        return found

    # -- changing ----------------------------------------------------------------------------
    def flag_rollback(
        self, name: str, env: str, flag: str, *, reason: str = "", hosts: HostOptions | None = None
    ) -> RunOutcome:
        """Back to the value the newest successful change of `flag` replaced."""
        stack = self.stack(name, env)
        cfg = flags_of(stack)
        self._declared(cfg, flag)
        done = [
            r
            for r in self.ledger.actions(stack=stack.name, action="flag", status="success")
            if r.details.get("flag") == flag and not r.details.get("unchanged")
        ]
        if not done:
            raise BadInput(
                f"{flag} was never changed by releasegate on {stack.name}: nothing to go back to"
            )
        last = done[-1]
        self.ledger.ensure_action_trusted(last.action_id)
        old = last.details.get("old")
        if old == state.MASK or cfg.declared[flag].secret:
            raise BadInput(
                f"{flag} is secret: its previous value was never recorded",
                hint=f"set it again: releasegate flag set {stack.name} {stack.env} {flag} VALUE",
            )
        if "old" not in last.details:
            raise BadInput(f"the change {last.action_id[:12]} did not record the value it replaced")
        request = FlagRequest(
            stack.name,
            stack.env,
            flag,
            old if isinstance(old, str) else None,
            reason=reason,
            targeting=last.details.get("old_targeting") or None,
            hosts=hosts or HostOptions(),
            rollback_of=last.action_id,
        )
        return self.flag_set(request)

    @staticmethod
    def _declared(cfg: FlagsConfig, flag: str) -> None:
        if flag not in cfg.declared:
            from releasegate.config.values import did_you_mean

            known = list(cfg.declared)
            raise BadInput(
                f"flag {flag[:80]!r} is not declared{did_you_mean(flag, known)}",
                hint="declared flags: " + ", ".join(known),
            )

    def flag_set(self, request: FlagRequest) -> RunOutcome:
        stack = self.stack(request.stack, request.env)
        cfg = flags_of(stack)
        self._declared(cfg, request.name)
        decl = cfg.declared[request.name]
        value = None if request.value is None else values.normalize(decl.type, request.value)
        token = os.urandom(6).hex()
        with safe_points(), self._locked(stack, "flag", request.name, token):
            hosts = self._hosts(stack, token, request.hosts)
            if decl.secret and value is not None:
                hosts.redact.add(value)  # nor in a command's output or an answer's evidence
            opened: list[RunOutcome] = []
            try:
                return self._flag_run(stack, cfg, hosts, request, value, opened)
            except Interrupted as stop:
                if not opened:
                    raise
                return self._flag_interrupted(opened[0], stop)
            finally:
                hosts.close()

    def _flag_interrupted(self, out: RunOutcome, stop: Interrupted) -> RunOutcome:
        """Ctrl-C or SIGTERM: the step was recorded `aborted`; the run is closed so, and says
        what to look at (a write may have reached some hosts)."""
        if isinstance(stop, LockLost):
            return self._lock_lost(out, stop)
        where = out.steps[-1].step if out.steps else "start"
        why = f"interrupted by {stop.name} during {where}"
        written = any(s.step in ("write", "restore") for s in out.steps)
        hint = (
            f"the new value may be on some hosts: releasegate flag list {out.stack} {out.env}"
            if written
            else "nothing was written"
        )
        if out.ended_at is None:
            self._close(out, "aborted", ExitCode(stop.exit_code), why, notes=why, hint=hint)
        return out

    def _flag_run(
        self,
        stack: StackConfig,
        cfg: FlagsConfig,
        hosts: StackHosts,
        request: FlagRequest,
        value: str | None,
        opened: list[RunOutcome],
    ) -> RunOutcome:
        name = request.name
        new_shown = state.shown(cfg, name, value)
        running = hosts.running_version()
        target = flagd.summary(request.targeting)

        def noted(change: str) -> str:
            text = change + (f" ({target})" if target else "")
            if request.rollback_of:
                text += f"; rollback of {request.rollback_of[:12]}"
            return text + (f": {request.reason}" if request.reason else "")

        notes = noted(f"{name} -> {_text(new_shown)}")
        out = RunOutcome(
            "flag", stack.name, stack.env, name, "running", ExitCode.FAILED, "", notes=notes
        )
        out.details.update(
            {
                "flag": name,
                "new": new_shown,
                "targeting": request.targeting if not cfg.declared[name].secret else None,
                "stores": cfg.stores_of(name),
                "release": running,
                **({"rollback_of": request.rollback_of} if request.rollback_of else {}),
            }
        )
        out.action_id = self._begin(
            stack, "flag", name, notes=notes, reason=request.reason, details=dict(out.details)
        )
        opened.append(out)
        self.emit(
            Event(
                "run_started",
                stack.name,
                message=f"flag {name} on {stack.name}: {_text(new_shown)} {target}".rstrip(),
                data={"action": "flag", "flag": name},
            )
        )
        gate = self._step(out, stack, "gate", lambda: self._flag_gate(stack, request))
        if not gate.ok:
            return self._close(
                out, "refused", ExitCode.REFUSED, gate.summary, notes=f"refused: {gate.summary}"
            )
        read: dict[str, HostFiles] = {}

        def read_step() -> StepBody:
            read.update(read_hosts(hosts, stack, cfg))
            bad = {h: f.error for h, f in read.items() if not f.ok}
            if bad:
                return False, "; ".join(f"{h}: {why}" for h, why in bad.items()), [], {}
            olds = {h: state.value_of(state.states(cfg, f.texts, name)) for h, f in read.items()}
            if cfg.declared[name].secret:
                hosts.redact.add(*(o.value for o in olds.values() if o.value))
            first = next(iter(olds.values()))
            out.details["old"] = state.shown(cfg, name, first.value)
            if first.targeting and not cfg.declared[name].secret:
                out.details["old_targeting"] = first.targeting
            differ = len({(o.value, str(o.targeting)) for o in olds.values()}) > 1
            shown = state.shown(cfg, name, first.value)
            summary = f"{name} is {shown if shown is not None else '(unset)'}"
            if differ:
                summary += (
                    " on the first host; the hosts differ (each gets its own back on failure)"
                )
            return True, summary, [], {"hosts": list(read)}

        res = self._step(out, stack, "read", read_step)
        if not res.ok:
            return self._close(
                out, "failed", ExitCode.FAILED, f"could not read the flags: {res.summary}",
                ledger_status="fail", hint="nothing was changed",
            )  # fmt: skip
        try:
            changes = {
                h: state.changed(cfg, f.texts, name, value, request.targeting)
                for h, f in read.items()
            }
        except BadInput as exc:
            return self._close(
                out, "refused", ExitCode.REFUSED, exc.message, notes=f"refused: {exc.message}"
            )
        if all(t == read[h].texts.get(st) for h, c in changes.items() for st, t in c.items()):
            out.details["flags"] = state.snapshot(cfg, {h: f.texts for h, f in read.items()})
            out.details["unchanged"] = True  # never "the previous value" of a rollback
            message = f"{name} is already {_text(new_shown)} on every host: nothing to change"
            return self._close(out, "success", ExitCode.OK, message, notes=noted(message))
        # What goes back on failure: each host's files as they were; a file that did not
        # exist keeps what else was written to it since, without this flag.
        olds = {
            h: {
                s: read[h].texts.get(s) or state.changed(cfg, {s: t}, name, None, None)[s]
                for s, t in c.items()
            }
            for h, c in changes.items()
        }
        steps = self._apply_steps(stack, cfg, hosts, running, changes)
        for step_name, body in steps:
            res = self._step(out, stack, step_name, body)
            if not res.ok:
                return self._flag_back(
                    out, stack, cfg, hosts, running, olds, step_name, res.summary
                )
        out.details["flags"] = self._snapshot_after(stack, cfg, hosts)
        old = out.details.get("old")
        message = f"{name}: {old if old is not None else '(unset)'} -> "
        message += f"{new_shown if new_shown is not None else '(unset)'} on {stack.name}"
        message += f" ({target})" if target else ""
        notes = noted(f"{name}: {_text(old)} -> {_text(new_shown)}")
        return self._close(out, "success", ExitCode.OK, message, notes=notes)

    def _flag_gate(self, stack: StackConfig, request: FlagRequest) -> StepBody:
        checks = []
        if stack.env == "prod" and not request.reason.strip():
            checks.append(
                CheckResult(
                    "reason",
                    False,
                    "a flag change on prod needs --reason TEXT",
                    hint="say why: it is recorded with your name",
                )
            )
        else:
            checks.append(CheckResult("reason", True, request.reason or "(none needed)"))
        cfg = flags_of(stack)
        if request.targeting and "flagd" not in cfg.stores_of(request.name):
            checks.append(
                CheckResult(
                    "targeting",
                    False,
                    f"{request.name} has no flagd store: targeting needs flags.flagd",
                )
            )
        bad = [c for c in checks if not c.ok]
        return not bad, "; ".join(c.summary for c in bad) or "gates passed", checks, {}

    def _apply_steps(
        self,
        stack: StackConfig,
        cfg: FlagsConfig,
        hosts: StackHosts,
        running: str | None,
        changes: dict[str, dict[str, str]],
    ) -> list[tuple[str, Callable[[], StepBody]]]:
        """write, then apply (reload or restart) and smoke, as configured."""
        steps: list[tuple[str, Callable[[], StepBody]]] = [
            ("write", lambda: _judge(_write(self, hosts, stack, cfg, changes)))
        ]
        if running is None:
            return steps  # nothing runs yet: the next deploy starts with these values
        if cfg.apply == "restart":
            steps.append(("restart", lambda: _judge(hosts.restart(running, running, hosts.active))))
        elif cfg.apply == "reload":
            steps.append(("reload", lambda: _judge(self._reload(stack, cfg, hosts, running))))
        steps.append(("smoke", lambda: self._flag_smoke(stack, hosts, running)))
        return steps

    def _reload(
        self, stack: StackConfig, cfg: FlagsConfig, hosts: StackHosts, running: str
    ) -> dict[str, HostOutcome]:
        from releasegate.execution.hosts import HostOutcome

        assert cfg.reload is not None  # the config requires it for apply: reload
        argv = cfg.reload.argv()

        def one(host: str, rt: Any) -> Program[HostOutcome]:
            phase = PhaseResult(True, "reload command passed")
            result = yield from phase.step(
                rt.redact,
                argv,
                cwd=rt.smoke_dir(),
                env=rt.env_for(running),
                timeout=stack.fleet.command_timeout,
                label="reload",
            )
            if not result.ok:
                phase.summary = f"reload command failed: {result.describe()}"
            return HostOutcome(host, phase.ok, phase.summary, phase.evidence())

        return hosts.fan_out("reload", one)

    def _flag_smoke(self, stack: StackConfig, hosts: StackHosts, running: str) -> StepBody:
        if not stack.smoke:
            return True, "no smoke checks configured", [], {}
        outcomes = hosts.smoke(running)
        for outcome in outcomes.values():
            for check in outcome.checks:
                self.emit(
                    Event("check", stack.name, step="smoke", ok=check.ok, message=check.summary)
                )
        return _judge(outcomes)

    def _snapshot_after(
        self, stack: StackConfig, cfg: FlagsConfig, hosts: StackHosts
    ) -> dict[str, Any]:
        read = read_hosts(hosts, stack, cfg)
        try:
            return state.snapshot(cfg, {h: f.texts for h, f in read.items() if f.ok})
        except BadInput:
            return {}

    def _flag_back(
        self,
        out: RunOutcome,
        stack: StackConfig,
        cfg: FlagsConfig,
        hosts: StackHosts,
        running: str | None,
        olds: dict[str, dict[str, str]],
        failed_step: str,
        why: str,
    ) -> RunOutcome:
        """The change failed: each host's files as they were before (a file that did not
        exist loses the flag again), applied and smoked."""
        name = out.version
        steps: list[tuple[str, Callable[[], StepBody]]] = [
            ("restore", lambda: _judge(_write(self, hosts, stack, cfg, olds)))
        ]
        steps += self._apply_steps(stack, cfg, hosts, running, {})[1:]
        old = out.details.get("old")
        what = why if failed_step == "smoke" else f"{failed_step} failed: {why}"
        for step_name, body in steps:
            res = self._step(out, stack, step_name, body)
            if not res.ok:
                message = f"{what}; putting {name} back to {old} failed too: {res.summary}"
                return self._close(
                    out, "failed", ExitCode.FAILED, message, ledger_status="fail",
                    notes=message[:300], hint="the stack needs attention: see the record",
                )  # fmt: skip
        message = f"{what}; {name} is back to {old if old is not None else '(unset)'}"
        return self._close(
            out, "rolled_back", ExitCode.ROLLED_BACK, message, ledger_status="fail",
            notes=f"{name} restored to {old}: {failed_step} failed"[:300],
        )  # fmt: skip
