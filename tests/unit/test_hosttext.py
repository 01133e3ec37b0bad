"""Host text files are read whole and exactly, whatever their size up to the cap: the
transports cut the middle of a long output, so a plain `cat` of a big .env came back with
a marker inside it, and the compose switch wrote that back (the real programs run here
through the local transport)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from releasegate import hosttext
from releasegate.ops import run_sync
from releasegate.transport.base import OUTPUT_LIMIT
from releasegate.transport.local import LocalTransport


def _read(path: Path, **kw: int) -> hosttext.HostText:
    return run_sync(hosttext.read_program(PurePosixPath(str(path)), **kw), LocalTransport())


@pytest.mark.parametrize("size", [0, 1, hosttext.CHUNK - 1, hosttext.CHUNK, 3 * OUTPUT_LIMIT + 7])
def test_a_file_comes_back_byte_for_byte(tmp_path: Path, size: int) -> None:
    # Multi-byte characters across chunk boundaries survive: chunks travel as base64.
    text = ("A=ä€\n" * (size // 5 + 1))[:size]
    path = tmp_path / ".env"
    path.write_text(text)
    found = _read(path)
    assert found.ok, found.error
    assert found.text == path.read_bytes().decode()


def test_missing_is_none_and_a_dangling_link_is_an_error(tmp_path: Path) -> None:
    assert _read(tmp_path / "nope") == hosttext.HostText(None)
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert "dangling" in _read(tmp_path / "link").error


def test_too_big_and_not_text_are_refused_never_half_read(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_text("x" * 30_000)
    assert "larger than 20000 bytes" in _read(path, max_bytes=20_000).error
    path.write_bytes(b"\xff\xfe\x00binary")
    assert "not UTF-8" in _read(path).error


def test_a_directory_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    assert "not a readable file" in _read(tmp_path).error


def test_write_replaces_atomically_through_a_link_keeping_the_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared.env"
    shared.write_text("OLD=1\n")
    shared.chmod(0o640)
    link = tmp_path / ".env"
    link.symlink_to(shared)
    done = run_sync(
        _write(PurePosixPath(str(link)), "NEW=" + "y" * 40_000 + "\n"), LocalTransport()
    )
    assert done.ok, done.describe()
    assert link.is_symlink() and shared.read_text().startswith("NEW=yyy")
    assert oct(shared.stat().st_mode & 0o777) == oct(0o640)
    assert [p.name for p in tmp_path.iterdir() if "releasegate-write" in p.name] == []


def _write(path: PurePosixPath, text: str):  # type: ignore[no-untyped-def]
    from releasegate.ops import cmd

    result = yield cmd(hosttext.write_argv(path), stdin=text, timeout=30)
    return result
