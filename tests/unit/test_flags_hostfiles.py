"""The flag files' host programs run for real through the local transport: a bounded read
that tells a missing file from an empty one, and an atomic write that keeps the old file's
mode and writes through a link (a release's .env linked to shared/.env) without replacing it."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from releasegate.flags.hostfiles import MAX_BYTES, read_program, write_program
from releasegate.ops import run_sync
from releasegate.redact import Redactor
from releasegate.runtimes.base import PhaseResult
from releasegate.transport.local import LocalTransport


def _read(paths: dict[str, Path]):  # type: ignore[no-untyped-def]
    where = {k: PurePosixPath(str(v)) for k, v in paths.items()}
    return run_sync(read_program(where), LocalTransport())


def _write(path: Path, text: str) -> PhaseResult:
    phase = PhaseResult(True, "")
    program = write_program(phase, Redactor(), {PurePosixPath(str(path)): text})
    return run_sync(program, LocalTransport())


def test_read_tells_missing_from_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("")
    (tmp_path / "env").write_text("A=1\n")
    found = _read(
        {"dotenv": tmp_path / "env", "flagd": tmp_path / "missing", "x": tmp_path / "empty"}
    )
    assert found.ok, found.error
    assert found.texts == {"dotenv": "A=1\n", "flagd": None, "x": ""}


def test_read_refuses_a_file_too_big_to_edit(tmp_path: Path) -> None:
    (tmp_path / "env").write_text("A=" + "x" * MAX_BYTES + "\n")
    found = _read({"dotenv": tmp_path / "env"})
    assert not found.ok and "larger than" in found.error


def test_read_of_a_dangling_link_fails(tmp_path: Path) -> None:
    (tmp_path / "env").symlink_to(tmp_path / "nowhere")
    found = _read({"dotenv": tmp_path / "env"})
    assert not found.ok


def test_write_keeps_the_mode_and_the_link(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    release = tmp_path / "releases" / "v1"
    shared.mkdir()
    release.mkdir(parents=True)
    (shared / ".env").write_text("A=1\n")
    (shared / ".env").chmod(0o640)
    (release / ".env").symlink_to("../../shared/.env")
    phase = _write(release / ".env", "A=2\n")
    assert phase.ok, phase.commands
    assert (release / ".env").is_symlink()  # the link stays; its target changed
    assert (shared / ".env").read_text() == "A=2\n"
    assert (shared / ".env").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in shared.iterdir()] == [".env"]  # no temporary file left
    assert phase.commands[0]["argv"] == ["write", str(release / ".env")]  # never the text


def test_write_creates_a_private_file_and_fails_without_its_folder(tmp_path: Path) -> None:
    phase = _write(tmp_path / "flags.json", "{}\n")
    assert phase.ok
    assert (tmp_path / "flags.json").read_text() == "{}\n"
    assert (tmp_path / "flags.json").stat().st_mode & 0o777 == 0o600
    phase = _write(tmp_path / "no" / "such" / "flags.json", "{}\n")
    assert not phase.ok and "could not write" in phase.summary
    assert not os.path.exists(tmp_path / "no")
