"""`status` and `stacks` flag what a version number alone hides: a `current` whose release
directory is gone, and a health check that does not answer."""

import json
import shutil

import pytest

from releasegate.demo.service import stop

pytestmark = pytest.mark.e2e


def _status(lab, stack):
    out = lab.rg("status", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return next(r for r in map(json.loads, out.stdout.splitlines()) if r["stack"] == stack)


def _stacks(lab, stack):
    out = lab.rg("stacks", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return next(r for r in map(json.loads, out.stdout.splitlines()) if r["stack"] == stack)


def test_status_flags_a_silent_app_and_a_deleted_release(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    url = f"http://127.0.0.1:{lab.ports['web-staging']}/health"
    assert _status(lab, "web-staging")["warnings"] == []
    assert _status(lab, "web-prod")["warnings"] == []  # never deployed: nothing to answer
    assert _stacks(lab, "web-staging")["warnings"] == []

    stop(lab.root / "srv/web-staging/shared")  # the app dies; the ledger knows nothing
    [warning] = _status(lab, "web-staging")["warnings"]
    assert warning.startswith(f"health check {url} does not answer (")
    [warning] = _stacks(lab, "web-staging")["warnings"]
    assert "does not answer" in warning
    table = lab.rg("stacks").stdout
    assert "(no answer)" in table

    shutil.rmtree(lab.root / "srv/web-staging/releases/v1")  # deleted by hand
    warnings = _status(lab, "web-staging")["warnings"]
    assert any(w.startswith("current points at releases/v1, which is gone") for w in warnings), (
        warnings
    )
    text = lab.rg("status").stdout
    assert "warning web-staging: current points at releases/v1, which is gone" in text
    assert "(release gone)" in lab.rg("stacks").stdout

    # a deploy brings a release back, and the flags go
    assert lab.rg("deploy", "web-staging", "staging", "v2").returncode == 0
    assert _status(lab, "web-staging")["warnings"] == []
