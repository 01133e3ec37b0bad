"""Fleet deploys on the SSH lab's real sshd hosts: the artifact uploaded to each host, batches
switched, restarted and smoked over HTTP, and the whole fleet rolled back when one host fails.

Each host serves its `current` release with a small HTTP server bound to its own loopback
address, started by the release's own restart script.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from tests.cli import RELEASEGATE
from tests.lab.plans import planned, recorded, same_steps
from tests.lab.ssh import (
    REPO,
    SshLab,
    accepted_logins,
    current_links,
    free_port,
    host_dir,
    last_result,
    require_ssh_lab,
    rg_env,
    run_rg,
    serving,
)

pytestmark = pytest.mark.e2e

HOSTS = 5
RESTART = """\
#!/bin/sh
# Stop the previous server, start this release's; it binds the host's own address.
set -eu
here=$(pwd -P)
addr=$(cat "$RELEASEGATE_SHARED_DIR/addr")
port=$(cat "$RELEASEGATE_SHARED_DIR/port")
pidfile="$RELEASEGATE_SHARED_DIR/http.pid"
if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; sleep 0.2; fi
{bad}
setsid python3 -m http.server "$port" --bind "$addr" --directory "$here" \\
  </dev/null >"$RELEASEGATE_SHARED_DIR/http.log" 2>&1 &
