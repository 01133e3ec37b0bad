"""Blue/green slots behind a real proxy (stacks with `proxy:`): the step bodies of
start-slot, smoke-slot, switch-traffic, drain and stop-old-slot, and what a deploy does when
one fails. The plan (releasegate.proxy.slots) says which slot; this module does it, each step
recorded by the engine like every other.

Every host of the stack runs its own proxy in front of its own two slots (Kamal's model; the
local host is a set of one): each step is one program per host, through `hosts.fan_out`.
The proxy itself says which slot is live; `<dir>/slots/<slot>` on each host remembers which
version was started in each slot, so a rollback to the version the other slot still runs is
a switch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate import names
from releasegate.errors import ExitCode
from releasegate.execution.hosts import HostOutcome
from releasegate.hosttext import read_program, write_argv
from releasegate.ops import Program, Talk, TalkReply, chain, cmd
from releasegate.proxy.base import ProxyError, SwitchResult, adapter_for
from releasegate.proxy.slots import SlotFacts, combine, slot_env, slot_url
from releasegate.transport.base import CommandResult
from releasegate.workflows.steps import Run, StepBody, StepsOps

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.engine.base import RunOutcome
    from releasegate.execution.hosts import StackHosts
    from releasegate.model import Step
    from releasegate.runtimes.base import HostRuntime

SLOT_FILE_MAX = 200  # bytes of a slot file read at most
PROBE_S = 2.0  # seconds a warm slot's address may take to accept a connection


def slot_file(stack: StackConfig, slot: str) -> PurePosixPath:
    """`<dir>/slots/<slot>`: a path on each host."""
    return PurePosixPath(str(stack.dir)) / "slots" / slot


def read_slot_version(stack: StackConfig, slot: str) -> Program[str | None]:
    """The version started in `slot` on the host, if its file holds a valid version name."""
    found = yield from read_program(slot_file(stack, slot), max_bytes=SLOT_FILE_MAX, timeout=30)
    if not found.ok or found.text is None:
        return None
    try:
        return names.check("version", found.text.strip())
    except Exception:  # a file changed by hand: not a version this run trusts
        return None


def write_slot_version(stack: StackConfig, slot: str, version: str | None) -> Program[bool]:
    """Record what `slot` runs on the host (None: nothing), in one atomic rename."""
    path = slot_file(stack, slot)
    if version is None:
        gone: CommandResult = yield cmd(["rm", "-f", "--", str(path)], timeout=30)
        return gone.ok
    made: CommandResult = yield cmd(
        chain([["mkdir", "-p", "--", str(path.parent)], write_argv(path)]),
        stdin=version + "\n",
        timeout=30,
    )
    return made.ok


def host_slot_facts(stack: StackConfig, host: str) -> Program[SlotFacts]:
    """One host's facts: its proxy's live slot and its slot files (`host`: its address)."""
    assert stack.proxy is not None
    versions: dict[str, str] = {}
    for slot in ("blue", "green"):
        version = yield from read_slot_version(stack, slot)
        if version is not None:
            versions[slot] = version
    try:
        live = yield from adapter_for(stack.proxy, host).current()
    except ProxyError as exc:
        return SlotFacts(None, versions, error=f"the {stack.proxy.kind} proxy: {exc}")
    facts = SlotFacts(live, versions)
    if live is not None and facts.free in versions:
        # Warm only if something still listens there: a restore, a crash or a reboot may
        # have stopped the slot its file names, and a switch to it would fail its smoke.
        probe: TalkReply = yield Talk(
            stack.proxy.address(facts.free, host), b"", timeout=PROBE_S, connect_only=True
        )
        if probe.error:
            versions.pop(facts.free)
    return SlotFacts(live, versions)


def read_slot_facts(hosts: StackHosts) -> SlotFacts | None:
    """The proxies' live slot and each slot's version, the same on every active host (None:
    the stack has no proxy); hosts that cannot be asked or disagree give an error."""
    stack = hosts.stack
    if stack.proxy is None:
        return None
    found = hosts.run_programs(
        "slots",
        lambda h, rt: host_slot_facts(stack, hosts.addresses[h]),
        hosts=None,
        report=False,
        failed=lambda h, why: SlotFacts(None, {}, error=why),
    )
    return combine(found, stack.proxy.kind)


def _switch_outcome(host: str, result: SwitchResult) -> HostOutcome:
    return HostOutcome(host, result.ok, result.summary, dict(result.evidence))


class SlotOps(StepsOps):
    def slot_bodies(self, run: Run) -> dict[str, Callable[[Step], StepBody]]:
        return {
            "slot-facts": lambda s: (False, str(s.details.get("error") or ""), [], {}),
            "start-slot": lambda s: self._start_slot(run, s),
            "smoke-slot": lambda s: self._smoke_slot(run, s),
            "switch-traffic": lambda s: self._switch_traffic(run, s),
            "drain": lambda s: self._drain(run),
            "stop-old-slot": lambda s: self._stop_slot(run, str(s.details.get("old") or "")),
        }

    def _judge(self, run: Run, outcomes: dict[str, HostOutcome], extra: dict[str, Any]) -> StepBody:
        """Every host must pass a slot step (no failure allowance: the hosts stay alike)."""
        ok = all(o.ok for o in outcomes.values())
        if len(outcomes) == 1:
            only = next(iter(outcomes.values()))
            return ok, only.summary, list(only.checks), {**extra, **only.evidence}
        bad = [h for h, o in outcomes.items() if not o.ok]
        summary = f"{len(outcomes) - len(bad)} of {len(outcomes)} host(s) passed"
        if bad:
            summary += "; failed: " + "; ".join(f"{h}: {outcomes[h].summary}" for h in bad)
        else:
            summary += ": " + next(iter(outcomes.values())).summary
        checks = [c for o in outcomes.values() for c in o.checks]
        return (
            ok,
            summary,
            checks,
            {**extra, "hosts": {h: o.as_dict() for h, o in outcomes.items()}},
        )

    def _start_slot(self, run: Run, step: Step) -> StepBody:
        stack, slot, version = run.stack, str(step.details["slot"]), run.out.version
        facts = read_slot_facts(run.hosts)
        if facts is not None and facts.error:
            return False, facts.error + ": nothing was started", [], {}
        if facts is not None and facts.live == slot:  # moved since the plan: never touch it
            return False, f"slot {slot} is live now: refusing to restart it", [], {}

        def program(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            was = yield from read_slot_version(stack, slot)
            yield from write_slot_version(stack, slot, None)  # half started: not a warm slot
            done = yield from rt.slot_start_ops(slot, version, run.previous, was)
            outcome = HostOutcome(host, done.ok, done.summary, done.evidence())
            if done.ok and not (yield from write_slot_version(stack, slot, version)):
                outcome.ok = False
                outcome.summary += f"; cannot write {slot_file(stack, slot)}"
            return outcome

        started = run.hosts.fan_out("start-slot", program)
        return self._judge(run, started, {"slot": slot})

    def _smoke_slot(self, run: Run, step: Step) -> StepBody:
        stack, slot, version = run.stack, str(step.details["slot"]), run.out.version
        proxy = stack.proxy
        assert proxy is not None
        if not stack.smoke:
            return True, "no smoke checks configured", [], {"slot": slot}

        def program(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            from releasegate.config.schema import HttpCheck
            from releasegate.smoke import check_program

            address = proxy.address(slot, run.hosts.addresses[host])
            env_extra = slot_env(proxy, slot, run.hosts.addresses[host])
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
            return HostOutcome(host, not bad, summary, {"address": address}, checks=results)

        outcomes = run.hosts.fan_out("smoke-slot", program)
        return self._judge(run, outcomes, {"slot": slot})

    def _switch_traffic(self, run: Run, step: Step) -> StepBody:
        """Every host's proxy to `slot`. When some refuse, the hosts that moved are switched
        back to the slot that was live (recorded): the hosts stay alike."""
        proxy = run.stack.proxy
        assert proxy is not None  # slot steps are planned only for stacks with a proxy
        slot, old = str(step.details["slot"]), step.details.get("old")
        run.out.details["slot"] = slot

        def switch(to: str) -> Callable[[str, HostRuntime], Program[HostOutcome]]:
            def program(host: str, rt: HostRuntime) -> Program[HostOutcome]:
                adapter = adapter_for(proxy, run.hosts.addresses[host])
                return _switch_outcome(host, (yield from adapter.switch(to)))

            return program

        moved = run.hosts.fan_out("switch-traffic", switch(slot))
        ok, summary, checks, evidence = self._judge(run, moved, {"slot": slot})
        went = [h for h, o in moved.items() if o.ok]
        if ok or not went or old not in ("blue", "green"):
            return ok, summary, checks, evidence
        back = run.hosts.fan_out("switch-back", switch(str(old)), hosts=went)
        evidence["switched_back"] = {h: o.as_dict() for h, o in back.items()}
        stuck = [h for h, o in back.items() if not o.ok]
        summary += f"; switched back to slot {old} on {', '.join(went)}"
        if stuck:
            summary += f" (failed on {', '.join(stuck)}: those hosts route to slot {slot})"
        return False, summary, checks, evidence

    def _drain(self, run: Run) -> StepBody:
        proxy = run.stack.proxy
        assert proxy is not None

        def program(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            adapter = adapter_for(proxy, run.hosts.addresses[host])
            return _switch_outcome(host, (yield from adapter.drain(proxy.drain_s)))

        return self._judge(run, run.hosts.fan_out("drain", program), {})

    def _stop_slot(self, run: Run, slot: str) -> StepBody:
        """Stop what runs in `slot` on every host (the runtime's slot_stop_ops)."""
        if slot not in ("blue", "green"):
            return True, "no old slot to stop", [], {}
        stack = run.stack

        def program(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            version = (yield from read_slot_version(stack, slot)) or run.out.version
            done = yield from rt.slot_stop_ops(slot, version)
            if done.ok and done.facts.get("stopped"):  # else it keeps running: still warm
                yield from write_slot_version(stack, slot, None)
            evidence = {"version": version, **done.evidence()}
            return HostOutcome(host, done.ok, done.summary, evidence)

        return self._judge(run, run.hosts.fan_out("stop-slot", program), {"slot": slot})

    # -- a deploy's slot step failed ------------------------------------------------------------
    def _slot_not_live(self, run: Run, step_name: str, summary: str) -> RunOutcome:
        """start-slot or smoke-slot failed: the traffic never moved. The new slot is stopped
        (recorded), and the run ends failed with the old slot still serving."""
        slot = next((str(s.details.get("slot")) for s in run.plan.steps if s.name == step_name), "")
        facts = read_slot_facts(run.hosts)
        known = facts is not None and not facts.error  # else a host's live slot is unknown
        if slot in ("blue", "green") and known and facts is not None and facts.live != slot:
            self._step(run.out, run.stack, "stop-slot", lambda: self._stop_slot(run, slot))
        serving = f"slot {facts.live}" if facts is not None and facts.live else "no slot"
        why = summary if step_name == "smoke-slot" else f"{step_name} failed: {summary}"
        return self._close(
            run.out, "failed", ExitCode.FAILED, why, ledger_status="fail", notes=why[:200],
            hint=f"the traffic never moved: {serving} still serves {run.previous or 'nothing'}",
        )  # fmt: skip
