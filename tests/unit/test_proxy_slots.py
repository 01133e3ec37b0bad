"""Blue/green planning as data: which slot a run uses, its steps for a deploy, a rollback to
a warm slot (a switch), a rollback to the slot that stayed live, and a slot's environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from releasegate.config import load_config
from releasegate.errors import BadInput
from releasegate.plan import Facts, plan_deploy, plan_rollback
from releasegate.proxy.slots import SlotFacts, slot_env, slot_url

CONFIG = """
stacks:
  web:
    env: staging
    runtime: releases
    dir: srv/web
    artifacts: artifacts
    commands:
      restart: ["sh", "-c", "start"]
      stop: ["sh", "-c", "stop"]
    smoke:
      - name: health
        http: https://example.test:8443/health?deep=1
    proxy:
      kind: nginx
      slots: {blue: "127.0.0.1:8101", green: "127.0.0.1:8102"}
      drain_s: 3
      nginx: {upstream_file: up.conf, conf: nginx.conf}
"""


def load(tmp_path: Path, text: str = CONFIG) -> Any:
    path = tmp_path / "releasegate.yaml"
    path.write_text(text)
    return load_config(path).stack("web")


def names(plan: Any) -> list[str]:
    return [s.name for s in plan.steps]


def facts(slots: SlotFacts, running: str | None = "v1") -> Facts:
    return Facts(running=running, rollback_target="v1", artifact="artifacts/v2", slots=slots)


def test_slot_facts() -> None:
    assert SlotFacts(None).free == "blue"  # first deploy
    assert SlotFacts("blue").free == "green"
    assert SlotFacts("green").free == "blue"
    warm = SlotFacts("green", {"blue": "v1", "green": "v2"})
    assert (
        warm.warm("v1") and not warm.warm("v2") and not SlotFacts(None, {"blue": "v1"}).warm("v1")
    )


def test_deploy_starts_the_free_slot_then_switches(tmp_path: Path) -> None:
    stack = load(tmp_path)
    plan = plan_deploy(stack, "v2", facts(SlotFacts("blue", {"blue": "v1"})))
    assert names(plan) == [
        "lock", "preflight", "prepare", "start-slot", "smoke-slot", "switch",
        "switch-traffic", "smoke", "drain", "stop-old-slot", "verify", "cleanup",
    ]  # fmt: skip
    by = {s.name: s for s in plan.steps}
    assert by["start-slot"].details == {"slot": "green", "old": "blue", "address": "127.0.0.1:8102"}
    assert "slot green (127.0.0.1:8102" in by["start-slot"].title
    assert "blue -> green" in by["switch-traffic"].title
    assert "3s" in by["drain"].title
    assert "restart" not in names(plan)


def test_first_deploy_has_no_old_slot(tmp_path: Path) -> None:
    plan = plan_deploy(load(tmp_path), "v1", facts(SlotFacts(None), running=None))
    assert "drain" not in names(plan) and "stop-old-slot" not in names(plan)
    assert next(s for s in plan.steps if s.name == "start-slot").details["slot"] == "blue"


def test_keep_old_leaves_the_old_slot_up(tmp_path: Path) -> None:
    stack = load(tmp_path, CONFIG.replace("drain_s: 3", "drain_s: 3\n      keep_old: true"))
    plan = plan_deploy(stack, "v2", facts(SlotFacts("blue", {"blue": "v1"})))
    assert "drain" in names(plan) and "stop-old-slot" not in names(plan)


def test_rollback_to_a_warm_slot_is_a_switch(tmp_path: Path) -> None:
    stack = load(tmp_path)
    warm = SlotFacts("green", {"blue": "v1", "green": "v2"})
    plan = plan_rollback(stack, "v1", facts(warm, running="v2"))
    assert names(plan) == [
        "lock", "smoke-slot", "switch", "switch-traffic", "smoke", "drain", "stop-old-slot",
    ]  # fmt: skip
    assert all(s.details.get("slot") == "blue" for s in plan.steps[1:])


def test_rollback_to_a_cold_slot_starts_it(tmp_path: Path) -> None:
    stack = load(tmp_path)
    cold = SlotFacts("green", {"green": "v2"})  # blue was stopped after the drain
    plan = plan_rollback(stack, "v1", facts(cold, running="v2"))
    assert names(plan)[:4] == ["lock", "prepare", "start-slot", "smoke-slot"]


def test_rollback_to_the_slot_that_stayed_live(tmp_path: Path) -> None:
    """A deploy failed at its traffic switch: the proxy still serves the target's slot."""
    stack = load(tmp_path)
    stayed = SlotFacts("blue", {"blue": "v1", "green": "v2"})
    plan = plan_rollback(stack, "v1", facts(stayed, running="v2"))
    assert names(plan) == ["lock", "smoke-slot", "switch", "stop-old-slot"]
    assert plan.steps[-1].details["old"] == "green"


