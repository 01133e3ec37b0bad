"""HostFilesSource's commands, run here with sh and tar as a host would run them (the SSH
path itself is tested on the lab's hosts in tests/e2e_ssh/test_fleet_deploy.py)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import zstandard

from releasegate.backup.host_files import HostFilesSource
from releasegate.transport.base import CommandResult


class ShellHere:
    """The slice of SshTransport.run that HostFilesSource uses, on this machine."""

    def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        stdin: Path | None = None,
        stdout: Callable[[bytes], None] | None = None,
    ) -> CommandResult:
        data = stdin.read_bytes() if stdin is not None else None
        done = subprocess.run(argv, input=data, capture_output=True, timeout=timeout)
        if stdout is not None:
            stdout(done.stdout)
        return CommandResult(tuple(argv), done.returncode, "", done.stderr.decode(), 0.0)


def _source(base: Path, paths: tuple[str, ...]) -> HostFilesSource:
    return HostFilesSource(
        name="config-h1", host="h1", paths=paths, base_dir=str(base), transport=ShellHere()
    )


def test_only_the_entries_present_are_archived_and_restored(tmp_path: Path) -> None:
    base = tmp_path / "app"
    (base / "shared" / "logs").mkdir(parents=True)
    (base / "shared" / ".env").write_text("A=1\n")
    (base / "shared" / "logs" / "x.log").write_text("log\n")
    paths = ("shared/.env", "shared/logs", "shared/missing.ini", "shared/$(touch pwned)")
    source = _source(base, paths)
    dest = tmp_path / "out" / source.file_name
    dest.parent.mkdir()
    dumped = source.dump(dest, secrets={})
    assert dest.is_file() and dumped.stream.raw_bytes > 0
    scratch = source.restore_to_scratch(dest, secrets={})
    assert "entries" in scratch.evidence[0]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    (base / "shared" / ".env").write_text("A=2\n")
    said = source.restore_live(dest, secrets={})
    assert (base / "shared" / ".env").read_text() == "A=1\n" and "extracted" in said


def test_nothing_there_yet_is_an_empty_archive(tmp_path: Path) -> None:
    source = _source(tmp_path / "none", ("shared/.env",))
    dest = tmp_path / source.file_name
    source.dump(dest, secrets={})
    with dest.open("rb") as packed:
        plain = zstandard.ZstdDecompressor().stream_reader(packed).read()
    with tarfile.open(fileobj=io.BytesIO(plain)) as archive:
        assert archive.getnames() == []
