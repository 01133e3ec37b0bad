"""The README's "A first own stack", run as written (its shell blocks and its YAML), on a
free port: if the README's walk stops working, this fails."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE
from tests.lab.docker import free_port

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[2] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, re.DOTALL)


def test_the_readme_walk_works_as_written(tmp_path: Path) -> None:
    section = _section("A first own stack")
    setup, commands = _blocks(section, "bash")
    [yaml_part] = _blocks(section, "yaml")
    port = str(free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(
        NO_COLOR="1", COLUMNS="200", RELEASEGATE_USER="tester",
        PATH=f"{Path(RELEASEGATE).parent}{os.pathsep}{env.get('PATH', '')}",
    )  # fmt: skip

    def sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )

    out = sh(setup, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    app = tmp_path / "hello"
    config = app / "releasegate.yaml"
    text = config.read_text(encoding="utf-8")

    # "fill in the TODO: lines" with the README's own YAML: the restart and the smoke check
    snippet = yaml_part.replace("18080", port)
    restart = re.search(r"^      restart: .*$", snippet, re.MULTILINE)
    assert restart is not None
    text = re.sub(r"^      restart: .*$", lambda _: restart.group(0), text, flags=re.MULTILINE)
    smoke = snippet[snippet.index("    smoke:") :]
    text = re.sub(r"^    smoke:.*?(?=^\n)", lambda _: smoke, text, flags=re.MULTILINE | re.DOTALL)
    config.write_text(text, encoding="utf-8")

    expected = {"v1": 0, "v2": 0, "v3": 4}
    try:
        for line in commands.replace("18080", port).splitlines():
            command = line.split("  #")[0].strip()
            if not command:
                continue
            out = sh(command, app)
            deployed = re.search(r"deploy hello-staging staging (v\d)$", command)
            want = expected[deployed.group(1)] if deployed else 0
            assert out.returncode == want, (command, out.stdout + out.stderr)
            if command.endswith("staging v3"):
                assert "rolled back to v2" in out.stdout
            if command.startswith("releasegate rollback"):
                assert "back on v1" in out.stdout, out.stdout
    finally:
        pid = app / "srv" / "hello-staging" / "app.pid"
        if pid.is_file() and pid.read_text().strip().isdigit():
            try:
                os.kill(int(pid.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass
    log = sh("releasegate history --format log", app).stdout.splitlines()
    rows = [[f.strip() for f in line.split(" |", 6)] for line in log]
    assert [row[3:6] for row in rows if row[3] != "preflight"] == [
        ["deploy", "v1", "success"],
        ["deploy", "v2", "success"],
        ["deploy", "v3", "fail"],
        ["rollback", "v2", "success"],
        ["rollback", "v1", "success"],
    ]
