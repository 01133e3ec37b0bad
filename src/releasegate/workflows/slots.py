"""Blue/green slots behind a real proxy (stacks with `proxy:`): the step bodies of
start-slot, smoke-slot, switch-traffic, drain and stop-old-slot, and what a deploy does when
one fails. The plan (releasegate.proxy.slots) says which slot; this module does it, each step
recorded by the engine like every other.

The proxy itself says which slot is live; `<dir>/slots/<slot>` remembers which version was
started in each slot, so a rollback to the version the other slot still runs is a switch."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate import names
from releasegate.errors import ExitCode
from releasegate.execution.hosts import HostOutcome
from releasegate.ops import Program
from releasegate.proxy.base import ProxyError, TrafficSwitch, adapter_for
from releasegate.proxy.slots import SlotFacts, slot_env, slot_url
from releasegate.runtimes.base import PhaseResult
from releasegate.workflows.steps import Run, StepBody, StepsOps

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.engine.base import RunOutcome
    from releasegate.model import Step
    from releasegate.runtimes.base import HostRuntime

SLOT_FILE_MAX = 200  # bytes of a slot file read at most


def slot_file(stack: StackConfig, slot: str) -> Path:
    return Path(stack.dir) / "slots" / slot


def read_slot_version(stack: StackConfig, slot: str) -> str | None:
    """The version started in `slot`, if its file holds a valid version name."""
    try:
        with open(slot_file(stack, slot), "rb") as fh:
            text = fh.read(SLOT_FILE_MAX).decode("utf-8", "replace").strip()
    except OSError:
        return None
    try:
        return names.check("version", text)
    except Exception:  # a file changed by hand: not a version this run trusts
        return None


def write_slot_version(stack: StackConfig, slot: str, version: str | None) -> None:
    path = slot_file(stack, slot)
    if version is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{slot}.{os.getpid()}")
    tmp.write_text(version + "\n")
    os.replace(tmp, path)


def read_slot_facts(stack: StackConfig) -> SlotFacts | None:
    """The proxy's live slot and each slot's version (None: the stack has no proxy)."""
    if stack.proxy is None:
        return None
    versions = {
        slot: v for slot in ("blue", "green") if (v := read_slot_version(stack, slot)) is not None
    }
    try:
        live = adapter_for(stack.proxy).current()
    except ProxyError as exc:
        return SlotFacts(None, versions, error=f"the {stack.proxy.kind} proxy: {exc}")
    return SlotFacts(live, versions)


class SlotOps(StepsOps):
    def _traffic(self, stack: StackConfig) -> TrafficSwitch:
        assert stack.proxy is not None  # slot steps are planned only for stacks with a proxy
        return adapter_for(stack.proxy)

    def slot_bodies(self, run: Run) -> dict[str, Callable[[Step], StepBody]]:
        return {
            "start-slot": lambda s: self._start_slot(run, s),
            "smoke-slot": lambda s: self._smoke_slot(run, s),
            "switch-traffic": lambda s: self._switch_traffic(run, s),
            "drain": lambda s: self._drain(run),
            "stop-old-slot": lambda s: self._stop_slot(run, str(s.details.get("old") or "")),
        }

    # -- programs on the host: the runtime starts and stops a slot (slot_start_ops, ...) --
    def _slot_program(
        self, run: Run, phase: str, ops: Callable[[HostRuntime], Program[PhaseResult]]
    ) -> dict[str, HostOutcome]:
        def program(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            done = yield from ops(rt)
            return HostOutcome(host, done.ok, done.summary, done.evidence())

        return run.hosts.fan_out(phase, program)

    def _start_slot(self, run: Run, step: Step) -> StepBody:
        facts = read_slot_facts(run.stack)
        if facts is not None and facts.error:
            return False, facts.error + ": nothing was started", [], {}
        slot, version = str(step.details["slot"]), run.out.version
        if facts is not None and facts.live == slot:  # moved since the plan: never touch it
            return False, f"slot {slot} is live now: refusing to restart it", [], {}
        was = read_slot_version(run.stack, slot)
        write_slot_version(run.stack, slot, None)
        started = self._slot_program(
            run, "start-slot", lambda rt: rt.slot_start_ops(slot, version, run.previous, was)
        )
        evidence: dict[str, Any] = {
            "slot": slot, "start": {h: o.as_dict() for h, o in started.items()},
        }  # fmt: skip
        ok = all(o.ok for o in started.values())
        if ok:
            write_slot_version(run.stack, slot, version)
        summary = "; ".join(o.summary for o in started.values())
        return ok, summary, [], evidence

    def _smoke_slot(self, run: Run, step: Step) -> StepBody:
        stack, slot, version = run.stack, str(step.details["slot"]), run.out.version
        assert stack.proxy is not None
        if not stack.smoke:
            return True, "no smoke checks configured", [], {"slot": slot}
        address = stack.proxy.address(slot)
        env_extra = slot_env(stack.proxy, slot)

        def program(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            from releasegate.config.schema import HttpCheck
            from releasegate.smoke import check_program

            results = []
            for check in stack.smoke:
                url = slot_url(check.http, address) if isinstance(check, HttpCheck) else None
                result = yield from check_program(
                    check, version=version, url=url, cwd=rt.smoke_dir(),
                    env={**rt.env_for(version), **env_extra}, redact=rt.redact,
                )  # fmt: skip
                results.append(result)
            bad = [c for c in results if not c.ok]
            summary = (
                f"{len(results)} check(s) passed on slot {slot} ({address})"
                if not bad
                else f"smoke failed on slot {slot}: "
                + "; ".join(f"{c.name}: {c.summary}" for c in bad)
            )
            return HostOutcome(host, not bad, summary, checks=results)

        outcomes = run.hosts.fan_out("smoke-slot", program)
        checks = [c for o in outcomes.values() for c in o.checks]
        ok = all(o.ok for o in outcomes.values())
        summary = "; ".join(o.summary for o in outcomes.values())
        return ok, summary, checks, {"slot": slot, "address": address}

    def _switch_traffic(self, run: Run, step: Step) -> StepBody:
        slot = str(step.details["slot"])
        result = self._traffic(run.stack).switch(slot)
        run.out.details["slot"] = slot
        return result.ok, result.summary, [], {"slot": slot, **result.evidence}

    def _drain(self, run: Run) -> StepBody:
        assert run.stack.proxy is not None
        result = self._traffic(run.stack).drain(run.stack.proxy.drain_s)
        return result.ok, result.summary, [], result.evidence

    def _stop_slot(self, run: Run, slot: str) -> StepBody:
        """Stop what runs in `slot` (the runtime's slot_stop_ops)."""
        if slot not in ("blue", "green"):
            return True, "no old slot to stop", [], {}
        version = read_slot_version(run.stack, slot) or run.out.version
        outcomes = self._slot_program(run, "stop-slot", lambda rt: rt.slot_stop_ops(slot, version))
        ok = all(o.ok for o in outcomes.values())
        if ok and all(o.evidence.get("stopped") for o in outcomes.values()):  # else still warm
            write_slot_version(run.stack, slot, None)
        evidence = {
            "slot": slot,
            "version": version,
            **{h: o.as_dict() for h, o in outcomes.items()},
        }
        return ok, "; ".join(o.summary for o in outcomes.values()), [], evidence

    # -- a deploy's slot step failed ------------------------------------------------------------
    def _slot_not_live(self, run: Run, step_name: str, summary: str) -> RunOutcome:
        """start-slot or smoke-slot failed: the traffic never moved. The new slot is stopped
        (recorded), and the run ends failed with the old slot still serving."""
        slot = next((str(s.details.get("slot")) for s in run.plan.steps if s.name == step_name), "")
        facts = read_slot_facts(run.stack)
        if slot in ("blue", "green") and not (facts is not None and facts.live == slot):
            self._step(run.out, run.stack, "stop-slot", lambda: self._stop_slot(run, slot))
        serving = f"slot {facts.live}" if facts is not None and facts.live else "no slot"
        why = summary if step_name == "smoke-slot" else f"{step_name} failed: {summary}"
        return self._close(
            run.out, "failed", ExitCode.FAILED, why, ledger_status="fail", notes=why[:200],
            hint=f"the traffic never moved: {serving} still serves {run.previous or 'nothing'}",
        )  # fmt: skip
