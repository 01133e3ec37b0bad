"""The crash matrix's harness (issue 15): a releases stack whose app answers its version over
HTTP, a run of the real CLI stopped at a chosen step, a signal, and what must hold after.

A case: v1 then v2 are deployed (v2 is the last good version), then `deploy v3` (or
`rollback`, from v2 to v1) runs with the failpoint `RELEASEGATE_PAUSE_AT=<step>`
(src/releasegate/failpoint.py), which holds the run right after the step's ledger row opened
(until its file `RELEASEGATE_PAUSE_FILE` is removed, which the test does once it signalled);
the step `restart-cmd` instead holds the team's own restart command half way (the release's
restart.sh waits while `<dir>/hold-restart` is armed). The test then signals the CLI:

- SIGINT to the CLI's whole process group, as a terminal's Ctrl-C does (the CLI runs in a
  session of its own, like a foreground job);
- SIGINT twice: the second Ctrl-C comes while the first one's rollback runs the restart
  command (held the same way); the CLI exits at once, leaving what a SIGKILL leaves;
- SIGTERM to the CLI's process only (`kill PID`): the CLI must stop its command itself;
- SIGKILL to the CLI's process only (`kill -9`, the OOM killer): nothing runs after it. A team
  command it left behind goes on as an orphan would, and is let finish.

What must hold after each (`check_case`), in this order:
- the app answers the old or the new version, never neither;
- SIGINT/SIGTERM: the team's command stopped, no ledger row left `running`, the lock
  released, the step recorded `aborted`, the version of `Case.after_abort` answering (a
  deploy that had switched: the old one back, unless it had already verified the new one at
  cleanup; a rollback that had switched: completed to its target), and the exit code
  (EXIT_SIGINT, EXIT_SIGTERM);
- `audit verify` passes;
- SIGKILL and two Ctrl-C: `status` (twice, with `history` between) keeps saying the stack
  needs recovery;
- the next command (`deploy v3` again, or `rollback` again; `rollback --to v1` when the safe
  point had completed it) succeeds and ends on the version it was asked for: a re-run
  interrupted rollback completes to its original target (v1);
- `history` shows the interrupted run (`interrupted` after a SIGKILL, `aborted` after
  SIGINT/SIGTERM) and the next run's success last; if an interrupted deploy had switched, a
  successful rollback to the old version is recorded after it (by the safe point, or by the
  next deploy's recovery); nothing is left `running`; `audit verify` passes again.

Each stack's app is `python3 -m http.server` serving the release folder, whose version.txt
holds the version; restart.sh stops the previous server and starts the new one in a session
of its own (it outlives releasegate, as a real service does).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Exit codes of a run stopped by a signal: 128 + the signal's number, as a shell reports it.
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
# What the CLI may take to reach a safe point after a signal (it rolls back and smokes).
EXIT_LIMIT = 30.0

SIGNALS = ("SIGINT", "SIGINT2", "SIGTERM", "SIGKILL")

RESTART = """\
#!/bin/sh
# The team's restart command: stop the previous server, start this release's.
set -eu
here=$(pwd -P)
addr=$(cat "$RELEASEGATE_SHARED_DIR/addr")
port=$(cat "$RELEASEGATE_SHARED_DIR/port")
pidfile="$RELEASEGATE_SHARED_DIR/http.pid"
# Armed by the crash matrix: hold half way, once, until released (or 60 s).
if mv "$RELEASEGATE_DIR/hold-restart" "$RELEASEGATE_DIR/hold-taken" 2>/dev/null; then
  echo $$ > "$RELEASEGATE_DIR/holding"
  i=0
  while [ ! -f "$RELEASEGATE_DIR/release-hold" ] && [ $i -lt 600 ]; do
    sleep 0.1; i=$((i+1))
  done
fi
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  kill "$old" 2>/dev/null || true
  # until it is gone (a zombie counts as gone: it holds no socket)
  i=0
  while [ -d "/proc/$old" ] && ! grep -q '^State:.*Z' "/proc/$old/status" 2>/dev/null \
      && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done