echo $! > "$pidfile"
"""
# v3 breaks on one host only: that host serves nothing (its smoke fails), the others are fine.
BAD = 'if [ "$addr" = "{addr}" ]; then rm -f "$pidfile"; exit 0; fi'
# v4 hangs on one host (the test kills that host's sshd meanwhile).
HANG = 'if [ "$addr" = "{addr}" ]; then touch "$RELEASEGATE_SHARED_DIR/hanging"; sleep 60; fi'


class Fleet:
    def __init__(self, lab: SshLab, tmp: Path, name: str) -> None:
        self.lab = lab
        self.tmp = tmp
        self.addresses = lab.addresses[:HOSTS]
        # How releasegate names each host: its address, with the port when it is not 22.
        self.labels = tuple(a if lab.port == 22 else f"{a}:{lab.port}" for a in self.addresses)
        self.dir = f"/srv/fleet-{name}"
        self.port = free_port(self.addresses)
        self.artifacts = tmp / "artifacts"
        self.known_hosts = lab.known_hosts
        for i, addr in enumerate(self.addresses, start=1):
            shared = self.host_path(i) / "shared"
            shared.mkdir(parents=True, exist_ok=True)
            (shared / "addr").write_text(addr)
            (shared / "port").write_text(str(self.port))

    def host_path(self, index: int) -> Path:
        """The host's own /srv/fleet-NAME, seen from this machine."""
        return host_dir(index) / "srv" / self.dir.removeprefix("/srv/")

    def artifact(self, version: str, extra: str = "") -> None:
        folder = self.artifacts / version
        folder.mkdir(parents=True)
        (folder / "version.txt").write_text(f"{version}\n")
        (folder / "restart.sh").write_text(RESTART.replace("{bad}", extra))

    def config(self, keep: int = 5, **fleet: object) -> Path:
        hosts = "\n".join(f"      - ssh://root@{a}:{self.lab.port}" for a in self.addresses)
        fleet_yaml = json.dumps(fleet) if fleet else "{}"
        path = self.tmp / "releasegate.yaml"
        path.write_text(
            f"""\
stacks:
  web:
    env: staging
    runtime: releases
    hosts:
{hosts}
    dir: {self.dir}
    artifacts: ./artifacts
    commands:
      migrate: ["true"]   # once per fleet, on one host, between prepare and the batches
      restart: [sh, restart.sh]
    smoke:
      - http: "http://{{host}}:{self.port}/version.txt"
        body_contains: "{{version}}"
        retries: 20
        interval: 0.2
        timeout: 10
    backup: {{files: []}}
    keep_releases: {keep}
    fleet: {fleet_yaml}
"""
        )
        return path

    def env(self, known_hosts: Path | None = None) -> dict[str, str]:
        return rg_env(self.lab, known_hosts or self.known_hosts)

    def rg(
        self, *args: str, known_hosts: Path | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return run_rg(
            self.lab,
            self.tmp,
            *args,
            known_hosts=known_hosts or self.known_hosts,
            check=check,
            timeout=300,
        )

    def serving(self) -> list[str | None]:
        return serving(self.addresses, self.port)

    def current(self) -> list[str | None]:
        return current_links([self.host_path(i) / "current" for i in range(1, HOSTS + 1)])

    def stop_servers(self) -> None:
        for i in range(1, HOSTS + 1):
            pidfile = self.host_path(i) / "shared" / "http.pid"
            if pidfile.is_file():
                try:
                    os.kill(int(pidfile.read_text()), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass


@pytest.fixture()
def fleet(tmp_path: Path) -> object:
    lab = require_ssh_lab(HOSTS)
    f = Fleet(lab, tmp_path, f"{os.getpid()}-{time.monotonic_ns()}")
    yield f
    f.stop_servers()
    for i in range(1, HOSTS + 1):
        shutil.rmtree(f.host_path(i), ignore_errors=True)


def test_rolling_deploy_on_five_hosts(fleet: Fleet) -> None:
    fleet.artifact("v1")
    fleet.artifact("v2")
    fleet.config(strategy="all")
    fleet.rg("deploy", "web", "staging", "v1", check=True)
    assert fleet.serving() == ["v1"] * HOSTS

    plan = fleet.rg(
        "deploy", "web", "staging", "v2", "--dry-run", "--strategy", "rolling", "--batch", "2"
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "rolling: 3 batch(es) of 2+2+1 host(s)" in plan.stdout
    assert fleet.current() == ["v1"] * HOSTS  # a dry run changes nothing
    dry = fleet.rg(
        "deploy", "web", "staging", "v2", "--dry-run", "--json", "--strategy", "rolling",
        "--batch", "2",
    )  # fmt: skip
    steps = planned(dry.stdout)

    before = [accepted_logins(i) for i in range(1, HOSTS + 1)]
    proc = fleet.rg(
        "deploy", "web", "staging", "v2", "--strategy", "rolling", "--batch", "2", "--json"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = last_result(proc)
    assert result["status"] == "success"
    assert same_steps(steps, recorded(result)), (steps, recorded(result))  # the plan ran
    assert [n for n, _ in steps].count("switch") == 3
    assert [n for n, _ in steps][:3] == ["preflight", "prepare", "migrate"]
    rollout = [s for s in result["steps"] if s["step"] == "smoke"]  # type: ignore[union-attr]
    assert [s["evidence"]["batch"] for s in rollout] == [
        list(fleet.labels[0:2]),
        list(fleet.labels[2:4]),
        list(fleet.labels[4:5]),
    ]
    hosts = result["hosts"]
    assert sorted(hosts) == sorted(fleet.labels)  # type: ignore[arg-type]
    assert all(h["ok"] and h["version"] == "v2" for h in hosts.values())  # type: ignore[union-attr]
    assert fleet.serving() == ["v2"] * HOSTS
    assert fleet.current() == ["v2"] * HOSTS
    # One SSH connection per host for the whole run (preflight, upload, every phase, smoke).
    after = [accepted_logins(i) for i in range(1, HOSTS + 1)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1] * HOSTS
    # The artifact arrived as one checked upload per host, and the status shows one version.
    prepare = next(s for s in result["steps"] if s["step"] == "prepare")  # type: ignore[union-attr]
    for host in fleet.labels:
        assert len(prepare["evidence"]["hosts"][host]["upload"]["sha256"]) == 64
    status = fleet.rg("status", "--json", check=True).stdout.splitlines()
    web = next(row for row in map(json.loads, status) if row["stack"] == "web")
    assert web["hosts"] == {a: "v2" for a in fleet.labels}
    assert web["mixed"] is False

    # Someone switches one host by hand: status names it and flags the mixed fleet.
    link = fleet.host_path(HOSTS) / "current"
    link.unlink()
    link.symlink_to("releases/v1")
    rows = map(json.loads, fleet.rg("status", "--json", check=True).stdout.splitlines())
    web = next(row for row in rows if row["stack"] == "web")
    assert web["mixed"] is True and web["hosts"][fleet.labels[-1]] == "v1"
    assert any(w.startswith("mixed fleet: v1 on " + fleet.labels[-1]) for w in web["warnings"])
    table = fleet.rg("status", check=True).stdout
    assert f"web {fleet.labels[-1]}: v1" in table and "mixed fleet" in table

    # A rollback by hand takes the whole fleet back to the previous good version.
    back = fleet.rg("rollback", "web", "staging")
    assert back.returncode == 0, back.stdout + back.stderr
    assert fleet.current() == ["v1"] * HOSTS
    assert fleet.serving() == ["v1"] * HOSTS


def test_one_host_failing_smoke_rolls_the_whole_fleet_back(fleet: Fleet) -> None:
    fleet.artifact("v1")
    fleet.artifact("v2")
    fleet.artifact("v3", BAD.replace("{addr}", fleet.addresses[2]))
    fleet.config(strategy="rolling", batch=2)
    fleet.rg("deploy", "web", "staging", "v1", "--strategy", "all", check=True)
    fleet.rg("deploy", "web", "staging", "v2", "--strategy", "all", check=True)

    proc = fleet.rg("deploy", "web", "staging", "v3", "--json")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # rolled back
    result = last_result(proc)
    assert result["status"] == "rolled_back"
    assert fleet.labels[2] in str(result["message"])
    # Batch 1 (h1, h2) went live, batch 2 (h3, h4) failed on h3: h1..h4 went back to v2,
    # h5 was never touched. The fleet is on one version again, and every host answers.
    assert fleet.current() == ["v2"] * HOSTS
    assert fleet.serving() == ["v2"] * HOSTS
    hosts = result["hosts"]
    assert set(hosts) == set(fleet.labels[:4])  # type: ignore[arg-type]
    assert not hosts[fleet.labels[2]]["ok"]  # type: ignore[index]
    assert result["followups"][0]["status"] == "success"  # type: ignore[index]
    # The ledger keeps both runs, each host's part with them.
    lines = fleet.rg("history", "--json", check=True).stdout.splitlines()
    history = sorted(map(json.loads, lines), key=lambda h: h["started_at"])
    assert [(h["action"], h["version"], h["status"]) for h in history[-2:]] == [
        ("deploy", "v3", "fail"),
        ("rollback", "v2", "success"),
    ]


def test_a_failing_canary_is_the_only_host_that_switched(fleet: Fleet) -> None:
    fleet.artifact("v1")
    fleet.artifact("v2", BAD.replace("{addr}", fleet.addresses[0]))
    fleet.config(strategy="canary", canary=1)
    fleet.rg("deploy", "web", "staging", "v1", "--strategy", "all", check=True)

    proc = fleet.rg("deploy", "web", "staging", "v2", "--json")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    result = last_result(proc)
    assert result["status"] == "rolled_back"
    switched = [s for s in result["steps"] if s["step"] == "switch"]  # type: ignore[union-attr]
    assert [s["evidence"]["batch"] for s in switched] == [[fleet.labels[0]]]  # no second batch
    assert set(result["hosts"]) == {fleet.labels[0]}  # type: ignore[arg-type]
    # The canary went back; the others never left v1 (prepared, never switched).
    assert fleet.current() == ["v1"] * HOSTS
    assert fleet.serving() == ["v1"] * HOSTS


def test_a_fleets_files_are_backed_up_from_each_host(fleet: Fleet) -> None:
    # `dir` is a path on the hosts. This machine has the same path with other content: a
    # backup of it would pass for the hosts' files, so it must never be read.
    fleet.artifact("v1")
    config = fleet.config(strategy="all")
    config.write_text(config.read_text().replace("backup: {files: []}", "shared: [.env]"))
    for i in range(1, HOSTS + 1):
        (fleet.host_path(i) / "shared" / ".env").write_text(f"FROM=h{i}\n")
    here = Path(fleet.dir)
    assert not here.exists()
    (here / "shared").mkdir(parents=True)
    try:
        (here / "shared" / ".env").write_text("FROM=controller\n")
        plan = fleet.rg("deploy", "web", "staging", "v1", "--dry-run", check=True).stdout
        assert "config files shared/.env on each host" in plan, plan
        proc = fleet.rg("deploy", "web", "staging", "v1", "--json", check=True)
        step = next(s for s in last_result(proc)["steps"] if s["step"] == "backup")  # type: ignore[union-attr]
        sources = step["evidence"]["manifest"]["sources"]
        assert sorted(src["host"] for src in sources) == sorted(fleet.labels)
        backup_dir = Path(step["evidence"]["path"])
        for i, label in enumerate(fleet.labels, start=1):
            src = next(x for x in sources if x["host"] == label)
            with (backup_dir / src["file"]).open("rb") as packed:
                plain = zstandard.ZstdDecompressor().stream_reader(packed).read()
            archive = tarfile.open(fileobj=io.BytesIO(plain))
            member = archive.extractfile("shared/.env")
            assert member is not None and member.read() == f"FROM=h{i}\n".encode()
        verify = fleet.rg("backup", "verify", "web", check=True)
        assert "restores" in verify.stdout + verify.stderr
        # Taken by hand too, over one connection per host.
        fleet.rg("backup", "take", "web", "staging", check=True)
        listed = fleet.rg("backup", "list", "web", "--json", check=True).stdout.splitlines()
        assert len(listed) == 2
        # Restored with --config: each host gets back its own file, not another's nor ours.
        newest = json.loads(listed[0])["id"]
        for i in range(1, HOSTS + 1):
            (fleet.host_path(i) / "shared" / ".env").write_text("FROM=someone-else\n")
        refused = fleet.rg("restore", "web", "staging", "--from", newest, "--yes")
        assert refused.returncode == 2 and "--config" in refused.stderr, refused.stderr
        fleet.rg("restore", "web", "staging", "--from", newest, "--config", "--yes", check=True)
        for i in range(1, HOSTS + 1):
            assert (fleet.host_path(i) / "shared" / ".env").read_text() == f"FROM=h{i}\n"
        assert (here / "shared" / ".env").read_text() == "FROM=controller\n"
        assert fleet.serving() == ["v1"] * HOSTS  # restarted and smoked after the restore
    finally:
        shutil.rmtree(here, ignore_errors=True)


def test_cleanup_keeps_the_newest_releases_on_every_host(fleet: Fleet) -> None:
    for version in ("v1", "v2", "v3", "v4"):
        fleet.artifact(version)
    fleet.config(keep=2, strategy="all")
    for version in ("v1", "v2", "v3"):
        fleet.rg("deploy", "web", "staging", version, check=True)
    # A half-made release left by a crashed run on one host, and a folder nobody deployed.
    (fleet.host_path(2) / "releases" / ".v9.tmp-dead").mkdir()
    (fleet.host_path(3) / "releases" / "manual").mkdir()
    fleet.rg("deploy", "web", "staging", "v4", check=True)
    for i in range(1, HOSTS + 1):
        names = sorted(p.name for p in (fleet.host_path(i) / "releases").iterdir())
        # The newest two by the ledger's order, plus the last two good ones (rollback
        # targets); an unknown folder ranks oldest, so it goes with v1 and the half-made one.
        assert names == ["v2", "v3", "v4"], (i, names)
    assert fleet.serving() == ["v4"] * HOSTS


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def test_host_lost_mid_deploy_is_named_and_the_rest_rolled_back(fleet: Fleet) -> None:
    lost_index = 4
    lost = fleet.labels[lost_index - 1]
    fleet.artifact("v1")
    fleet.artifact("v4", HANG.replace("{addr}", fleet.addresses[lost_index - 1]))
    fleet.config(strategy="all")
    fleet.rg("deploy", "web", "staging", "v1", check=True)
    marker = fleet.host_path(lost_index) / "shared" / "hanging"
    env = fleet.env()
    run = subprocess.Popen(
        [RELEASEGATE, "deploy", "web", "staging", "v4", "--json"],
        cwd=fleet.tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert run.poll() is None and time.monotonic() < deadline, "the hang never started"
            time.sleep(0.1)
        # Kill that host's sshd: the listener and every session under it.
        pidfile = host_dir(lost_index) / "sshd.pid"
        for pid in _descendants(int(pidfile.read_text().strip())):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
        subprocess.run(["bash", str(REPO / "scripts/lab/ssh.sh"), "up", "5"], check=False)
    assert run.returncode == 4, stdout + stderr
    result = last_result(subprocess.CompletedProcess([], 4, stdout, stderr))
    assert lost in str(result["message"]) and "unreachable" in str(result["message"])
    assert result["hosts"][lost]["lost"] is True  # type: ignore[index]
    others = [i for i in range(HOSTS) if i != lost_index - 1]
    current = fleet.current()
    serving = fleet.serving()
    assert [current[i] for i in others] == ["v1"] * (HOSTS - 1)
    assert [serving[i] for i in others] == ["v1"] * (HOSTS - 1)


def _known_host(line: str) -> str:
    """The address of a known_hosts line: `127.0.0.12 ...` or `[127.0.0.12]:10022 ...`."""
    name = line.split(" ", 1)[0]
    return name[1:].split("]")[0] if name.startswith("[") else name


def test_unknown_host_key_refuses_the_deploy(fleet: Fleet, tmp_path: Path) -> None:
    stranger = fleet.addresses[1]
    stranger_label = fleet.labels[1]
    known = tmp_path / "known_hosts"
    lines = fleet.known_hosts.read_text().splitlines()
    known.write_text("".join(f"{ln}\n" for ln in lines if _known_host(ln) != stranger))
    assert all(_known_host(ln) != stranger for ln in known.read_text().splitlines())
    fleet.artifact("v1")
    fleet.config()
    proc = fleet.rg("deploy", "web", "staging", "v1", "--json", known_hosts=known)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # refused before anything changed
    result = last_result(proc)
    assert stranger_label in str(result["message"])
    assert fleet.current() == [None] * HOSTS

    # Trusting it takes an explicit option, and the accepted key is recorded.
    proc = fleet.rg(
        "deploy", "web", "staging", "v1", "--json", "--accept-new-host-keys", known_hosts=known
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stranger in known.read_text()
    preflight = next(s for s in last_result(proc)["steps"] if s["step"] == "preflight")  # type: ignore[union-attr]
    accepted = [c for c in preflight["checks"] if c["name"] == f"host:{stranger_label}"]
    assert "NEW host key SHA256:" in accepted[0]["summary"]
