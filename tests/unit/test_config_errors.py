"""Every bad releasegate.yaml gives one ConfigError naming file:line and the key path.

Each case lists the complete set of problem lines expected, so a wrong line
number, a wrong path or an extra (noisy) message all fail the test.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from releasegate.config import load_config
from releasegate.errors import BadInput, ConfigError, ExitCode

# Lines 1-6; cases add lines from 7 on.
STACK = """\
stacks:
  web:
    env: prod
    runtime: releases
    dir: srv/web
    artifacts: artifacts
"""

F = "releasegate.yaml"

CASES = [
    pytest.param(
        "recods_dir: x\n" + STACK,
        [f"{F}:1: recods_dir: unknown key 'recods_dir' (did you mean 'records_dir'?)"],
        id="misspelt-top-level-key",
    ),
    pytest.param(
        STACK + "    keep_release: 3\n",
        [
            f"{F}:7: stacks.web.keep_release: unknown key 'keep_release'"
            " (did you mean 'keep_releases'?)"
        ],
        id="misspelt-stack-key",
    ),
    pytest.param(
        "approvals: {require_signed: true}\n" + STACK,
        [f"{F}:1: (top level): approvals: signatures are required but allowed_signers is not set"],
        id="signed-approvals-without-allowed-signers",
    ),
    pytest.param(
        STACK + "    approvals: {require_signed_for_risk: [HIGH, high]}\n",
        [
            f"{F}:7: stacks.web.approvals.require_signed_for_risk[1]: must be one of 'LOW',"
            " 'MEDIUM' or 'HIGH', got 'high'"
        ],
        id="signed-approvals-unknown-risk",
    ),
    pytest.param(
        STACK + "    smok: []\n",
        [f"{F}:7: stacks.web.smok: unknown key 'smok' (did you mean 'smoke'?)"],
        id="misspelt-smoke-key",
    ),
    pytest.param(
        STACK + "    smoke:\n      - http: http://127.0.0.1/health\n        expect_stauts: 200\n",
        [
            f"{F}:9: stacks.web.smoke[0].expect_stauts: unknown key 'expect_stauts'"
            " (did you mean 'expect_status'?)"
        ],
        id="misspelt-key-in-smoke-check",
    ),
    pytest.param(
        STACK + "    commands: {restar: x}\n",
        [f"{F}:7: stacks.web.commands.restar: unknown key 'restar' (did you mean 'restart'?)"],
        id="misspelt-command-name",
    ),
    pytest.param(
        STACK.replace("    artifacts: artifacts\n", ""),
        [f"{F}:2: stacks.web.artifacts: required, but not set"],
        id="missing-required-key",
    ),
    pytest.param(
        "state: x\n",
        [f"{F}:1: stacks: required, but not set"],
        id="missing-stacks",
    ),
    pytest.param(
        "stacks: {}\n",
        [f"{F}:1: stacks: needs at least 1 entry"],
        id="no-stacks",
    ),
    pytest.param(
        STACK + "    keep_releases: five\n",
        [f"{F}:7: stacks.web.keep_releases: expected a whole number, got 'five'"],
        id="wrong-type-int",
    ),
    pytest.param(
        STACK + "    keep_releases: '5'\n",
        [f"{F}:7: stacks.web.keep_releases: expected a whole number, got '5'; remove the quotes"],
        id="quoted-number",
    ),
    pytest.param(
        STACK + "    keep_releases: 1\n",
        [f"{F}:7: stacks.web.keep_releases: must be at least 2, got 1 (a number)"],
        id="keep-releases-too-small",
    ),
    pytest.param(
        STACK.replace("env: prod", "env: no"),
        [
            f"{F}:3: stacks.web.env: expected a string, got no (read as true/false);"
            ' put it in quotes: "no"'
        ],
        id="yaml-boolean-for-string",
    ),
    pytest.param(
        STACK + "    hosts: local\n",
        [f"{F}:7: stacks.web.hosts: expected a list, got 'local'; write [local] for a list of one"],
        id="string-for-list",
    ),
    pytest.param(
        STACK + "    smoke: {http: 'http://x/'}\n",
        [f"{F}:7: stacks.web.smoke: expected a list, got a mapping"],
        id="mapping-for-list",
    ),
    pytest.param(
        STACK.replace("  web:", "  Web_Prod:"),
        [
            f"{F}:2: stacks.Web_Prod: stack 'Web_Prod' is not allowed: use lowercase letters,"
            " digits, '-' and '_', starting with a letter or digit, at most 63"
        ],
        id="bad-stack-name",
    ),
    pytest.param(
        STACK.replace("env: prod", "env: 1prod"),
        [
            f"{F}:3: stacks.web.env: env '1prod' is not allowed: use lowercase letters,"
            " digits, '-' and '_', starting with a letter, at most 32"
        ],
        id="bad-env",
    ),
    pytest.param(
        STACK.replace("runtime: releases", "runtime: relases"),
        [
            f"{F}:4: stacks.web.runtime: unknown runtime 'relases' (did you mean 'releases'?)"
            " (available: releases, compose, swarm)"
        ],
        id="unknown-runtime",
    ),
    pytest.param(
        STACK.replace("runtime: releases", "runtime: compose") + "    compose: {version_vars: X}\n",
        [
            f"{F}:7: stacks.web.compose.version_vars: unknown key 'version_vars'"
            " (did you mean 'version_var'?)"
        ],
        id="compose-misspelt-key",
    ),
    pytest.param(
        STACK.replace("runtime: releases", "runtime: compose")
        + "    compose: {rules: [no-latests]}\n",
        [
            f"{F}:7: stacks.web.compose.rules[0]: must be one of 'no-build', 'no-latest',"
            " 'untagged-image', 'unresolved-variable' or 'invalid-image', got 'no-latests'"
        ],
        id="compose-unknown-rule",
    ),
    pytest.param(
        STACK + "    compose: {project: web}\n",
        [f"{F}:2: stacks.web: compose: only for runtime compose"],
        id="compose-section-on-releases",
    ),
    pytest.param(
        STACK
        + "    promote_from: web-stagin\n"
        + STACK.replace("stacks:\n", "").replace("web:", "web-staging:"),
        [
            f"{F}:7: stacks.web.promote_from: no stack named 'web-stagin'"
            " (did you mean 'web-staging'?) (stacks: web-staging)"
        ],
        id="promote-from-missing-stack",
    ),
    pytest.param(
        STACK + "    promote_from: web\n",
        [f"{F}:7: stacks.web.promote_from: a stack cannot promote from itself"],
        id="promote-from-itself",
    ),
    pytest.param(
        STACK
        + "    promote_from: api\n"
        + "  api:\n    env: prod\n    runtime: releases\n    dir: a\n    artifacts: b\n"
        + "    promote_from: web\n",
        [f"{F}:7: stacks.web.promote_from: promotion cycle: web -> api -> web"],
        id="promote-from-cycle",
    ),
    pytest.param(
        STACK + "    smoke:\n      - http: http://x/health\n        command: pgrep web\n",
        [
            f"{F}:8: stacks.web.smoke[0]: has both 'http' and 'command': a check is one or"
            " the other; split it in two"
        ],
        id="smoke-both-http-and-command",
    ),
    pytest.param(
        STACK + "    smoke:\n      - name: health\n        htp: http://x/health\n",
        [
            f"{F}:8: stacks.web.smoke[0]: needs either 'http: URL' or 'command: ...'"
            " (did you mean 'http' for 'htp'?)"
        ],
        id="smoke-neither-http-nor-command",
    ),
    pytest.param(
        STACK + "    smoke:\n      - command: pgrep web\n        expect_status: 200\n",
        [
            f"{F}:9: stacks.web.smoke[0].expect_status: unknown key 'expect_status' for a command"
            " check ('expect_status' is for http checks)"
        ],
        id="http-key-on-command-check",
    ),
    pytest.param(
        STACK + "    smoke:\n      - http: http://x/\n        body_matches: '(ok'\n",
        [
            f"{F}:9: stacks.web.smoke[0].body_matches: not a valid regular expression:"
            " missing ), unterminated subpattern at position 0"
        ],
        id="bad-regex",
    ),
    pytest.param(
        STACK + "    smoke:\n      - http: ftp://x/\n",
        [f"{F}:8: stacks.web.smoke[0].http: URL 'ftp://x/' must start with http:// or https://"],
        id="smoke-url-scheme",
    ),
    pytest.param(
        STACK + "    smoke:\n      - http: http://x/\n        expect_status: 700\n",
        [f"{F}:9: stacks.web.smoke[0].expect_status: must be at most 599, got 700 (a number)"],
        id="smoke-status-range",
    ),
    pytest.param(
        STACK + "    smoke:\n      - command: [pgrep, 5]\n",
        [
            f"{F}:8: stacks.web.smoke[0].command: argv[1] must be a non-empty string,"
            " got 5; quote it"
        ],
        id="argv-with-number",
    ),
    pytest.param(
        STACK + "    smoke:\n      - http: http://a/health\n      - http: http://b/health\n",
        [
            f"{F}:9: stacks.web.smoke[1]: name 'http:/health' is already used by"
            " stacks.web.smoke[0] (a default name; set `name:` to tell them apart)"
        ],
        id="duplicate-default-check-names",
    ),
    pytest.param(
        STACK + "    smoke:\n      - {name: up, http: http://a/}\n      - {name: up, command: x}\n",
        [f"{F}:9: stacks.web.smoke[1].name: name 'up' is already used by stacks.web.smoke[0]"],
        id="duplicate-check-names",
    ),
    pytest.param(
        STACK.replace("    dir: srv/web\n", "    env: staging\n    dir: srv/web\n"),
        [f"{F}:5: duplicate key 'env' in stacks.web (first at line 3)"],
        id="duplicate-key",
    ),
    pytest.param(
        "stacks:\n  web:\n    env: prod: x\n",
        [f"{F}:3:14: YAML syntax error: mapping values are not allowed in this context"],
        id="yaml-syntax-error",
    ),
    pytest.param(
        'stacks:\n  web:\n    env: "prod\n',
        [
            f"{F}:4:1: YAML syntax error: found unexpected end of stream"
            " (while scanning a quoted scalar at line 3)"
        ],
        id="yaml-unclosed-quote",
    ),
    pytest.param(
        STACK + "    hosts: ['ssh://deploy@-oProxyCommand=x']\n",
        [
            f"{F}:7: stacks.web.hosts[0]: host '-oProxyCommand=x' is not a valid host name"
            " or IP address"
        ],
        id="host-option-injection",
    ),
    pytest.param(
        STACK + "    hosts: [local, 'http://deploy@web1', 'ssh://@web1', 'ssh://d@web1:70000']\n",
        [
            f"{F}:7: stacks.web.hosts[1]: host 'http://deploy@web1' must be 'local' or"
            " 'ssh://[user@]host[:port]'",
            f"{F}:7: stacks.web.hosts[2]: host 'ssh://@web1' has an empty user: drop the '@',"
            " or name the user",
            f"{F}:7: stacks.web.hosts[3]: port 70000 is out of range (1-65535)",
        ],
        id="bad-host-urls",
    ),
    pytest.param(
        STACK + "    hosts: [local, local]\n",
        [f"{F}:7: stacks.web.hosts: host 'local' is listed twice"],
        id="duplicate-host",
    ),
    pytest.param(
        STACK + "    shared:\n      - ../secrets\n      - /etc/passwd\n      - logs/../../x\n",
        [
            f"{F}:8: stacks.web.shared[0]: '../secrets' must not contain '..'",
            f"{F}:9: stacks.web.shared[1]: '/etc/passwd' must be relative to the stack's dir"
            " (no leading '/' or '~')",
            f"{F}:10: stacks.web.shared[2]: 'logs/../../x' must not contain '..'",
        ],
        id="shared-path-escapes",
    ),
    pytest.param(
        STACK + "    env_vars: {bad-name: x, PORT: 8080}\n",
        [
            f"{F}:7: stacks.web.env_vars.bad-name: environment variable name 'bad-name' is not"
            " allowed: use A-Z, 0-9 and '_'",
            f"{F}:7: stacks.web.env_vars.PORT: expected a string, got 8080 (a number);"
            ' put it in quotes: "8080"',
        ],
        id="env-vars",
    ),
    pytest.param(
        STACK + "    preflight:\n      require_commands: ['rm -rf']\n      commands: [{run: x}]\n",
        [
            f"{F}:8: stacks.web.preflight.require_commands[0]: 'rm -rf' is not a plain command"
            " name (letters, digits, '.', '_', '+', '-')",
            f"{F}:9: stacks.web.preflight.commands[0].name: required, but not set",
        ],
        id="preflight",
    ),
    pytest.param(
        "defaults:\n  keep_releases: one\n  env: prod\n  preflight: {disk_free_min_percent: 101}\n"
        + STACK
        + "  api:\n    env: prod\n    runtime: releases\n    dir: a\n    artifacts: b\n",
        [
            # Reported once, at the line under `defaults`, though two stacks inherit them.
            f"{F}:2: defaults.keep_releases: expected a whole number, got 'one'",
            f"{F}:3: defaults.env: 'env' cannot have a default; set it in each stack",
            f"{F}:4: defaults.preflight.disk_free_min_percent: must be at most 100,"
            " got 101 (a number)",
        ],
        id="errors-in-defaults",
    ),
    pytest.param(
        "x-check: &check\n  retries: many\n"
        + STACK
        + "    smoke:\n      - <<: *check\n        http: http://x/\n",
        [f"{F}:2: stacks.web.smoke[0].retries: expected a whole number, got 'many'"],
        id="error-in-merged-anchor",
    ),
    pytest.param(
        STACK + "    artifact_limits: {max_bytes: 4 gigs, max_file: 3, max_ratio: 0}\n",
        [
            f"{F}:7: stacks.web.artifact_limits.max_bytes: '4 gigs' is not a size: use bytes"
            " or a unit, e.g. 512MiB or 4GiB",
            f"{F}:7: stacks.web.artifact_limits.max_ratio: must be at least 1, got 0 (a number)",
            f"{F}:7: stacks.web.artifact_limits.max_file: unknown key 'max_file'"
            " (did you mean 'max_files'?)",
        ],
        id="artifact-limits",
    ),
    pytest.param(
        "- stacks\n",
        [f"{F}:1: expected a mapping with at least `stacks:` (got list)"],
        id="not-a-mapping",
    ),
    pytest.param(
        "",
        [f"{F}:1: expected a mapping with at least `stacks:` (it is empty)"],
        id="empty-file",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_bad_config_lists_every_problem(
    text: str, expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / F).write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(Path(F))
    assert caught.value.message.splitlines() == expected
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_file_name_is_shown_as_given(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "prod.yaml"
    path.parent.mkdir()
    path.write_text(STACK + "    smok: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(f"{path}:7: stacks.web.smok: unknown key 'smok'")


def test_messages_are_plain(tmp_path: Path) -> None:
    path = tmp_path / F
    path.write_text(STACK + "    keep_releases: x\n    hosts: 5\n    commands: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = caught.value.message
    assert "errors.pydantic.dev" not in message
    assert "Input should be" not in message
    assert len(message.splitlines()) == 3


def test_many_problems_are_capped(tmp_path: Path) -> None:
    lines = [f"    bad{i}: x\n" for i in range(40)]
    path = tmp_path / F
    path.write_text(STACK + "".join(lines))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    shown = caught.value.message.splitlines()
    assert len(shown) == 26
    assert shown[0].startswith(f"{path}:7: stacks.web.bad0: unknown key")
    assert shown[-1] == "... and 15 more problems"


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / F
    path.write_bytes(b"stacks: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_unknown_stack_lookup_suggests(tmp_path: Path) -> None:
    path = tmp_path / F
    path.write_text(textwrap.dedent(STACK) + STACK.replace("stacks:\n", "").replace("web:", "api:"))
    config = load_config(path)
    with pytest.raises(BadInput) as caught:
        config.stack("wbe")
    assert caught.value.message == "unknown stack 'wbe' (did you mean 'web'?)"
    assert caught.value.hint == f"stacks in {path}: web, api"
    assert not isinstance(caught.value, ConfigError)
