"""`releasegate change run --host ...` on real sshd hosts: each step on every host, the
evidence per host, one SSH connection per host for the whole run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE

pytestmark = pytest.mark.e2e

DOC = """\
# G2-020: mark the hosts

## Risk Assessment（风险评估）

### Risk Level（风险等级）
LOW

## Verification Evidence（验证证据）

### Pre-checks（前置验证）

```bash
# which host this is
cat /srv/whoami
# expect: /^h[0-9]+$/
```

### Execution（操作执行）

```bash
# leave a mark
echo "changed by G2-020" > /srv/g2-020.txt
```

### Post-checks（后置验证）

```bash
# the mark is there
cat /srv/g2-020.txt
# expect: changed by G2-020
```

### Rollback Plan（回滚方案）

```bash
rm -f /srv/g2-020.txt
```
"""


def test_change_runs_on_every_named_host(ssh_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "releasegate.yaml").write_text("stacks: {}\n")
    (tmp_path / "changes").mkdir()
    (tmp_path / "changes/G2-020.md").write_text(DOC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(
        RELEASEGATE_USER="tester",
        RELEASEGATE_SSH_KEY=str(ssh_lab.key),
        RELEASEGATE_KNOWN_HOSTS=str(ssh_lab.known_hosts),
        RELEASEGATE_SSH_CONFIG=os.devnull,
        NO_COLOR="1",
    )
    hosts = [ssh_lab.url(1), ssh_lab.url(2)]
    out = subprocess.run(
        [RELEASEGATE, "change", "run", "G2-020",
         "--host", hosts[0], "--host", hosts[1]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DONE+VERIFIED" in out.stdout
    for host in hosts:
        assert f"pre: which host this is @ {host}: passed" in out.stdout
    [rendered] = (tmp_path / "changes/runs").glob("G2-020-*.md")
    text = rendered.read_text()
    assert "h1" in text and "h2" in text  # each host's own /srv/whoami, as evidence
    # clean up the hosts' /srv through the same CLI path: a LOW change that removes it
    cleanup = (
        DOC.replace("G2-020: mark the hosts", "G2-021: unmark")
        .replace('echo "changed by G2-020" > /srv/g2-020.txt', "rm -f /srv/g2-020.txt")
        .replace("# expect: changed by G2-020", "# expect: /^$/")
        .replace("cat /srv/g2-020.txt", "cat /srv/g2-020.txt 2>/dev/null; true")
    )
    (tmp_path / "changes/G2-021.md").write_text(cleanup)
    out = subprocess.run(
        [RELEASEGATE, "change", "run", "G2-021",
         "--host", hosts[0], "--host", hosts[1]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