def test_slot_env_and_url(tmp_path: Path) -> None:
    proxy = load(tmp_path).proxy
    assert slot_env(proxy, "green") == {
        "RELEASEGATE_SLOT": "green",
        "RELEASEGATE_SLOT_ADDRESS": "127.0.0.1:8102",
        "RELEASEGATE_SLOT_HOST": "127.0.0.1",
        "PORT": "8102",
        "RELEASEGATE_SLOT_PORT": "8102",
    }
    assert slot_url("https://example.test:8443/health?deep=1", "127.0.0.1:8102") == (
        "http://127.0.0.1:8102/health?deep=1"
    )
    assert slot_url("http://u:p@{host}/", "127.0.0.1:8101") == "http://127.0.0.1:8101/"


def test_proxy_for_releases_and_compose_stacks_local_or_on_ssh_hosts(tmp_path: Path) -> None:
    compose = CONFIG.replace("runtime: releases", "runtime: compose").replace(
        "    artifacts: artifacts\n", ""
    )
    assert load(tmp_path, compose).proxy is not None  # compose: a project per slot
    swarm = compose.replace("runtime: compose", "runtime: swarm")
    with pytest.raises(BadInput, match="proxy: slots are built for runtimes releases and compose"):
        load(tmp_path, swarm)
    hosts = '["ssh://deploy@web1.example.com", "ssh://deploy@10.0.0.7"]'
    fleet = compose.replace("    dir: srv/web\n", f"    dir: /srv/web\n    hosts: {hosts}\n")
    fleet = fleet.replace('"127.0.0.1:8101"', '"{host}:8101"')
    stack = load(tmp_path, fleet)  # each host its own proxy, slots on its own address
    assert stack.proxy.address("blue", "10.0.0.7") == "10.0.0.7:8101"
    assert stack.proxy.address("green", "10.0.0.7") == "127.0.0.1:8102"
    assert stack.proxy.slot_of("web1.example.com:8101", "web1.example.com") == "blue"
    assert stack.proxy.slot_of("10.0.0.7:8101", "web1.example.com") is None
    assert stack.proxy.shown("blue") == "{host}:8101"
    for strategy in ("rolling", "canary"):  # batches are not built for slots: refused
        with pytest.raises(BadInput, match=rf"fleet\.strategy: '{strategy}' batches"):
            load(tmp_path, fleet + f"    fleet: {{strategy: {strategy}}}\n")
    with pytest.raises(BadInput, match=r"fleet\.max_failures"):
        load(tmp_path, fleet + "    fleet: {max_failures: 1}\n")


@pytest.mark.parametrize(
    "address",
    ["{host}", "x{host}:8101", "{host}.example.com:8101", "{host}:0", "{host}:http"],
)
def test_host_placeholder_stands_for_the_whole_host(tmp_path: Path, address: str) -> None:
    with pytest.raises(BadInput, match="slots"):
        load(tmp_path, CONFIG.replace('"127.0.0.1:8101"', f'"{address}"'))


def test_host_placeholder_in_slot_env_and_a_local_stack(tmp_path: Path) -> None:
    stack = load(tmp_path, CONFIG.replace('"127.0.0.1:8101"', '"{host}:8101"'))
    assert stack.proxy.address("blue") == "127.0.0.1:8101"  # the local host
    env = slot_env(stack.proxy, "blue", "127.0.0.12")
    assert env["RELEASEGATE_SLOT_ADDRESS"] == "127.0.0.12:8101"
    assert env["RELEASEGATE_SLOT_HOST"] == "127.0.0.12" and env["PORT"] == "8101"
    assert stack.proxy.address("blue", "::1") == "[::1]:8101"
    plan = plan_deploy(stack, "v2", facts(SlotFacts("green", {"green": "v1"})))
    start = next(s for s in plan.steps if s.name == "start-slot")
    assert "{host}:8101" in start.title  # the plan shows the address as configured


def test_hosts_that_disagree_stop_the_plan_before_anything_changes(tmp_path: Path) -> None:
    from releasegate.proxy.slots import combine

    same = {"h1": SlotFacts("blue", {"blue": "v1"}), "h2": SlotFacts("blue", {"blue": "v1"})}
    assert combine(same, "nginx") == SlotFacts("blue", {"blue": "v1"})
    moved = {**same, "h3": SlotFacts("green", {"blue": "v1", "green": "v2"})}
    merged = combine(moved, "nginx")
    assert merged.live is None
    assert "h3: live green (blue v1, green v2)" in merged.error
    assert "h1: live blue (blue v1, green -)" in merged.error
    other = {**same, "h2": SlotFacts("blue", {"blue": "v0"})}  # same live slot, not the same
    assert "disagree" in combine(other, "nginx").error
    down = {**same, "h2": SlotFacts(None, {}, error="the nginx proxy: refused")}
    assert combine(down, "nginx").error == "h2: the nginx proxy: refused"
    assert combine({"local": down["h2"]}, "nginx").error == "the nginx proxy: refused"
    stack = load(tmp_path)
    for plan in (
        plan_deploy(stack, "v2", facts(merged)),
        plan_rollback(stack, "v1", facts(merged)),
    ):
        order = names(plan)
        assert "slot-facts" in order
        changing = {"prepare", "migrate", "start-slot", "switch", "switch-traffic", "smoke-slot"}
        assert not changing & set(order[: order.index("slot-facts")])


