"""The swarm runtime's pure parts as data: argv, parsers of Docker's answers, the verdicts
on a rollout and on the way back, and the stack file rules."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from releasegate.compose.swarm_rules import lint_stack
from releasegate.config import load_config
from releasegate.plan import Facts, plan_deploy
from releasegate.runtimes import swarm_commands as sc

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def _service(name: str, digest: str, *, state: str = "", started: str = "", replicas: int = 1):  # type: ignore[no-untyped-def]
    return sc.Service(
        f"id-{name}", name, f"r/web:{digest[7:9]}", digest, replicas, state, started, ""
    )


def _task(service: str, digest: str, state: str = "running") -> sc.Task:
    return sc.Task(f"t-{service}-{digest[7:9]}", f"id-{service}", state, "running", digest, "")


def test_argv_names_the_stack_files_and_never_prunes() -> None:
    argv = sc.deploy("shop", PurePosixPath("/srv/shop"), ["a.yml", "b.yml"])
    assert argv == [
        "docker", "stack", "deploy", "--resolve-image", "always",
        "-c", "/srv/shop/a.yml", "-c", "/srv/shop/b.yml", "--", "shop",
    ]  # fmt: skip
    assert "--prune" not in argv
    assert sc.service_ids("shop")[-1] == "label=com.docker.stack.namespace=shop"
    assert sc.rollback("abc") == [
        "docker",
        "service",
        "rollback",
        "--detach",
        "--quiet",
        "--",
        "abc",
    ]
    assert sc.pull("r/web:v1") == ["docker", "pull", "--quiet", "--", "r/web:v1"]
    assert sc.running_task_ids(["a", "b"])[-3:] == ["--", "a", "b"]
    assert sc.chunks([str(i) for i in range(60)], 25)[-1] == [str(i) for i in range(50, 60)]


def test_services_and_tasks_parse_from_one_json_line_each() -> None:
    line = {
        "id": "s1",
        "name": "shop_web",
        "image": f"127.0.0.1:5000/rg/web:v2@{D2}",
        "mode": {"Replicated": {"Replicas": 2}},
        "update": {"State": "updating", "StartedAt": "t1", "Message": "update in progress"},
    }
    glob = {"id": "s2", "name": "shop_agent", "image": "r/agent:v1", "mode": {"Global": {}}}
    out = json.dumps(line) + "\n" + "not json\n" + json.dumps(glob) + "\n{cut"
    agent, web = sc.parse_services(out, "shop")
    assert (web.name, web.image, web.digest, web.replicas) == (
        "web",
        "127.0.0.1:5000/rg/web:v2",
        D2,
        2,
    )
    assert (web.update_state, web.update_started) == ("updating", "t1")
    assert agent.replicas is None and agent.update_state == "" and agent.digest == ""
    task = {"id": "t", "service": "s1", "slot": 1, "state": "starting", "desired": "running",
            "image": f"r/web:v2@{D2}", "err": None}  # fmt: skip
    [parsed] = sc.parse_tasks(json.dumps(task))
    assert (parsed.state, parsed.digest, parsed.error) == ("starting", D2, "")


def test_running_tag_and_facts() -> None:
    web, worker = _service("web", D1, replicas=1), _service("worker", D1, replicas=2)
    tasks = [_task("web", D1), _task("worker", D1), _task("worker", D1, "starting")]
    assert sc.running_tag([web, worker], ["web"]) == "11"
    facts = sc.service_facts([web, worker], tasks)
    assert facts["web"] == {"image": "r/web:11", "digest": D1, "replicas": "1/1"}
    assert facts["worker"]["replicas"] == "1/2"


def test_rollout_waits_for_every_task_on_the_new_digest() -> None:
    before = sc.Before("v1", {"web": _service("web", D1, started="t0")})
    moved = _service("web", D2, state="updating", started="t1")
    assert sc.rollout_verdict([moved], [_task("web", D1)], before)[0] == "wait"
    done = _service("web", D2, state="completed", started="t1")
    assert sc.rollout_verdict([done], [_task("web", D1)], before)[0] == "wait"  # old task
    assert sc.rollout_verdict([done], [_task("web", D2, "starting")], before)[0] == "wait"
    verdict, why = sc.rollout_verdict([done], [_task("web", D2)], before)
    assert verdict == "ok" and "web 1/1" in why
    # the spec moved but its update has not started yet: not done, whatever the tasks say
    unstarted = _service("web", D2, state="completed", started="t0")
    assert sc.rollout_verdict([unstarted], [_task("web", D2)], before)[0] == "wait"


def test_rollout_fails_when_swarm_rolled_back_or_paused_this_runs_update() -> None:
    before = sc.Before("v1", {"web": _service("web", D1, state="completed", started="t0")})
    rolled = _service("web", D1, state="rollback_completed", started="t1")
    verdict, why = sc.rollout_verdict([rolled], [_task("web", D1)], before)
    assert verdict == "fail" and "rolled back by Swarm" in why
    paused = _service("web", D2, state="paused", started="t1")
    assert sc.rollout_verdict([paused], [], before)[0] == "fail"
    # an old rollback (before this run) of an unchanged service is not this run's failure
    old = sc.Before("v1", {"web": _service("web", D1, state="rollback_completed", started="t0")})
    same = _service("web", D1, state="rollback_completed", started="t0")
    assert sc.rollout_verdict([same], [_task("web", D1)], old)[0] == "ok"
    assert sc.rollout_verdict([], [], before)[0] == "fail"


def test_undo_skips_what_swarm_rolled_back_and_removes_what_this_run_created() -> None:
    before = sc.Before(
        "v1",
        {
            "web": _service("web", D1, started="t0"),
            "worker": _service("worker", D1, started="t0"),
            "cache": _service("cache", D1, started="t0"),
        },
    )
    now = [
        _service("web", D1, state="rollback_completed", started="t1"),  # Swarm did it
        _service("worker", D2, state="completed", started="t1"),  # moved, healthy: roll back
        _service("cache", D1, started="t0"),  # untouched
        _service("extra", D2, state="", started=""),  # new in this run
    ]
    actions = {s.name: a for s, a in sc.undo_commands(now, before)}
    assert actions == {"web": "", "worker": "rollback", "extra": "remove"}


def test_back_verdict_wants_the_earlier_digests_on_every_replica() -> None:
    before = sc.Before("v1", {"web": _service("web", D1, started="t0")})
    back = _service("web", D1, state="rollback_completed", started="t1")
    assert sc.back_verdict([back], [_task("web", D2)], before)[0] == "wait"
    verdict, why = sc.back_verdict([back], [_task("web", D1)], before)
    assert verdict == "ok" and "earlier digests run again" in why
    still = _service("web", D2, state="rollback_started", started="t1")
    assert sc.back_verdict([still], [_task("web", D1)], before)[0] == "wait"
    assert sc.back_verdict([], [], before)[0] == "fail"  # the service is gone


def test_version_images_interpolates_like_compose() -> None:
    texts = {
        "a.yml": "services:\n  web:\n    image: r/web:${IMAGE_TAG}\n"
        "  db:\n    image: postgres:${PG:-15}\n",
        "b.yml": "services: [oops",
    }
    assert sc.version_images(texts, {"IMAGE_TAG": "v7"}) == ["postgres:15", "r/web:v7"]
    assert sc.version_images(texts, {"IMAGE_TAG": "v7"}, ["web"]) == ["r/web:v7"]


GOOD = """\
services:
  web:
    image: r/web:${IMAGE_TAG}
    ports: ["8080:80"]
    deploy:
      update_config: {order: start-first}
      rollback_config: {order: start-first}
  edge:
    image: r/edge:1
    ports:
      - {target: 80, published: 80, mode: host}
    deploy:
      update_config: {order: stop-first}
      rollback_config: {}
  worker:
    image: r/worker:1
    deploy:
      update_config: {}
      rollback_config: {}
