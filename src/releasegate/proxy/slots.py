"""Blue/green slots, pure: which slot a run uses, the steps it takes, the environment a
slot's app gets, a smoke URL aimed at one slot, and the hosts' facts as one. No I/O here
(the workflow asks each host's proxy and reads its slot files, then passes the facts in).

On a fleet every host runs its own proxy in front of its own two slots, and every step acts
on every host: the hosts must agree on the live slot and on what each slot runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from releasegate.model import Step
from releasegate.proxy.config import LOCAL_HOST, split_address

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.proxy.config import ProxyConfig

SLOT_STEPS = (
    "slot-facts",
    "start-slot",
    "smoke-slot",
    "switch-traffic",
    "drain",
    "stop-old-slot",
)


@dataclass(frozen=True)
class SlotFacts:
    """What the proxy and the slot files say before a run."""

    live: str | None  # the slot the proxy sends traffic to (None: neither, or unknown)
    versions: dict[str, str] = field(default_factory=dict)  # slot -> version started there
    error: str = ""  # the proxy could not be asked: the run stops before changing anything

    @property
    def free(self) -> str:
        """The slot a new version starts in: the one that is not live (blue at first)."""
        if self.live is None:
            return "blue"
        return "green" if self.live == "blue" else "blue"

    def warm(self, version: str) -> bool:
        """The free slot still runs `version` (kept after a switch): a switch brings it back."""
        return self.live is not None and self.versions.get(self.free) == version

    def describe(self) -> str:
        def slot(name: str) -> str:
            return f"{name} {self.versions.get(name) or '-'}"

        return f"live {self.live or 'neither'} ({slot('blue')}, {slot('green')})"


def combine(per_host: dict[str, SlotFacts], kind: str) -> SlotFacts:
    """The hosts' facts as one: the same live slot and slot versions on every host, else an
    error naming the hosts (the run stops before changing anything)."""
    one = len(per_host) == 1
    failed = [(h, f.error) for h, f in per_host.items() if f.error]
    if failed:
        if one:
            return SlotFacts(None, {}, error=failed[0][1])
        return SlotFacts(None, {}, error="; ".join(f"{h}: {why}" for h, why in failed))
    first = next(iter(per_host.values()), SlotFacts(None))
    seen = {(f.live, f.versions.get(f.live or "")) for f in per_host.values()}
    if len(seen) <= 1:
        # The free slot is warm only where it is warm on every host: else it starts again
        # everywhere (a slot that died on one host is no reason to stop the run).
        free = {f.versions.get(first.free) for f in per_host.values()}
        versions = dict(first.versions)
        if len(free) > 1 or None in free:
            versions.pop(first.free, None)
        return SlotFacts(first.live, versions)
    said = "; ".join(f"{h}: {f.describe()}" for h, f in per_host.items())
    why = f"the hosts' {kind} proxies and slots disagree ({said})"
    return SlotFacts(None, {}, error=why)


def refused_rollout(overrides: dict[str, Any]) -> None:
    """A run's rollout options that slots behind a proxy do not build (every host's proxy
    switches in one step, every host must pass): BadInput, as the config refuses them."""
    from releasegate.errors import BadInput

    strategy = overrides.get("strategy")
    if strategy not in (None, "all"):
        raise BadInput(
            f"--strategy {strategy}: batches are not built for slots behind a proxy "
            "(every host's proxy switches in one step)"
        )
    if overrides.get("max_failures") not in (None, 0, "0", "0%"):
        raise BadInput("--max-failures: slots behind a proxy need every host to pass each step")


def slot_env(proxy: ProxyConfig, slot: str, host: str = LOCAL_HOST) -> dict[str, str]:
    """What the app started in a slot sees: its slot's name, address and port (on `host`,
    for a slot address with `{host}`)."""
    address = proxy.address(slot, host)
    name, port = split_address(address)
    return {
        "RELEASEGATE_SLOT": slot,
        "RELEASEGATE_SLOT_ADDRESS": address,
        "RELEASEGATE_SLOT_HOST": name,
        "PORT": str(port),
        "RELEASEGATE_SLOT_PORT": str(port),  # what a compose file publishes (compose_slots)
    }


def transport_host(transport: Any) -> str:
    """The address a runtime's host has (its ssh:// URL's), or the local host's."""
    target = getattr(transport, "target", None)
    return str(getattr(target, "address", "") or LOCAL_HOST)


