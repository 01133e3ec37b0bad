"""Fleet deploy benchmark (issue 6): the same release to 1, 10 and 30 SSH hosts, done by
releasegate, by pyinfra and by ansible-core, side by side in one run.

    python benchmarks/fleet/run.py [--hosts 1,10,30] [--repeat 3]
        [--tools releasegate,pyinfra,ansible] [--json FILE] [--lab-root DIR] [--keep-lab]

The release, identical for every tool, on every host: upload app-<version>.tar.gz (about
1 MiB), unpack it into /srv/bench/app/releases/<version>, switch the /srv/bench/app/current
symlink atomically, run `sh /srv/bench/app/current/restart.sh` (stops the previous server by
its pid file, starts the new one detached on the host's own address), then GET
http://<host>:PORT/version.txt until it holds the version. Before each measured run every
host is on v1 (releasegate: its own deploy of v1, unmeasured; the peers: v1 laid out on disk by
the harness, its server started), and the run deploys v2. A run counts only when the tool
exited 0 and every host then serves v2 with `current` on releases/v2; anything else is an error.

The hosts are the SSH lab (scripts/lab/ssh.sh of --lab-root, default this checkout; started
with `up N` for the largest N, stopped again at the end when this run started it). Peers live
in their own virtualenv (lab-run/bench-peers/venv, created on first use from
benchmarks/fleet/peers/requirements.txt). Medians of --repeat runs; the tools take turns within
each repetition so a drift of the machine's load hits all of them. The table gives medians and
releasegate's ratio to each peer, then the issue's targets; the exit code is non-zero when a
run failed or a measured target is missed, but no test asserts on these timings.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.fleet import report  # noqa: E402

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
RESTART_SH = HERE / "app" / "restart.sh"
APP = "/srv/bench/app"  # on each host; the harness sees it as <lab>/hN/srv/bench/app
OLD, NEW = "v1", "v2"
PAYLOAD_BYTES = 1 << 20
TOOLS = ("releasegate", "pyinfra", "ansible", "floor")
PEER_TOOLS = ("pyinfra", "ansible")  # the ones that need the peers' venv
RUN_TIMEOUT_S = 900.0
SERVE_WAIT_S = 20.0
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[fleet {time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A run that did not deploy: reported as an error, never as a time."""


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_checked(argv: Sequence[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}):\n{tail(done.stdout + done.stderr)}")
    return done


# -- the lab -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    name: str  # h1, h2, ...
    addr: str
    srv: Path  # the host's /srv, as a directory of this machine

    @property
    def app(self) -> Path:
        return self.srv / "bench" / "app"


@dataclass(frozen=True)
class Lab:
    root: Path
    hosts: tuple[Host, ...]
    port: int
    user: str
    key: Path
    known_hosts: Path  # a copy taken at start: another `up N` of the lab rewrites the original
    ssh_config: Path
    started_here: bool

    def script(self) -> Path:
        return self.root / "scripts" / "lab" / "ssh.sh"


def read_facts(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            words = shlex.split(value)
            found[key.strip()] = words[0] if words else ""
    return found


def sshd_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().split()[0])
        return Path(f"/proc/{pid}/comm").read_text().strip() == "sshd"
    except (OSError, ValueError, IndexError):
        return False


def lab_up(root: Path, count: int, workdir: Path) -> Lab:
    ssh_dir = root / "lab-run" / "ssh"
    running = any(sshd_alive(p) for p in ssh_dir.glob("h*/sshd.pid"))
    say(f"SSH lab: bash {root}/scripts/lab/ssh.sh up {count}")
    run_checked(["bash", str(root / "scripts" / "lab" / "ssh.sh"), "up", str(count)], "ssh lab up")
    facts = read_facts(ssh_dir / "lab.env")
    addresses = facts["SSH_HOSTS"].split()
    if len(addresses) < count:
        raise SystemExit(f"the lab has {len(addresses)} hosts, {count} wanted")
    known = workdir / "known_hosts"
    shutil.copyfile(facts["SSH_KNOWN_HOSTS"], known)
    hosts = tuple(
        Host(f"h{i + 1}", addr, ssh_dir / f"h{i + 1}" / "srv") for i, addr in enumerate(addresses)
    )
    return Lab(
        root=root,
        hosts=hosts[:count],
        port=int(facts["SSH_PORT"]),
        user=facts["SSH_USER"],
        key=Path(facts["SSH_KEY"]),
        known_hosts=known,
        ssh_config=Path(facts["SSH_CONFIG"]),
        started_here=not running,
    )