"""


def test_swarm_rules_pass_a_good_stack_file() -> None:
    assert lint_stack({"stack.yml": GOOD}) == []


@pytest.mark.parametrize(
    ("edit", "rule", "service"),
    [
        (
            (
                "    image: r/worker:1\n    deploy:\n      update_config: {}\n",
                "    image: r/worker:1\n    deploy:\n",
            ),
            "swarm-update-config",
            "worker",
        ),
        (("      rollback_config: {}\n  worker", "  worker"), "swarm-rollback-config", "edge"),
        (
            ("{order: start-first}\n      rollback", "{order: stop-first}\n      rollback"),
            "swarm-start-first",
            "web",
        ),
        (("{order: stop-first}", "{order: start-first}"), "swarm-host-port-order", "edge"),
        (("services:", "services: [broken"), "swarm-file", "-"),
    ],
)
def test_swarm_rules_each_finding(edit: tuple[str, str], rule: str, service: str) -> None:
    assert edit[0] in GOOD
    findings = lint_stack({"stack.yml": GOOD.replace(edit[0], edit[1], 1)})
    assert [(f.rule, f.service) for f in findings] == [(rule, service)]
    if service != "-":
        assert findings[0].line == GOOD.splitlines().index(f"  {service}:") + 1


def test_a_later_file_completes_a_service() -> None:
    base = "services:\n  web:\n    image: r/web:1\n"
    over = "services:\n  web:\n    deploy:\n      update_config: {}\n      rollback_config: {}\n"
    assert lint_stack({"a.yml": base, "b.yml": over}) == []
    assert {f.rule for f in lint_stack({"a.yml": base})} == {
        "swarm-update-config",
        "swarm-rollback-config",
    }


def _stack(tmp_path: Path, extra: str = "") -> Any:
    (tmp_path / "releasegate.yaml").write_text(
        "stacks:\n  web-staging:\n    env: staging\n    runtime: swarm\n"
        f"    dir: {tmp_path}/run\n    compose: {{project: shop, wait_timeout: 30}}\n"
        "  web-prod:\n    env: prod\n    runtime: swarm\n    promote_from: web-staging\n"
        f"    dir: {tmp_path}/prod\n{extra}"
    )
    return load_config(tmp_path / "releasegate.yaml")


def test_config_and_plan_of_a_swarm_stack(tmp_path: Path) -> None:
    config = _stack(tmp_path)
    staging, prod = config.stack("web-staging"), config.stack("web-prod")
    assert staging.runtime == "swarm" and staging.compose_project == "shop"
    assert staging.preflight.require_commands == ["docker"]
    assert staging.backup_files == ["compose.yaml", ".env"]
    plan = plan_deploy(prod, "v2", Facts("v1", "v1", "r/web:v2"))
    steps = [s.name for s in plan.steps]
    assert steps == [
        "lock", "promotion", "preflight", "backup", "prepare", "content-gate",
        "switch", "restart", "smoke", "verify",
    ]  # fmt: skip
    titles = {s.name: s.title for s in plan.steps}
    assert "Swarm manager" in titles["preflight"] and "swarm-start-first" in titles["preflight"]
    assert "rule no-latest" in titles["preflight"]  # prod: the seed's compose rules too
    assert "docker stack deploy web-prod" in titles["restart"]
    assert "docker service rollback" in titles["restart"]


def test_a_swarm_stack_has_one_host(tmp_path: Path) -> None:
    from releasegate.errors import ReleasegateError

    (tmp_path / "releasegate.yaml").write_text(
        "stacks:\n  shop:\n    env: prod\n    runtime: swarm\n    dir: /srv/shop\n"
        "    hosts: [ssh://m1, ssh://m2]\n"
    )
    with pytest.raises(ReleasegateError, match="one host, a Swarm manager"):
        load_config(tmp_path / "releasegate.yaml")
