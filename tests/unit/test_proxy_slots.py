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


def test_proxy_only_for_local_releases_and_compose_stacks(tmp_path: Path) -> None:
    compose = CONFIG.replace("runtime: releases", "runtime: compose").replace(
        "    artifacts: artifacts\n", ""
    )
    assert load(tmp_path, compose).proxy is not None  # compose: a project per slot
    swarm = compose.replace("runtime: compose", "runtime: swarm")
    with pytest.raises(BadInput, match="proxy: slots are built for runtimes releases and compose"):
        load(tmp_path, swarm)
    fleet = compose.replace(
        "    dir: srv/web\n", '    dir: /srv/web\n    hosts: ["ssh://deploy@web1.example.com"]\n'
    )
    with pytest.raises(BadInput, match="local host only"):
        load(tmp_path, fleet)


def test_slot_files_hold_only_a_version(tmp_path: Path) -> None:
    from releasegate.workflows.slots import read_slot_version, slot_file, write_slot_version

    stack = load(tmp_path)
    assert read_slot_version(stack, "blue") is None
    write_slot_version(stack, "blue", "v1")
    assert read_slot_version(stack, "blue") == "v1"
    slot_file(stack, "green").write_text("../../etc; rm -rf /\n")  # edited by hand: ignored
    assert read_slot_version(stack, "green") is None
    slot_file(stack, "green").write_bytes(b"v" * 10_000)  # too long to be a version
    assert read_slot_version(stack, "green") is None
    write_slot_version(stack, "blue", None)
    assert not slot_file(stack, "blue").exists()


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