# -- the app, its servers, and the hosts' state ----------------------------------------------


def build_artifact(dest: Path, version: str) -> Path:
    """app-<version>.tar.gz: version.txt, restart.sh, a page, ~1 MiB of incompressible data."""
    rng = random.Random(f"releasegate-fleet-bench-{version}")
    files = {
        "version.txt": f"{version}\n".encode(),
        "restart.sh": RESTART_SH.read_bytes(),
        "index.html": f"<!doctype html><title>bench</title><p>app {version}</p>\n".encode(),
        "static/app.js": f"console.log('app {version}');\n".encode() * 200,
        "data/payload.bin": rng.randbytes(PAYLOAD_BYTES),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for name in ("static", "data"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    path = dest / f"app-{version}.tar.gz"
    path.write_bytes(buf.getvalue())
    return path


def server_argv(addr: str, port: int, directory: Path) -> list[str]:
    """What restart.sh starts (busybox httpd when the machine has it, else python3)."""
    if shutil.which("busybox"):
        return ["busybox", "httpd", "-f", "-p", f"{addr}:{port}", "-h", str(directory)]
    return ["python3", "-m", "http.server", str(port), "--bind", addr, "-d", str(directory)]


def stop_server(host: Host) -> None:
    """Stop, by the pid in its pid file, the app server running for this host (if it is one)."""
    pidfile = host.app / "server.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if b"httpd" not in cmdline and b"http.server" not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (init here may reap an orphan late)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not any(line.split()[1:2] == ["Z"] for line in status.splitlines()
                   if line.startswith("State:"))  # fmt: skip


def reset_host(host: Host, http_port: int, old_artifact: Path | None) -> None:
    """A clean /srv/bench; with an artifact, v1 laid out and its server started."""
    stop_server(host)
    bench = host.srv / "bench"
    shutil.rmtree(bench, ignore_errors=True)
    bench.mkdir(parents=True)
    (bench / "addr").write_text(host.addr + "\n")
    (bench / "port").write_text(f"{http_port}\n")
    if old_artifact is None:
        return
    release = host.app / "releases" / OLD
    release.mkdir(parents=True)
    with tarfile.open(old_artifact) as tar:
        tar.extractall(release, filter="data")
    (host.app / "current").symlink_to(f"releases/{OLD}")
    # Detached as restart.sh does it (`setsid CMD &` in a shell that exits): the server is not
    # our child, so once killed it is reaped by init and never lingers as our zombie.
    started = run_checked(
        ["sh", "-c", 'setsid "$@" </dev/null >"$0" 2>&1 & echo $!', str(host.app / "server.log"),
         *server_argv(host.addr, http_port, release)],
        "start the v1 server",
    )  # fmt: skip
    (host.app / "server.pid").write_text(started.stdout.strip() + "\n")


def fetch(url: str) -> str | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    try:
        with opener.open(url, timeout=2) as resp:
            return str(resp.read().decode())
    except (OSError, urllib.error.URLError):
        return None


def serving(hosts: Sequence[Host], http_port: int, version: str, wait_s: float = 0.0) -> list[str]:
    """Problems (empty when every host serves `version` with current on releases/<version>)."""
    deadline = time.monotonic() + wait_s
    pending = list(hosts)
    problems: dict[str, str] = {}
    while True:
        problems.clear()
        for host in pending:
            try:
                link = os.readlink(host.app / "current")
            except OSError as exc:
                problems[host.name] = f"no current link ({exc.strerror})"
                continue
            if Path(link).name != version:
                problems[host.name] = f"current -> {link}"
                continue
            body = fetch(f"http://{host.addr}:{http_port}/version.txt")
            if body is None or body.strip() != version:
                problems[host.name] = f"serves {body.strip() if body else 'nothing'!r}"
        pending = [h for h in pending if h.name in problems]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return [f"{name}: {why}" for name, why in problems.items()]


def expect_serving(hosts: Sequence[Host], http_port: int, version: str, wait_s: float) -> None:
    problems = serving(hosts, http_port, version, wait_s)
    if problems:
        shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if problems[5:] else "")
        raise BenchError(f"{len(problems)}/{len(hosts)} hosts not on {version}: {shown}")