def test_slot_files_hold_only_a_version(tmp_path: Path) -> None:
    from releasegate.proxy.base import run_here
    from releasegate.workflows.slots import read_slot_version, slot_file, write_slot_version

    stack = load(tmp_path)
    assert run_here(read_slot_version(stack, "blue")) is None
    assert run_here(write_slot_version(stack, "blue", "v1"))  # makes <dir>/slots too
    assert run_here(read_slot_version(stack, "blue")) == "v1"
    green = Path(str(slot_file(stack, "green")))
    green.write_text("../../etc; rm -rf /\n")  # edited by hand: ignored
    assert run_here(read_slot_version(stack, "green")) is None
    green.write_bytes(b"v" * 10_000)  # too long to be a version
    assert run_here(read_slot_version(stack, "green")) is None
    assert run_here(write_slot_version(stack, "blue", None))
    assert not Path(str(slot_file(stack, "blue"))).exists()


def test_with_a_watch_window_the_old_slot_stops_after_it(tmp_path: Path) -> None:
    text = CONFIG + "    watch: {duration: 60, interval: 5}\n"
    plan = plan_deploy(load(tmp_path, text), "v2", facts(SlotFacts("blue", {"blue": "v1"})))
    order = names(plan)
    assert order.count("stop-old-slot") == 1
    assert order.index("switch-traffic") < order.index("watch") < order.index("stop-old-slot")
    assert plan.steps[order.index("stop-old-slot")].details["old"] == "blue"
    # A rollback has no window: the slot it leaves stops after the drain.
    warm = SlotFacts("green", {"blue": "v1", "green": "v2"})
    assert names(plan_rollback(load(tmp_path, text), "v1", facts(warm)))[-1] == "stop-old-slot"


def test_rollout_options_that_slots_do_not_build_are_refused() -> None:
    from releasegate.proxy.slots import refused_rollout

    refused_rollout({})
    refused_rollout({"strategy": "all", "max_failures": 0, "parallel": 4})
    with pytest.raises(BadInput, match="--strategy rolling"):
        refused_rollout({"strategy": "rolling", "batch": 2})
    with pytest.raises(BadInput, match="--max-failures"):
        refused_rollout({"max_failures": "10%"})


def test_a_free_slot_is_warm_only_where_it_is_warm_on_every_host() -> None:
    from releasegate.proxy.slots import combine

    warm = SlotFacts("green", {"blue": "v1", "green": "v2"})
    cold = SlotFacts("green", {"green": "v2"})  # blue's app died on this host
    assert combine({"h1": warm, "h2": warm}, "nginx") == warm
    merged = combine({"h1": warm, "h2": cold}, "nginx")
    assert not merged.error and merged.live == "green"
    assert merged.versions == {"green": "v2"} and not merged.warm("v1")
    older = SlotFacts("green", {"blue": "v0", "green": "v2"})
    assert combine({"h1": warm, "h2": older}, "nginx").versions == {"green": "v2"}


def test_a_slot_file_names_a_warm_slot_only_while_its_address_listens(tmp_path: Path) -> None:
    import socket

    from releasegate.proxy.base import run_here
    from releasegate.workflows.slots import host_slot_facts, write_slot_version

    with socket.socket() as blue_sock, socket.socket() as green_sock:
        blue_sock.bind(("127.0.0.1", 0))
        green_sock.bind(("127.0.0.1", 0))
        blue, green = blue_sock.getsockname()[1], green_sock.getsockname()[1]
        text = CONFIG.replace("127.0.0.1:8101", f"127.0.0.1:{blue}").replace(
            "127.0.0.1:8102", f"127.0.0.1:{green}"
        )
        stack = load(tmp_path, text)
        (tmp_path / "up.conf").write_text(f"server 127.0.0.1:{green};\n")  # green is live
        assert run_here(write_slot_version(stack, "blue", "v1"))
        assert run_here(write_slot_version(stack, "green", "v2"))
        # blue's file names v1 but nothing listens on its address (stopped by a restore)
        facts = run_here(host_slot_facts(stack, "127.0.0.1"))
        assert facts.live == "green" and facts.versions == {"green": "v2"}
        assert not facts.warm("v1")
        blue_sock.listen()
        facts = run_here(host_slot_facts(stack, "127.0.0.1"))
        assert facts.versions == {"blue": "v1", "green": "v2"} and facts.warm("v1")
