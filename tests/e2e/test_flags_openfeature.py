"""The flag file releasegate writes, read by the real OpenFeature SDK with the flagd
provider in file mode (no flag server, no network): the default value for everyone, a
beta group by targeting key, a percentage, and a change picked up by a provider that was
already running (`apply: none`: the provider watches its file)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

# The app's side: an OpenFeature client evaluating one flag for the targeting keys given on
# stdin, one JSON line each; it runs until its stdin closes.
APP = """\
import json, sys
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

api.set_provider_and_wait(
    FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=sys.argv[1])
)
client = api.get_client()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    flag, *keys = line.split()
    answers = {}
    for key in keys:
        ctx = EvaluationContext(targeting_key=key)
        d = client.get_boolean_details(flag, False, ctx)
        answers[key] = [d.value, d.variant, str(d.reason), str(d.error_code)]
    print(json.dumps(answers), flush=True)
api.shutdown()
"""


class App:
    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", APP, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self._line()) == {"ready": True}

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the app answers at once; a hang fails the test
        if not line:
            raise AssertionError(
                f"the app died: {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        return line

    def ask(self, flag: str, *keys: str) -> dict[str, list]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{flag} {' '.join(keys)}\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_the_flagd_provider_reads_what_releasegate_wrote(lab):
    cfg = yaml.safe_load(lab.config.read_text(encoding="utf-8"))
    cfg["stacks"]["web-staging"]["flags"] = {
        "flagd": "shared/flags.json",
        "apply": "none",
        "declared": {"supplier-eval": {"type": "bool", "default": False}},
    }
    lab.config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    path = lab.root / "srv/web-staging/shared/flags.json"

    # Dark launch, then the beta group (seed 003's 供应商模块测试组) by targeting key.
    out = lab.rg(
        "flag", "set", "web-staging", "staging", "supplier-eval", "false",
        "--users", "alice,bob", "--reason", "beta group",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    app = App(path)
    try:
        seen = app.ask("supplier-eval", "alice", "bob", "carol")
        assert seen["alice"][:3] == [True, "on", "TARGETING_MATCH"], seen
        assert seen["bob"][0] is True
        assert seen["carol"][:2] == [False, "off"], seen

        # Everyone: the running provider picks the new file up by itself (apply: none).
        out = lab.rg("flag", "set", "web-staging", "staging", "supplier-eval", "true")
        assert out.returncode == 0, out.stdout + out.stderr
        deadline = time.monotonic() + 30
        while app.ask("supplier-eval", "carol")["carol"][0] is not True:
            assert time.monotonic() < deadline, "the provider never saw the new file"
            time.sleep(0.2)
        assert app.ask("supplier-eval", "alice")["alice"][0] is True  # no targeting left

        # A share of users: about 10% of 2000 keys, by the provider's own bucketing.
        out = lab.rg(
            "flag", "set", "web-staging", "staging", "supplier-eval", "false",
            "--percentage", "10",
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        keys = [f"user-{i}" for i in range(2000)]
        # The provider reloads the file while a batch is being answered: a batch can mix the
        # old rule (everyone) and the new one, so wait for two batches in a row that agree.
        deadline = time.monotonic() + 30
        last = -1
        while True:
            answers = app.ask("supplier-eval", *keys)
            on = sum(1 for a in answers.values() if a[0] is True)
            if (on < 2000 and on == last) or time.monotonic() > deadline:
                break
            last = on
            time.sleep(0.2)
        assert 100 <= on <= 300, on
        assert all(a[3] == "None" for a in answers.values())  # no evaluation error

        # Off again, by going back twice: 10% -> everyone -> ... -> the rollback of seed 003.
        out = lab.rg("flag", "set", "web-staging", "staging", "supplier-eval", "false")
        assert out.returncode == 0
        deadline = time.monotonic() + 30
        while any(a[0] for a in app.ask("supplier-eval", *keys[:200]).values()):
            assert time.monotonic() < deadline, "still on for some users"
            time.sleep(0.2)
    finally:
        app.close()