# -- the tools -------------------------------------------------------------------------------


@dataclass
class Context:
    lab: Lab
    work: Path
    http_port: int
    artifacts: dict[str, Path]  # version -> app-<version>.tar.gz
    venv: Path
    releasegate: list[str]
    logs: Path  # each run's output, the last run of each (tool, hosts) kept


@dataclass
class Prepared:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    cleanup: Callable[[], None] = lambda: None


def peers_bin(ctx: Context, name: str) -> str:
    return str(ctx.venv / "bin" / name)


def prepare_pyinfra(ctx: Context, hosts: Sequence[Host]) -> Prepared:
    for host in hosts:
        reset_host(host, ctx.http_port, ctx.artifacts[OLD])
    expect_serving(hosts, ctx.http_port, OLD, SERVE_WAIT_S)
    work = ctx.work / "pyinfra"
    work.mkdir(exist_ok=True)
    inventory = work / "inventory.py"
    ssh = {
        "ssh_user": ctx.lab.user,
        "ssh_port": ctx.lab.port,
        "ssh_key": str(ctx.lab.key),
        "ssh_known_hosts_file": str(ctx.lab.known_hosts),
        "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
    }
    entries = [(h.addr, {**ssh, "addr": h.addr}) for h in hosts]
    inventory.write_text(f"# Written by benchmarks/fleet/run.py\nbench = {entries!r}\n")
    argv = [
        peers_bin(ctx, "pyinfra"),
        "-y",
        "--parallel",
        str(max(len(hosts), 1)),
        str(inventory),
        str(PEERS / "pyinfra_deploy.py"),
        "--data",
        f"version={NEW}",
        "--data",
        f"artifact={ctx.artifacts[NEW]}",
        "--data",
        f"http_port={ctx.http_port}",
    ]
    return Prepared(argv, work, {**os.environ, "PYINFRA_PROGRESS": "off"})


def prepare_ansible(ctx: Context, hosts: Sequence[Host]) -> Prepared:
    for host in hosts:
        reset_host(host, ctx.http_port, ctx.artifacts[OLD])
    expect_serving(hosts, ctx.http_port, OLD, SERVE_WAIT_S)
    work = ctx.work / "ansible"
    work.mkdir(exist_ok=True)
    # A fresh control-path directory per run: a run never reuses the previous run's masters.
    control = Path(tempfile.mkdtemp(prefix="cp-", dir=work))
    lines = ["[bench]"]
    lines += [f"{h.name} ansible_host={h.addr} addr={h.addr}" for h in hosts]
    lines += [
        "",
        "[bench:vars]",
        f"ansible_port={ctx.lab.port}",
        f"ansible_user={ctx.lab.user}",
        f"ansible_ssh_private_key_file={ctx.lab.key}",
        "ansible_python_interpreter=/usr/bin/python3",
    ]
    (work / "inventory.ini").write_text("\n".join(lines) + "\n")
    cfg = work / "ansible.cfg"
    cfg.write_text(
        "# Written by benchmarks/fleet/run.py\n"
        "[defaults]\n"
        f"inventory = {work / 'inventory.ini'}\n"
        f"forks = {max(len(hosts), 5)}\n"
        "host_key_checking = True\n"
        "retry_files_enabled = False\n"
        "[ssh_connection]\n"
        "pipelining = True\n"
        f"control_path_dir = {control}\n"
        "ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s"
        f" -o UserKnownHostsFile={ctx.lab.known_hosts} -o GlobalKnownHostsFile=/dev/null"
        " -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\n"
    )
    extra = json.dumps({"version": NEW, "artifact": str(ctx.artifacts[NEW]),
                        "http_port": ctx.http_port})  # fmt: skip
    argv = [peers_bin(ctx, "ansible-playbook"), str(PEERS / "ansible_deploy.yml"), "-e", extra]
    env = {**os.environ, "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_NOCOLOR": "1"}

    def close_masters() -> None:  # unmeasured: end the ControlPersist masters of this run
        for sock in control.iterdir():
            subprocess.run(["ssh", "-S", str(sock), "-O", "exit", "bench"],
                           capture_output=True, check=False, timeout=10)  # fmt: skip
        shutil.rmtree(control, ignore_errors=True)

    return Prepared(argv, work, env, close_masters)


