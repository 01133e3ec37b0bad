"""Blue/green through real proxies: a deploy under concurrent load (with and without
keep-alive) fails no request; a release that fails its smoke on its slot never gets the
traffic; a rollback to the still-running old slot is a switch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_proxy.slots import SlotStack, make_stack
from tests.lab.load import Load
from tests.lab.proxies import caddy_may_reset, get

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["nginx", "caddy", "haproxy"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SlotStack]:
    made = make_stack(tmp_path, str(request.param), keep_old=True)
    try:
        yield made
    finally:
        made.stop_apps()
        made.proxy.stop()


def ok(run: object) -> None:
    assert getattr(run, "returncode", None) == 0, (
        f"{getattr(run, 'stdout', '')}\n{getattr(run, 'stderr', '')}"
    )


def test_deploy_under_load_fails_no_request(stack: SlotStack) -> None:
    """Clients with keep-alive and clients that close each connection, at the same time."""
    ok(stack.rg("deploy", "web", "staging", "v1"))
    assert "version v1" in get(stack.proxy.url)[1]
    url = stack.proxy.url + "/"
    with Load(url, clients=2, keepalive=True) as kept, Load(url, clients=2, keepalive=False) as new:
        time.sleep(0.5)
        ok(stack.rg("deploy", "web", "staging", "v2"))
        time.sleep(0.5)
    for load in (kept, new):
        result = load.result
        if stack.proxy.kind == "caddy" and load is new and caddy_may_reset():
            # Caddy 2.6 applies an admin API change as a graceful reload whose SO_REUSEPORT
            # listener handover resets a connection still queued on the old socket, now and
            # then, unless the kernel's tcp_migrate_req is on (docs/proxy.md). Only those,
            # and only a few, for new connections; with the option on: none.
            assert set(result.errors) <= {"ConnectionResetError"}, result.errors
            assert result.failed <= 2, result.errors
        else:
            assert result.failed == 0, result.errors
        assert result.ok > 20
        seen = " ".join(result.bodies)
        assert "version v1" in seen and "version v2" in seen  # the switch happened under load
    assert new.result.stale_retries == 0  # nothing to retry without keep-alive
    assert "version v2" in get(stack.proxy.url)[1]


def test_rollback_on_the_warm_slot_is_a_switch(stack: SlotStack) -> None:
    ok(stack.rg("deploy", "web", "staging", "v1"))
    ok(stack.rg("deploy", "web", "staging", "v2"))
    assert "version v2" in get(stack.proxy.url)[1]
    with Load(stack.proxy.url + "/", clients=2) as load:
        started = time.monotonic()
        run = stack.rg("rollback", "web", "staging", "--json")
        took = time.monotonic() - started
    ok(run)
    assert result_ok(load)
    assert "version v1" in get(stack.proxy.url)[1]
    steps = _last_run_steps(stack)
    assert "start-slot" not in steps and "prepare" not in steps  # nothing restarted: a switch
    assert "switch-traffic" in steps
    assert took < 30, steps  # generous: the CLI's own start is most of it


@pytest.mark.parametrize("stack", ["nginx"], indirect=True)
def test_a_warm_slot_that_died_is_started_again_by_a_rollback(stack: SlotStack) -> None:
    """The slot file still names v1, but its app is gone (a restore stopped it, a crash, a
    reboot): the rollback starts v1 again rather than switching the traffic to nothing."""
    from tests.lab.proxies import stop_pid

    ok(stack.rg("deploy", "web", "staging", "v1"))
    ok(stack.rg("deploy", "web", "staging", "v2"))  # keep_old: v1 stays warm in blue
    web = stack.root / "srv" / "web"
    slot = next(f.name for f in (web / "slots").iterdir() if f.read_text().strip() == "v1")
    warm = stack.rg("rollback", "web", "staging", "--dry-run")
    ok(warm)
    assert "start v1 in slot" not in warm.stdout and "(still running: warm)" in warm.stdout
    stop_pid(int((web / f"slot-{slot}.pid").read_text().strip()))
    dry = stack.rg("rollback", "web", "staging", "--dry-run")
    ok(dry)
    assert f"start v1 in slot {slot}" in dry.stdout, dry.stdout
    with Load(stack.proxy.url + "/", clients=2) as load:
        ok(stack.rg("rollback", "web", "staging"))
    assert result_ok(load)
    assert "version v1" in get(stack.proxy.url)[1]
    assert "start-slot" in _last_run_steps(stack)


def result_ok(load: Load) -> bool:
    assert load.result.failed == 0, load.result.errors
    return True


def _last_run_steps(stack: SlotStack) -> str:
    shown = stack.rg("history", "--stack", "web", "--steps").stdout
    return shown.rsplit("rollback", 1)[-1]


@pytest.mark.parametrize("stack", ["nginx"], indirect=True)
def test_smoke_failing_on_its_slot_never_gets_traffic(stack: SlotStack) -> None:
    ok(stack.rg("deploy", "web", "staging", "v1"))
    dry = stack.rg("deploy", "web", "staging", "v3", "--dry-run")
    ok(dry)
    assert (
        "start v3 in slot blue" in dry.stdout and "nginx: send traffic to slot blue" in dry.stdout
    )
    with Load(stack.proxy.url + "/", clients=2) as load:
        run = stack.rg("deploy", "web", "staging", "v3")
    assert run.returncode != 0
    assert "traffic never moved" in run.stdout + run.stderr
    assert load.result.failed == 0, load.result.errors
    assert set(load.result.bodies) == {next(iter(load.result.bodies))}  # v1 all along
    assert "version v1" in get(stack.proxy.url)[1]
