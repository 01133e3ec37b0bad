"""A flag change on a fleet: the .env of every SSH host edited through the one executor
(the text on stdin over each host's connection), drift between hosts listed, each host's
own file kept apart from the others', and the change recorded once for the fleet."""

from __future__ import annotations

import json

import pytest

from tests.e2e_ssh.test_fleet_deploy import HOSTS, Fleet, fleet  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e

FLAGS = """\
    flags:
      dotenv: shared/.env
      apply: restart
      declared:
        SUPPLIER_EVAL_ENABLED: {type: bool, default: false}
"""


def test_flag_set_on_every_host_of_a_fleet(fleet: Fleet) -> None:  # noqa: F811
    fleet.artifact("v1")
    path = fleet.config(strategy="all")
    path.write_text(path.read_text() + FLAGS)
    for i in range(1, HOSTS + 1):  # each host's .env holds its own secret
        (fleet.host_path(i) / "shared" / ".env").write_text(f"# host {i}\nTOKEN=t{i}\n")
    (fleet.host_path(2) / "shared" / ".env").write_text(
        "# host 2\nTOKEN=t2\nSUPPLIER_EVAL_ENABLED=true\n"
    )
    fleet.rg("deploy", "web", "staging", "v1", check=True)

    listed = fleet.rg("flag", "list", "web", "staging", "--json")
    assert listed.returncode == 1, listed.stdout + listed.stderr  # drift: exit 1
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert "hosts differ" in row["drift"]
    assert sorted(h["value"] or "-" for h in row["hosts"].values()) == ["-"] * 4 + ["true"]

    out = fleet.rg("flag", "set", "web", "staging", "SUPPLIER_EVAL_ENABLED", "true", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    for i in range(1, HOSTS + 1):
        text = (fleet.host_path(i) / "shared" / ".env").read_text()
        assert text == f"# host {i}\nTOKEN=t{i}\nSUPPLIER_EVAL_ENABLED=true\n", (i, text)
    assert fleet.serving() == ["v1"] * HOSTS  # restarted on each host, smoked

    listed = fleet.rg("flag", "list", "web", "staging", "--json")
    assert listed.returncode == 0, listed.stdout
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["drift"] == [] and row["value"] == "true"

    out = fleet.rg("flag", "rollback", "web", "staging", "SUPPLIER_EVAL_ENABLED")
    assert out.returncode == 0, out.stdout + out.stderr
    # Back to what the first host had (unset): every host, host 2 included.
    for i in range(1, HOSTS + 1):
        assert (fleet.host_path(i) / "shared" / ".env").read_text() == f"# host {i}\nTOKEN=t{i}\n"