def releasegate_workspace(ctx: Context, hosts: Sequence[Host]) -> Path:
    work = ctx.work / "releasegate"
    shutil.rmtree(work, ignore_errors=True)
    (work / "artifacts").mkdir(parents=True)
    for version, path in ctx.artifacts.items():
        os.link(path, work / "artifacts" / f"{version}.tar.gz")
    urls = ", ".join(f"ssh://{ctx.lab.user}@{h.addr}:{ctx.lab.port}" for h in hosts)
    (work / "releasegate.yaml").write_text(
        f"""# Written by benchmarks/fleet/run.py
state: .releasegate/state.db
stacks:
  bench:
    env: staging
    runtime: releases
    hosts: [{urls}]
    dir: {APP}
    artifacts: ./artifacts
    commands:
      restart: [sh, {APP}/current/restart.sh]
    smoke:
      - http: "http://{{host}}:{ctx.http_port}/version.txt"
        body_contains: "{{version}}"
    backup: {{files: []}}
    fleet: {{strategy: all, parallel: 64}}
"""
    )
    return work


def releasegate_env(ctx: Context) -> dict[str, str]:
    return {
        **os.environ,
        "RELEASEGATE_SSH_KEY": str(ctx.lab.key),
        "RELEASEGATE_KNOWN_HOSTS": str(ctx.lab.known_hosts),
        "RELEASEGATE_SSH_CONFIG": str(ctx.lab.ssh_config),
        "RELEASEGATE_USER": "bench",
        "NO_COLOR": "1",
    }


