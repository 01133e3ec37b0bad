"""A minimal process manager for the sample app, used as the demo's `restart` command
(the part a team would hand to PM2 or systemd).

    python -m releasegate.demo.service restart|stop|status

It reads RELEASEGATE_SHARED_DIR (set by releasegate for every phase command) and the
PORT in that folder's .env; it keeps app.pid there and appends to logs/app.log.

Behind a proxy (a stack with `proxy:`), releasegate sets RELEASEGATE_SLOT (blue|green) and
the slot's PORT: each slot keeps its own slot-SLOT.pid, so restarting one never touches the
other (the warm slot a watch window switches back to).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from releasegate.redact import read_env_file


def _pidfile(shared: Path) -> Path:
    slot = os.environ.get("RELEASEGATE_SLOT", "")
    if slot in ("blue", "green"):
        return shared / f"slot-{slot}.pid"
    if slot:
        raise SystemExit(f"RELEASEGATE_SLOT={slot!r}: expected blue or green")
    return shared / "app.pid"


def _pid(shared: Path, pidfile: Path | None = None) -> int | None:
    try:
        pid = int((pidfile or _pidfile(shared)).read_text().strip())
    except (OSError, ValueError):
        return None
    return None if _gone(pid) else pid


def _gone(pid: int) -> bool:
    """True once the process has exited, zombie included: our app is started in its own
    session, so its reaper is whatever adopted it and may be slow to collect it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def stop(shared: Path, timeout: float = 5.0, pidfile: Path | None = None) -> None:
    pidfile = pidfile or _pidfile(shared)
    pid = _pid(shared, pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def start(shared: Path, release: Path, timeout: float = 10.0) -> int:
    # A slot's port comes from releasegate (the proxy's slot address); else the .env's.
    port = (
        os.environ["PORT"]
        if os.environ.get("RELEASEGATE_SLOT")
        else read_env_file((shared / ".env").read_text())["PORT"]
    )
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        print(f"PORT={port!r} is not a port number")
        return 1
    (shared / "logs").mkdir(exist_ok=True)
    with open(shared / "logs" / "app.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(release / "server.py"), "--port", port],
            cwd=release,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives releasegate, as a real service would
        )
    _pidfile(shared).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"sample app exited with {proc.returncode}; see {shared / 'logs' / 'app.log'}")
            return 1
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            print(f"sample app pid {proc.pid} answering on 127.0.0.1:{port}")
            return 0
        except OSError:
            time.sleep(0.05)
    print(f"sample app did not answer on port {port} within {timeout:.0f}s")
    return 1


def main() -> int:
    action = sys.argv[1] if len(sys.argv) > 1 else "restart"
    shared = Path(os.environ["RELEASEGATE_SHARED_DIR"])
    if action == "stop":
        stop(shared)
        return 0
    if action == "status":
        pid = _pid(shared)
        print(f"running, pid {pid}" if pid else "not running")
        return 0 if pid else 1
    stop(shared)
    return start(shared, Path(os.environ.get("RELEASEGATE_RELEASE_DIR", os.getcwd())))


if __name__ == "__main__":
    sys.exit(main())
