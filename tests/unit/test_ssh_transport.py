"""The SSH transport's command lines, as data: quoting of argv, cwd and env."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import PurePosixPath

import pytest

from releasegate.transport import for_host
from releasegate.transport.ssh import (
    SshTarget,
    SshTransport,
    _Stderr,
    env_words,
    known_hosts_name,
    quote_word,
    remote_command,
)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["echo", "hi"], "exec echo hi"),
        (["echo", "a b"], "exec echo 'a b'"),
        (["echo", "$HOME", "`id`", "x;y"], "exec echo '$HOME' '`id`' 'x;y'"),
        (["echo", "it's"], "exec echo 'it'\"'\"'s'"),
        (["A=1"], "exec 'A=1'"),
        (["echo", ""], "exec echo ''"),
    ],
)
def test_remote_command_quotes_every_word(argv: list[str], line: str) -> None:
    assert remote_command(argv) == line


def test_cwd_and_env() -> None:
    line = remote_command(
        ["printenv", "X"], cwd=PurePosixPath("/srv/my app"), env={"X": "a b $Y", "Z": "'"}
    )
    assert line == "cd -- '/srv/my app' && exec env 'X=a b $Y' 'Z='\"'\"'' printenv X"


def test_env_with_assignment_like_command_uses_command() -> None:
    assert remote_command(["K=v"], env={"A": "1"}) == "exec env A=1 command 'K=v'"


def test_env_words_reject_bad_names_and_nul() -> None:
    assert env_words(None) == []
    assert env_words({"A_1": "x"}) == ["env", "A_1=x"]
    with pytest.raises(ValueError, match="not allowed"):
        env_words({"A B": "x"})
    with pytest.raises(ValueError, match="not allowed"):
        env_words({"X=Y": "x"})
    with pytest.raises(ValueError, match="NUL"):
        env_words({"A": "x\0y"})


def test_empty_argv_and_nul_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        remote_command([])
    with pytest.raises(ValueError, match="NUL"):
        remote_command(["echo", "a\0b"])


def test_quote_word() -> None:
    assert quote_word("plain") == "plain"
    assert quote_word("a=b") == "'a=b'"


def test_pid_marker_line() -> None:
    line = remote_command(["true"], pid_marker="RGPID1")
    assert line == "printf '%s%s\\n' RGPID1 \"$$\" >&2; exec true"
    with pytest.raises(ValueError):
        remote_command(["true"], pid_marker="a;b")


@pytest.mark.parametrize(
    "argv",
    [
        ["printf", "%s|", "a b", "$HOME", "`id`", "it's", '"q"', "\\", "*", "", "x\ny"],
        ["sh", "-c", 'echo "$1"', "sh", "a'b\"c"],
    ],
)
def test_local_shell_gets_argv_back(argv: list[str]) -> None:
    """What a real POSIX shell makes of the line is exactly argv (no expansion at all)."""
    probe = ["python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *argv]
    out = subprocess.run(
        ["sh", "-c", remote_command(probe)], capture_output=True, text=True, check=True
    ).stdout
    import json

    assert json.loads(out) == argv


def test_env_reaches_the_command_intact() -> None:
    env = {"V": 'a b $HOME `id` it\'s "q"', "W": ""}
    line = remote_command(
        ["python3", "-c", "import os; print(repr((os.environ['V'], os.environ['W'])))"], env=env
    )
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr((env["V"], env["W"]))
    assert shlex.split(line)[:2] == ["exec", "env"]


def test_stderr_marker_is_taken_out() -> None:
    err = _Stderr("RGPIDx")
    for chunk in ["RGP", "IDx42\nfirst", " line\n", "second\n"]:
        err.append(chunk)
    assert err.pid == 42
    assert err.text() == "first line\nsecond\n"
    other = _Stderr("RGPIDx")
    other.append("no marker\nmore")
    assert other.pid is None
    assert other.text() == "no marker\nmore"


def test_target_parse_and_known_hosts_name() -> None:
    t = SshTarget.parse("ssh://deploy@10.0.0.5:2222")
    assert (t.user, t.address, t.port) == ("deploy", "10.0.0.5", 2222)
    assert str(t) == "ssh://deploy@10.0.0.5:2222"
    assert known_hosts_name("h", 22) == "h"
    assert known_hosts_name("h", 2222) == "[h]:2222"
    with pytest.raises(ValueError):
        SshTarget.parse("local")


def test_for_host_gives_ssh_transport_without_connecting() -> None:
    t = for_host("ssh://root@127.0.0.99:22")
    assert isinstance(t, SshTransport)
    assert t.name == "ssh"
    assert t.connections_opened == 0
    t.close()