def prepare_releasegate(ctx: Context, hosts: Sequence[Host]) -> Prepared:
    for host in hosts:
        reset_host(host, ctx.http_port, None)
    work = releasegate_workspace(ctx, hosts)
    env = releasegate_env(ctx)
    # Unmeasured: releasegate's own deploy of v1, so its ledger knows what runs.
    first = subprocess.run(
        [*ctx.releasegate, "deploy", "bench", "staging", OLD, "--json"],
        cwd=work, env=env, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    if first.returncode != 0:
        output = tail(first.stdout + first.stderr)
        raise BenchError(f"setup deploy of {OLD} failed ({first.returncode}): {output}")
    expect_serving(hosts, ctx.http_port, OLD, SERVE_WAIT_S)
    argv = [*ctx.releasegate, "deploy", "bench", "staging", NEW, "--json"]
    return Prepared(argv, work, env)


def prepare_floor(ctx: Context, hosts: Sequence[Host]) -> Prepared:
    """No tool: peers/floor.sh, one ssh and one curl per host (the least work there is)."""
    missing = [c for c in ("ssh", "curl", "sha256sum") if shutil.which(c) is None]
    if missing:
        raise BenchError(f"the floor needs {', '.join(missing)} on this machine")
    for host in hosts:
        reset_host(host, ctx.http_port, ctx.artifacts[OLD])
    expect_serving(hosts, ctx.http_port, OLD, SERVE_WAIT_S)
    work = ctx.work / "floor"
    work.mkdir(exist_ok=True)
    lab = ctx.lab
    argv = ["bash", str(PEERS / "floor.sh"), str(ctx.artifacts[NEW]), NEW, str(lab.port),
            lab.user, str(lab.key), str(lab.known_hosts), str(ctx.http_port),
            *(h.addr for h in hosts)]  # fmt: skip
    return Prepared(argv, work, dict(os.environ))


PREPARE: dict[str, Callable[[Context, Sequence[Host]], Prepared]] = {
    "releasegate": prepare_releasegate,
    "pyinfra": prepare_pyinfra,
    "ansible": prepare_ansible,
    "floor": prepare_floor,
}


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float  # the tool's own CPU time (user + system, with the children it waited for)
    host_cpu_s: float  # the hosts' side: every sshd session and the commands it ran
    machine_busy: float  # share of the machine's CPUs busy during the run (anyone's work)


def cpu_counters() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(ctx: Context, tool: str, hosts: Sequence[Host]) -> Sample:
    """One verified run of `tool` from v1 to v2 on `hosts`: its wall time, and what CPU it, the
    hosts and the whole machine (the hosts' sshd included: they share its CPUs) used."""
    prepared = PREPARE[tool](ctx, hosts)
    try:
        settle(hosts)  # the set-up's own sessions are over before the count starts
        host0 = hosts_cpu(hosts)
        busy0, total0 = cpu_counters()
        cpu0 = children_cpu()
        started = time.perf_counter()
        try:
            done = subprocess.run(
                prepared.argv, cwd=prepared.cwd, env=prepared.env, capture_output=True,
                text=True, check=False, timeout=RUN_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"no exit after {RUN_TIMEOUT_S:.0f}s") from exc
        elapsed = time.perf_counter() - started
        cpu = children_cpu() - cpu0
        busy1, total1 = cpu_counters()
        log = ctx.logs / f"{tool}-{len(hosts)}.log"
        log.write_text(f"$ {shlex.join(prepared.argv)}\n{done.stdout}\n{done.stderr}")
        if done.returncode != 0:
            raise BenchError(f"exit {done.returncode}: {tail(done.stdout + done.stderr, 12)}")
        # The tool said it is done: every host must serve v2 now (no grace period).
        expect_serving(hosts, ctx.http_port, NEW, 0.0)
    finally:
        prepared.cleanup()
    settle(hosts)  # ansible's ControlPersist masters end in cleanup: their work counts too
    host_cpu = hosts_cpu(hosts) - host0
    return Sample(elapsed, cpu, host_cpu, (busy1 - busy0) / max(total1 - total0, 1.0))


def listener_pids(hosts: Sequence[Host]) -> list[int]:
    """Each host's sshd listener (lab-run/ssh/hN/sshd.pid, beside the host's srv)."""
    pids = []
    for host in hosts:
        try:
            pids.append(int((host.srv.parent / "sshd.pid").read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def hosts_cpu(hosts: Sequence[Host]) -> float:
    """CPU seconds the hosts' sshd listeners have reaped: every finished session, with the
    commands it ran (a session's processes are the listener's descendants until they end)."""
    ticks = 0
    for pid in listener_pids(hosts):
        fields = proc_stat(pid)
        if fields is not None:
            ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def settle(hosts: Sequence[Host], wait_s: float = 5.0) -> None:
    """Wait until no sshd session runs under the hosts' listeners (closed connections take a
    moment to end), so that hosts_cpu counts whole sessions."""
    listeners = set(listener_pids(hosts))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        busy = False
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                fields = proc_stat(int(entry.name))
                if fields is not None and int(fields[1]) in listeners:
                    busy = True
                    break
        if not busy:
            return
        time.sleep(0.05)


# -- set-up ----------------------------------------------------------------------------------


def peer_python() -> str:
    """A python3.12+ of this machine for the peers (ansible-core 2.21 needs it), else ours."""
    for name in ("python3.12", "python3.13"):
        exe = shutil.which(name)
        if not exe:
            continue
        probe = subprocess.run([exe, "-c", "import sys; print(sys.executable)"],
                               capture_output=True, text=True, check=False)  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip():
            return probe.stdout.strip()  # through a pyenv shim: the real interpreter
    return sys.executable


def ensure_peers(venv: Path) -> dict[str, str]:
    requirements = PEERS / "requirements.txt"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if not (stamp.is_file() and stamp.read_text() == digest and python.exists()):
        if not python.exists():
            base = peer_python()
            say(f"peers: creating the virtualenv {venv} ({base})")
            venv.parent.mkdir(parents=True, exist_ok=True)
            run_checked([base, "-m", "venv", str(venv)], "python -m venv")
        say(f"peers: pip install -r {requirements.relative_to(ROOT)} (a minute or so)")
        run_checked([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                    "pip install (peers)")  # fmt: skip
        stamp.write_text(digest)
    versions = {}
    for tool in ("pyinfra", "ansible"):
        out = run_checked([str(venv / "bin" / tool), "--version"], f"{tool} --version")
        versions[tool] = out.stdout.strip().splitlines()[0]
    versions["python"] = run_checked([str(python), "--version"], "python --version").stdout.strip()
    return versions


def releasegate_argv() -> list[str]:
    for candidate in (Path(sys.executable).parent / "releasegate", ROOT / ".venv/bin/releasegate"):
        if candidate.exists():
            # An editable install never writes releasegate's own .pyc files when
            # PYTHONDONTWRITEBYTECODE is set, so each run would compile what changed since
            # they were written; `pip install` compiles them, as it did for the peers. Same here.
            python = candidate.parent / "python"
            code = "import compileall, pathlib, releasegate as r; "
            code += "compileall.compile_dir(pathlib.Path(r.__file__).parent, quiet=1)"
            run_checked([str(python), "-c", code], "compile releasegate's bytecode")
            return [str(candidate)]
    raise SystemExit("releasegate is not installed: run with the project's venv "
                     "(.venv/bin/python benchmarks/fleet/run.py)")  # fmt: skip


def ensure_busybox() -> None:
    """The app's server: busybox httpd (cheap to start), installed like the lab installs."""
    if shutil.which("busybox") or not shutil.which("apt-get"):
        return
    say("apt-get install busybox-static (the app's HTTP server)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "busybox-static"]
    if subprocess.run(cmd, capture_output=True, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, check=False)
        subprocess.run(cmd, capture_output=True, env=env, check=False)
    if not shutil.which("busybox"):
        say("no busybox: restart.sh falls back to python3 -m http.server")


def parse_hosts(text: str) -> list[int]:
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("host counts are numbers >= 1, e.g. 1,10,30")
    return counts


def parse_tools(text: str) -> list[str]:
    tools = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown or not tools:
        raise argparse.ArgumentTypeError(f"tools are some of {','.join(TOOLS)}")
    return [t for t in TOOLS if t in tools]  # always releasegate first


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--hosts", type=parse_hosts, default=[1, 10, 30])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", type=parse_tools, default=list(TOOLS))
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    parser.add_argument("--lab-root", type=Path, default=ROOT,
                        help="the checkout whose scripts/lab/ssh.sh runs the hosts")  # fmt: skip
    parser.add_argument("--keep-lab", action="store_true",
                        help="leave the lab up even when this run started it")  # fmt: skip
    parser.add_argument("--http-port", type=int, default=18480, help="the app's port on hosts")
    parser.add_argument("--logs", type=Path, help="keep each tool's output in this folder")
    parser.add_argument("--peers-venv", type=Path, default=ROOT / "lab-run/bench-peers/venv")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    versions: dict[str, str] = {}
    if any(t in PEER_TOOLS for t in args.tools):
        versions = ensure_peers(args.peers_venv)
        say("peers: " + "; ".join(f"{k} {v}" for k, v in versions.items()))
    rg = releasegate_argv() if "releasegate" in args.tools else []
    ensure_busybox()
    times: dict[str, dict[int, list[float]]] = {t: {} for t in args.tools}
    errors: dict[str, dict[int, str]] = {t: {} for t in args.tools}
    cpu: dict[str, dict[int, list[float]]] = {t: {} for t in args.tools}
    busy: dict[str, dict[int, list[float]]] = {t: {} for t in args.tools}
    host_cpu: dict[str, dict[int, list[float]]] = {t: {} for t in args.tools}
    with tempfile.TemporaryDirectory(prefix="rg-bench-fleet-") as tmp:
        work = Path(tmp)
        lab = lab_up(args.lab_root.resolve(), max(args.hosts), work)
        artifacts = {v: build_artifact(work, v) for v in (OLD, NEW)}
        artifact_bytes = artifacts[NEW].stat().st_size
        logs = args.logs or work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        ctx = Context(lab, work, args.http_port, artifacts, args.peers_venv, rg, logs)
        say(f"{len(lab.hosts)} hosts {lab.hosts[0].addr}.. port {lab.port};"
            f" artifact {artifact_bytes // 1024} KiB;"
            f" app server {server_argv('ADDR', 0, Path('.'))[0]}")  # fmt: skip
        try:
            for count in args.hosts:
                hosts = lab.hosts[:count]
                for rep in range(args.repeat):
                    order = (
                        args.tools[rep % len(args.tools) :] + args.tools[: rep % len(args.tools)]
                    )
                    for tool in order:
                        if count in errors[tool]:
                            continue
                        try:
                            sample = measure(ctx, tool, hosts)
                        except BenchError as exc:
                            errors[tool][count] = str(exc)
                            say(f"{count:>3} hosts  {tool:<11} run {rep + 1}: ERROR {exc}")
                            continue
                        times[tool].setdefault(count, []).append(sample.wall_s)
                        cpu[tool].setdefault(count, []).append(sample.cpu_s)
                        busy[tool].setdefault(count, []).append(sample.machine_busy)
                        host_cpu[tool].setdefault(count, []).append(sample.host_cpu_s)
                        say(f"{count:>3} hosts  {tool:<11} run {rep + 1}: {sample.wall_s:6.2f} s"
                            f" (all {count} on {NEW}; tool CPU {sample.cpu_s:.2f} s,"
                            f" hosts' CPU {sample.host_cpu_s:.2f} s,"
                            f" machine {sample.machine_busy:.0%} busy)")  # fmt: skip
        finally:
            for host in lab.hosts:
                stop_server(host)
                shutil.rmtree(host.srv / "bench", ignore_errors=True)
            if lab.started_here and not args.keep_lab:
                say("SSH lab: down (this run started it)")
                subprocess.run(["bash", str(lab.script()), "down"], capture_output=True,
                               check=False)  # fmt: skip

    lines = report.table(times, args.tools, args.hosts, errors)
    print(f"\nfleet deploy {OLD} -> {NEW}, wall time, median of {args.repeat}"
          f" ({platform.node()}, {os.cpu_count()} CPUs)")  # fmt: skip
    if versions:
        print(f"peers: {versions['pyinfra']}, {versions['ansible']} ({versions['python']})")
    print("\n".join(lines))
    print("\nthe tool's own CPU time (user + system), median; the hosts' sshd work is not in it")
    print("\n".join(report.table(cpu, args.tools, args.hosts, errors, with_targets=False)))
    print("\nthe hosts' CPU time (every sshd session and what it ran), median; the same machine")
    print("\n".join(report.table(host_cpu, args.tools, args.hosts, errors, with_targets=False)))
    med = report.medians(times, errors)
    found = report.targets(med, args.hosts) if "releasegate" in args.tools else []
    if args.json:
        args.json.write_text(json.dumps({
            "workload": {"from": OLD, "to": NEW, "artifact_bytes": artifact_bytes,
                         "app_server": server_argv("ADDR", 0, Path("."))[0]},
            "machine": {"node": platform.node(), "cpus": os.cpu_count(),
                        "python": platform.python_version()},
            "peers": versions,
            "repeat": args.repeat,
            "runs_s": {t: {str(n): [round(x, 3) for x in v] for n, v in c.items()}
                       for t, c in times.items()},
            "median_s": {t: {str(n): round(x, 3) for n, x in c.items()} for t, c in med.items()},
            "tool_cpu_s": {t: {str(n): [round(x, 3) for x in v] for n, v in c.items()}
                           for t, c in cpu.items()},
            "host_cpu_s": {t: {str(n): [round(x, 3) for x in v] for n, v in c.items()}
                           for t, c in host_cpu.items()},
            "machine_busy": {t: {str(n): [round(x, 3) for x in v] for n, v in c.items()}
                             for t, c in busy.items()},
            "targets": [{"name": t.name, "value": None if t.value is None else round(t.value, 3),
                         "limit": t.limit, "ok": t.ok,
                         "allowed_s": None if t.allowed_s is None else round(t.allowed_s, 3),
                         "floor_s": None if t.floor_s is None else round(t.floor_s, 3),
                         "reachable": t.reachable} for t in found],
            "errors": {t: {str(n): e for n, e in c.items()} for t, c in errors.items() if c},
        }, indent=2) + "\n")  # fmt: skip
        say(f"wrote {args.json}")
    failed = any(errors.values()) or any(t.ok is False for t in found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