def slot_url(url: str, address: str) -> str:
    """The smoke URL aimed at the slot itself: same path and query, the slot's host:port
    (plain http: a slot listens behind the proxy, which holds the TLS)."""
    parts = urlsplit(url.replace("{host}", split_address(address)[0]))
    return urlunsplit(("http", address, parts.path or "/", parts.query, ""))


def _how(stack: StackConfig, slot: str, action: str) -> str:
    """What starts or stops a slot, for the titles: a compose project per slot, or the
    team's restart / stop command with the slot's environment."""
    if stack.runtime == "compose":
        from releasegate.runtimes.compose_slots import describe

        return describe(stack.compose_project, slot, action)
    spec = stack.commands.restart if action == "start" else stack.commands.stop
    if spec is None:
        return f"(no {'restart' if action == 'start' else 'stop'} command)"
    return " ".join(spec.argv()) if action == "start" else "its stop command"


def slot_steps(
    stack: StackConfig, version: str, slots: SlotFacts, *, rollback: bool
) -> tuple[list[Step], bool]:
    """The steps that replace switch/restart/smoke when the stack has a proxy, and whether
    the release must be prepared first (False: a warm slot answers for it already)."""
    proxy = stack.proxy
    assert proxy is not None  # called only for stacks with `proxy:`
    if slots.error:  # a proxy could not be asked, or the hosts disagree: change nothing
        title = f"slots: {slots.error}: stop before changing anything"
        return [Step("slot-facts", title, {"error": slots.error})], False
    names = ", ".join(c.name for c in stack.smoke) or "no checks configured"
    if rollback and slots.live is not None and slots.versions.get(slots.live) == version:
        # The proxy never left the target's slot (a deploy that failed before or at its
        # switch): point `current` back at it and stop the other slot.
        live, other = slots.live, slots.free
        kept: dict[str, Any] = {"slot": live, "old": other, "address": proxy.shown(live)}
        back = [
            Step("smoke-slot", f"smoke {version} on live slot {live}: {names}", kept),
            Step("switch", f"switch {stack.dir}/current: -> {version}", kept),
        ]
        if not proxy.keep_old:
            back.append(
                Step("stop-old-slot", f"stop slot {other}: {_how(stack, other, 'stop')}", kept)
            )
        return back, False
    new, old = slots.free, slots.live
    data: dict[str, Any] = {"slot": new, "old": old, "address": proxy.shown(new)}
    warm = rollback and slots.warm(version)
    steps: list[Step] = []
    if not warm:
        steps.append(
            Step(
                "start-slot",
                f"start {version} in slot {new} ({proxy.shown(new)}, PORT in its "
                f"environment): {_how(stack, new, 'start')}",
                data,
            )
        )
    smoke_title = f"smoke {version} directly on slot {new} ({proxy.shown(new)}): {names}"
    steps.append(Step("smoke-slot", smoke_title + (" (still running: warm)" if warm else ""), data))
    steps.append(Step("switch", f"switch {stack.dir}/current: -> {version}", data))
    steps.append(
        Step(
            "switch-traffic",
            f"{proxy.kind}: send traffic to slot {new} ({old or 'no slot'} -> {new})",
            data,
        )
    )
    # Through the proxy as users reach it: a failure here goes back to the old slot.
    steps.append(Step("smoke", f"smoke {version} through the proxy: {names}", data))
    if old is not None:
        steps.append(Step("drain", f"drain slot {old}: {proxy.drain_s:g}s", data))
        # keep_old: it stays up (the next deploy restarts it); a deploy with a watch window
        # stops it after the window (stop_after_watch), so a failing check can switch back.
        if not proxy.keep_old and (rollback or stack.watch is None):
            steps.append(
                Step("stop-old-slot", f"stop slot {old}: {_how(stack, old, 'stop')}", data)
            )
    return steps, not warm


def stop_after_watch(stack: StackConfig, slots: SlotFacts) -> list[Step]:
    """A deploy with a watch window: the old slot stops once the window passed."""
    proxy = stack.proxy
    if proxy is None or proxy.keep_old or slots.live is None:
        return []
    data = {"slot": slots.free, "old": slots.live, "address": proxy.shown(slots.free)}
    return [Step("stop-old-slot", f"stop slot {slots.live} after the watch window", data)]