fi
setsid python3 -m http.server "$port" --bind "$addr" --directory "$here" \\
  </dev/null >>"$RELEASEGATE_SHARED_DIR/http.log" 2>&1 &
echo $! > "$pidfile"
"""

CONFIG = """\
stacks:
  web:
    env: staging
    runtime: releases
{hosts}    dir: {dir}
    artifacts: ./artifacts
    shared: [addr, port]
    keep_releases: 5
    commands:
      migrate: "true"
      restart: [sh, restart.sh]
    smoke:
      - name: version
        http: "http://{addr}:{port}/version.txt"
        body_contains: "{{version}}"
        retries: 40
        interval: 0.05
        timeout: 5
"""


@dataclass(frozen=True)
class Case:
    """One cell of the matrix."""

    action: str  # deploy | rollback
    step: str  # a step name for the failpoint, or restart-cmd: inside the team's command
    sig: str  # one of SIGNALS

    @property
    def id(self) -> str:
        return f"{self.action}-{self.step}-{self.sig}"

    @property
    def old(self) -> str:
        """The version that ran before the interrupted run."""
        return "v2"

    @property
    def new(self) -> str:
        """The version the interrupted run was taking the stack to."""
        return "v3" if self.action == "deploy" else "v1"

    @property
    def command(self) -> tuple[str, ...]:
        """The interrupted command, and the next one that must recover (the same again)."""
        if self.action == "deploy":
            return ("deploy", "web", "staging", self.new)
        return ("rollback", "web", "staging")

    @property
    def next_command(self) -> tuple[str, ...]:
        """The command after the interruption: the same again. A rollback that its safe point
        already completed is asked for its target by name (a plain `rollback` would now go
        one further back, rightly)."""
        if self.action == "rollback" and self.graceful and self.after_abort == self.new:
            return (*self.command, "--to", self.new)
        return self.command

    @property
    def switched(self) -> bool:
        """Whether `current` had moved when the signal came (the pause is before the step)."""
        return self.step in ("restart", "restart-cmd", "smoke", "cleanup")

    @property
    def verified(self) -> bool:
        """A deploy stopped at cleanup had passed its smoke and marked the new version."""
        return self.action == "deploy" and self.step == "cleanup"

    @property
    def after_abort(self) -> str:
        """What runs once SIGINT/SIGTERM reached the safe point. A deploy brings the old
        version back if it had switched, unless it had already verified the new one
        (stopped at cleanup); a rollback that had switched completes to its target (the
        version it was rolling away from is the one that was not wanted)."""
        if self.action == "deploy":
            return self.new if self.verified else self.old
        return self.new if self.switched else self.old

    @property
    def graceful(self) -> bool:
        return self.sig in ("SIGINT", "SIGTERM")


def cases(action: str, steps: tuple[str, ...], signals: tuple[str, ...]) -> list[Case]:
    return [Case(action, step, sig) for step in steps for sig in signals]


@dataclass
class CrashStack:
    """A releases stack `web` (env staging) in `root`, on this machine or on one SSH host.

    `dir_here` is where the stack's dir is seen from this machine (the SSH lab's hosts have
    their /srv under lab-run/)."""

    root: Path
    dir_here: Path
    addr: str
    port: int
    env: dict[str, str]
    host_url: str | None = None
    dir_config: str = "srv/web"
    base_seq: int | None = None  # the ledger's last seq before the case, when known
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def write(self) -> None:
        for version in ("v1", "v2", "v3"):
            folder = self.root / "artifacts" / version
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "version.txt").write_text(f"{version}\n", encoding="utf-8")
            (folder / "restart.sh").write_text(RESTART, encoding="utf-8")
        shared = self.dir_here / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        (shared / "addr").write_text(self.addr, encoding="utf-8")
        (shared / "port").write_text(str(self.port), encoding="utf-8")
        hosts = f"    hosts: [{self.host_url}]\n" if self.host_url else ""
        (self.root / "releasegate.yaml").write_text(
            CONFIG.format(hosts=hosts, dir=self.dir_config, addr=self.addr, port=self.port),
            encoding="utf-8",
        )

    # -- the CLI ---------------------------------------------------------------------------
    def rg(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "releasegate", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def rg_ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        out = self.rg(*args)
        assert out.returncode == 0, f"releasegate {' '.join(args)}: rc {out.returncode}\n" + (
            out.stdout[-3000:] + out.stderr[-3000:]
        )
        return out

    def start(self, *args: str, extra_env: dict[str, str]) -> subprocess.Popen[str]:
        """The CLI in a session of its own, as a shell runs a foreground job."""
        log = open(self.root / "run.log", "w", encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "releasegate", *args],
            cwd=self.root,
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def run_log(self) -> str:
        path = self.root / "run.log"
        return path.read_text(encoding="utf-8", errors="replace")[-1500:] if path.is_file() else ""

    def history(self, *args: str) -> list[dict[str, Any]]:
        out = self.rg_ok("history", "--json", "--stack", "web", *args)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def status_row(self) -> dict[str, Any]:
        out = self.rg_ok("status", "--json")
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        return next(r for r in rows if r["stack"] == "web")

    def lock_held(self) -> bool:
        out = self.rg_ok("lock", "status", "--json")
        return any(json.loads(x)["stack"] == "web" for x in out.stdout.splitlines() if x.strip())

    # -- the app ---------------------------------------------------------------------------
    def answering(self) -> str | None:
        try:
            url = f"http://{self.addr}:{self.port}/version.txt"
            with urllib.request.urlopen(url, timeout=3) as r:
                return str(r.read().decode().strip())
        except OSError:
            return None

    def settle(self, limit: float = 5.0) -> str | None:
        """What the app answers once it answers at all (a restart takes a moment)."""
        deadline = time.monotonic() + limit
        while True:
            seen = self.answering()
            if seen is not None or time.monotonic() > deadline:
                return seen
            time.sleep(0.05)

    def unpause(self) -> bool:
        """Let a run held by the failpoint go on (it waits until its file is removed)."""
        (self.root / "paused").unlink(missing_ok=True)
        return False

    def holder_pid(self) -> int | None:
        try:
            return int((self.dir_here / "holding").read_text().strip())
        except (OSError, ValueError):
            return None

    def cleanup(self) -> None:
        """Stop what a case left: the CLI's process group, a held restart command (killed: let
        go, it would start an app after the test), the app."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=30)
        for path in self.dir_here.glob("holding*"):
            try:
                holder = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
            if alive(holder):
                os.kill(holder, signal.SIGKILL)
        stop_app(self)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def wait_until(predicate: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def base_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The CLI's environment: none of the caller's RELEASEGATE_* settings, this config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(extra or {})
    env.update(
        RELEASEGATE_CONFIG=str(root / "releasegate.yaml"),
        RELEASEGATE_USER="tester",
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


def stop_app(stack: CrashStack) -> None:
    try:
        pid = int((stack.dir_here / "shared" / "http.pid").read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_until(lambda: not alive(pid), 5)


def clone(
    template: CrashStack, root: Path, *, dir_here: Path, dir_config: str, port: int
) -> CrashStack:
    """A copy of a prepared stack (its ledger, releases and `current`) with a dir and a port
    of its own, its app started on v2. Releases link their shared entries to the template's
    (same names and content); the app reads the copy's, which the engine names."""
    shutil.copytree(template.root, root, symlinks=True)
    if not dir_here.is_relative_to(root):
        shutil.copytree(template.dir_here, dir_here, symlinks=True)
    config = root / "releasegate.yaml"
    text = config.read_text(encoding="utf-8")
    text = text.replace(f"dir: {template.dir_config}\n", f"dir: {dir_config}\n")
    config.write_text(text.replace(f":{template.port}/", f":{port}/"), encoding="utf-8")
    env = dict(template.env, RELEASEGATE_CONFIG=str(config))
    copy = CrashStack(root, dir_here, template.addr, port, env, template.host_url, dir_config)
    copy.base_seq = template.base_seq
    (dir_here / "shared" / "port").write_text(str(port), encoding="utf-8")
    (dir_here / "shared" / "http.pid").unlink(missing_ok=True)  # the template's app
    subprocess.run(
        ["sh", "restart.sh"],
        cwd=dir_here / "current",
        env={
            **env,
            "RELEASEGATE_DIR": str(dir_here),
            "RELEASEGATE_SHARED_DIR": str(dir_here / "shared"),
        },
        check=True,
        timeout=30,
    )
    assert copy.settle() == "v2"
    return copy


def prepare_stack(stack: CrashStack) -> None:
    """v1 then v2 deployed: v2 runs and is the last good version, v1 the one before."""
    stack.write()
    stack.rg_ok("deploy", "web", "staging", "v1")
    stack.rg_ok("deploy", "web", "staging", "v2")
    assert stack.settle() == "v2"
    stack.base_seq = max(r["seq"] for r in stack.history("--steps"))


def _signal(stack: CrashStack, proc: subprocess.Popen[str], sig: str) -> str:
    """Send the case's signal; return what was really sent.

    SIGINT2: after the first Ctrl-C the restart command is armed again, so the safe point's
    own rollback holds in it; the second Ctrl-C comes while it does. A run that ends without
    getting there (nothing to roll back, or gone at once) got one Ctrl-C only."""
    if sig not in ("SIGINT", "SIGINT2"):
        os.kill(proc.pid, getattr(signal, sig))
        return sig
    if sig == "SIGINT2":
        holding = stack.dir_here / "holding"
        if holding.exists():  # kept for cleanup: the first hold may outlive the run
            holding.rename(stack.dir_here / "holding-first")
        (stack.dir_here / "hold-restart").write_text("armed")
    os.killpg(proc.pid, signal.SIGINT)  # a terminal signals the foreground process group
    if sig == "SIGINT":
        return sig
    wait_until(
        lambda: stack.unpause() or stack.holder_pid() is not None or proc.poll() is not None,
        EXIT_LIMIT,
    )
    if proc.poll() is not None:
        (stack.dir_here / "hold-restart").unlink(missing_ok=True)  # not for the next command
        return "SIGINT"
    os.killpg(proc.pid, signal.SIGINT)
    return sig


def _brief(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["action"], r["version"], r["status"], r["notes"][:80]) for r in rows]


def run_case(stack: CrashStack, case: Case) -> None:
    """Interrupt the run at the case's step with its signal, then check everything."""
    marker = stack.root / "paused"
    if case.step == "restart-cmd":
        (stack.dir_here / "hold-restart").write_text("armed")
        extra: dict[str, str] = {}
        reached: Callable[[], bool] = lambda: stack.holder_pid() is not None  # noqa: E731
    else:
        extra = {"RELEASEGATE_PAUSE_AT": case.step, "RELEASEGATE_PAUSE_FILE": str(marker)}
        reached = marker.exists
    args = case.command
    before = stack.base_seq
    if before is None:
        before = max((r["seq"] for r in stack.history("--steps")), default=0)
    proc = stack.start(*args, extra_env=extra)

    assert wait_until(lambda: reached() or proc.poll() is not None, 60), "no pause in 60 s"
    assert proc.poll() is None, (
        f"the run ended (rc {proc.returncode}) without reaching step {case.step}:\n"
        + stack.run_log()
    )
    sent = _signal(stack, proc, case.sig)
    if sent != case.sig:
        case = Case(case.action, case.step, sent)
    # The failpoint holds until its file goes; the safe point's own rollback may pass a step
    # of the same name again, so the file is kept away until the run ends.
    if not wait_until(lambda: stack.unpause() or proc.poll() is not None, EXIT_LIMIT):
        raise AssertionError(
            f"the CLI did not exit within {EXIT_LIMIT:g} s of {case.sig}:\n" + stack.run_log()
        )
    rc = proc.wait()
    (stack.dir_here / "hold-restart").unlink(missing_ok=True)  # never for the next command
    holder = stack.holder_pid()
    if not case.graceful:
        # Nothing of releasegate runs any more; a team command left behind finishes as an
        # orphan would (it is let go now rather than after its own 60 s).
        (stack.dir_here / "release-hold").write_text("go")
        if holder is not None:
            assert wait_until(lambda: not alive(holder), 15), "the orphaned restart hangs"
    check_case(stack, case, rc, holder, before)


def check_case(stack: CrashStack, case: Case, rc: int, holder: int | None, before: int) -> None:
    log = stack.run_log()
    seen = stack.settle()
    assert seen in (case.old, case.new), (
        f"after {case.sig} the app answers {seen!r}, neither {case.old} nor {case.new}\n{log}"
    )
    if case.graceful:
        if holder is not None:
            assert wait_until(lambda: not alive(holder), 5), (
                f"the team's restart command (pid {holder}) still runs after {case.sig}"
            )
        steps = [r for r in stack.history("--steps") if r["seq"] > before]
        running = [(r["action"], r["version"]) for r in steps if r["status"] == "running"]
        assert not running, f"rows left running after {case.sig}: {running}\n{log}"
        assert not stack.lock_held(), f"the lock is still held after {case.sig}\n{log}"
        name = "restart" if case.step == "restart-cmd" else case.step  # its command
        stopped = [r for r in steps if r["action"] == name and r.get("parent_id")]
        assert stopped and stopped[0]["status"] == "aborted", (
            f"step {name} recorded as {[r['status'] for r in stopped]}, expected aborted"
        )
        back = case.after_abort
        assert seen == back, f"after {case.sig} the app answers {seen}, expected {back}\n{log}"
        want = EXIT_SIGINT if case.sig == "SIGINT" else EXIT_SIGTERM
        assert rc == want, f"exit code {rc} after {case.sig}, expected {want}\n{log}"
    audit = stack.rg("audit", "verify")
    assert audit.returncode == 0, "audit verify: " + audit.stdout + audit.stderr

    if not case.graceful:
        # Read-only commands do not settle a crash: the stack needs recovery until a deploy
        # or rollback recovers it.
        for i in range(2):
            row = stack.status_row()
            assert any("interrupt" in w or "recover" in w for w in row["warnings"]), (
                f"status #{i + 1} does not say the stack needs recovery: {row['warnings']}"
            )
            if i == 0:
                stack.history()

    following = stack.rg(*case.next_command)
    assert following.returncode == 0, (
        f"the next {case.action}: rc {following.returncode}\n"
        + following.stdout[-3000:]
        + following.stderr[-3000:]
    )
    assert stack.settle() == case.new, (
        f"after the next {case.action} the app answers {stack.answering()}, not {case.new}"
    )

    rows = [r for r in stack.history("--steps") if r["seq"] > before]
    top = [r for r in rows if not r.get("parent_id")]
    crashed = top[0]
    assert (crashed["action"], crashed["version"]) == (case.action, case.new), _brief(top)
    wanted = {"interrupted"} if not case.graceful else {"aborted"}
    if case.sig == "SIGINT2":
        wanted = {"interrupted", "aborted"}
    if case.verified:
        wanted.add("success")
    assert crashed["status"] in wanted, (
        f"the interrupted {case.action} is recorded {crashed['status']!r}, expected "
        f"{' or '.join(sorted(wanted))}: {_brief(top)}"
    )
    last = top[-1]
    outcome = (last["action"], last["version"], last["status"])
    assert outcome == (case.action, case.new, "success"), (
        f"the next {case.action} is not the last row, or not a success: {_brief(top)}"
    )
    if case.action == "deploy" and case.switched and not case.verified:
        # After the crash the old version came back: by the safe point (SIGINT/SIGTERM) or by
        # the next deploy's recovery (SIGKILL), recorded at the top level or inside the next
        # run. (A rollback is completed instead: the next rollback's success shows it.)
        assert any(
            r["seq"] > crashed["seq"]
            and r["action"] in ("rollback", "recover", "recovery")
            and r["version"] == case.old
            and r["status"] == "success"
            for r in rows
        ), (
            "no recovery to the last good version was recorded between the interrupted run "
            f"and the next one: {_brief(top)}"
        )
    running = [(r["action"], r["version"]) for r in rows if r["status"] == "running"]
    assert not running, f"rows left running after the next {case.action}: {running}"
    audit = stack.rg("audit", "verify")
    assert audit.returncode == 0, "audit verify: " + audit.stdout + audit.stderr
