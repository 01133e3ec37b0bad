"""Operations as data: chained commands, the fleet's survey and probe, and the drivers."""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

import pytest

from releasegate.gates import preflight as pf
from releasegate.ops import Cmd, Sleep, chain, cmd, done, run_sync
from releasegate.runtimes import releases_commands as rc
from releasegate.transport import LocalTransport
from releasegate.transport.base import CommandResult

HOSTILE = ["$(touch pwned)", "; rm -rf /", '"q" `x` \\', "a b", "", "*", "--", "-n"]


def test_chain_passes_every_word_as_data(tmp_path: Path) -> None:
    argv = chain([["printf", "%s|", *HOSTILE], ["printf", "\n"], *[["true"]] * 12])
    out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout == "|".join(HOSTILE) + "|\n"
    assert not (tmp_path / "pwned").exists()


def test_chain_stops_at_the_first_failure_and_names_it(tmp_path: Path) -> None:
    mark = tmp_path / "never"
    argv = chain([["true"], ["sh", "-c", "exit 7"], ["touch", str(mark)]])
    out = subprocess.run(argv, capture_output=True, text=True)
    assert out.returncode == 7
    assert "command 2 of the chain failed (exit 7)" in out.stderr
    assert not mark.exists()
    with pytest.raises(ValueError):
        chain([["true"], []])


def test_survey_reads_current_releases_and_half_made_ones(tmp_path: Path) -> None:
    root = tmp_path / "app"
    for version, complete in (("v1", True), ("v2", True), ("v3", False), (".v4.tmp-x", False)):
        (root / "releases" / version).mkdir(parents=True)
        if complete:
            (root / "releases" / version / rc.MARKER).write_text("{}")
    (root / "current").symlink_to("releases/v2")
    out = subprocess.run(rc.survey(PurePosixPath(str(root))), capture_output=True, text=True)
    seen = rc.parse_survey(out.stdout)
    assert (seen.current, seen.prepared) == ("v2", {"v1", "v2"})
    assert sorted(seen.names) == [".v4.tmp-x", "v1", "v2", "v3"]
    empty = subprocess.run(rc.survey(PurePosixPath(str(tmp_path / "none"))), capture_output=True)
    assert empty.returncode == 0
    assert rc.parse_survey(empty.stdout.decode()) == rc.Survey(None, frozenset(), ())


def test_survey_probes_disk_commands_and_shared_files(tmp_path: Path) -> None:
    root = tmp_path / "app"
    (root / "shared").mkdir(parents=True)
    (root / "shared" / ".env").write_text("X=1\n")
    commands, shared = ["sh", "no-such-tool-xyz", *HOSTILE], [".env", "cfg.ini", *HOSTILE]
    argv = rc.survey(PurePosixPath(str(root)), commands, shared)
    out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert not (tmp_path / "pwned").exists()
    result = CommandResult(tuple(argv), out.returncode, out.stdout, out.stderr, 0.0)
    checks = pf.probe_verdicts(PurePosixPath(str(root)), result, commands, shared, 0)
    assert [(c.name, c.ok) for c in checks][:6] == [
        ("disk-free", True),
        ("command:sh", True),
        ("command:no-such-tool-xyz", False),
        *[(f"command:{w}", False) for w in HOSTILE[:3]],
    ]
    assert [(c.name, c.ok) for c in checks if c.name.startswith("shared:")][:2] == [
        ("shared:.env", True),
        ("shared:cfg.ini", False),
    ]
    # No answer for a file: missing, never assumed present.
    cut = CommandResult((), 0, out.stdout.rsplit("@shared", 1)[0], "", 0.0)
    last = pf.probe_verdicts(PurePosixPath(str(root)), cut, commands, shared, 0)[-1]
    assert last.name == f"shared:{HOSTILE[-1]}" and not last.ok
    # Before the first deploy the stack's dir may not exist: df looks at its nearest parent.
    fresh = PurePosixPath(str(tmp_path / "new" / "app"))
    out = subprocess.run(rc.survey(fresh), capture_output=True, text=True)
    result = CommandResult((), out.returncode, out.stdout, out.stderr, 0.0)
    disk = pf.probe_verdicts(fresh, result, [], [], 0)[0]
    assert disk.ok and disk.evidence["path"] == str(tmp_path)
    assert rc.parse_survey(out.stdout).current is None


def test_run_sync_answers_each_operation() -> None:
    slept: list[float] = []

    def program():  # type: ignore[no-untyped-def]
        first = yield cmd(["sh", "-c", "echo one"])
        yield Sleep(0.5)
        second = yield Cmd(("sh", "-c", 'echo "$X"'), env={"X": "two"})
        return first.stdout.strip(), second.stdout.strip()

    assert run_sync(program(), LocalTransport(), sleep=slept.append) == ("one", "two")
    assert slept == [0.5]


def test_done_is_a_program_that_asks_nothing() -> None:
    def host_checks():  # type: ignore[no-untyped-def]
        found = yield from done(["checked"])
        return found

    program = host_checks()
    with pytest.raises(StopIteration) as stop:
        next(program)
    assert stop.value.value == ["checked"]
    assert run_sync(done(7), LocalTransport()) == 7


def test_chain_failure_names_the_command_and_sha256_is_checked_on_arrival(tmp_path: Path) -> None:
    from releasegate.ops import chain_failure

    upload = tmp_path / "v2.tar.gz"
    good = "a8e7b6b2b3c8b0d8e2a4d6b3cf5c54ef3a7b5c0b6bd4a0e6d0e6dbd5a7c1f0a4"  # not its sum
    argv = chain([["true"], rc.receive(PurePosixPath(str(upload)), good), ["true"]])
    out = subprocess.run(argv, input="release", capture_output=True, text=True)
    result = CommandResult(tuple(argv), out.returncode, out.stdout, out.stderr, 0.0)
    assert chain_failure(result) == 2
    assert f"{upload} arrived with sha256" in out.stderr
    import hashlib

    real = hashlib.sha256(b"release").hexdigest()
    argv = chain([rc.receive(PurePosixPath(str(upload)), real)])
    out = subprocess.run(argv, input="release", capture_output=True, text=True)
    assert out.returncode == 0 and upload.read_bytes() == b"release"
    assert chain_failure(CommandResult((), 0, "", "", 0.0)) is None
