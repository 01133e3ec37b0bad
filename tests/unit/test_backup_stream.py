"""The zstd stream: only a complete stream gets its final name; a failing command, a
signal, a timeout or a full disk leave nothing behind and say why."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import zstandard

from releasegate.backup.stream import (
    BackupFailed,
    decompress_to_file,
    feed_zstd,
    partial_path,
    stream_to_zstd,
    tool_label,
)

PY = sys.executable


def test_a_complete_stream_is_compressed_hashed_and_counted(tmp_path: Path) -> None:
    dest = tmp_path / "out.zst"
    payload = b"row,1,hello\n" * 200_000
    src = tmp_path / "payload"
    src.write_bytes(payload)
    seen: list[tuple[int, int]] = []
    res = stream_to_zstd(
        ["cat", str(src)], dest, source="db", progress=lambda r, c: seen.append((r, c))
    )
    data = dest.read_bytes()
    assert res.path == dest and not partial_path(dest).exists()
    assert res.raw_bytes == len(payload)
    assert res.compressed_bytes == len(data) < len(payload) // 10
    assert res.sha256 == hashlib.sha256(data).hexdigest()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == payload
    assert seen[-1] == (res.raw_bytes, res.compressed_bytes)


def test_failing_dump_leaves_no_file_and_names_source_and_stderr(tmp_path: Path) -> None:
    dest = tmp_path / "db.pgdump.zst"
    with pytest.raises(BackupFailed) as err:
        stream_to_zstd(
            ["sh", "-c", "echo x; echo 'pg_dump: error: connection refused' >&2; exit 3"],
            dest,
            source="db",
        )
    assert err.value.source == "db"
    assert "'db'" in err.value.message and "status 3" in err.value.message
    assert err.value.message.endswith("pg_dump: error: connection refused")
    assert list(tmp_path.iterdir()) == []


def test_a_signal_is_named(tmp_path: Path) -> None:
    with pytest.raises(BackupFailed) as err:
        stream_to_zstd(["sh", "-c", "echo x; kill -TERM $$"], tmp_path / "o.zst", source="s")
    assert "SIGTERM" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_timeout_kills_the_command_and_removes_the_partial_file(tmp_path: Path) -> None:
    with pytest.raises(BackupFailed) as err:
        stream_to_zstd(
            ["sh", "-c", "echo partial; echo waiting >&2; sleep 30"],
            tmp_path / "o.zst",
            source="slow",
            timeout=0.5,
        )
    assert "timed out after 0.5s" in err.value.message and "waiting" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_disk_full_is_said_plainly(tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    dest = tmp_path / "o.zst"
    partial_path(dest).symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(BackupFailed) as err:
        stream_to_zstd(["head", "-c", "5000000", "/dev/urandom"], dest, source="big")
    assert err.value.disk_full
    assert "disk full" in err.value.message and "'big'" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_missing_tool_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BackupFailed) as err:
        stream_to_zstd(["no-such-tool-rg"], tmp_path / "o.zst", source="x")
    assert "could not start no-such-tool-rg" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_stderr_is_bounded_and_redacted(tmp_path: Path) -> None:
    code = "import sys; sys.stderr.write('noise ' * 100000 + '\\nlast: hunter2hunter2\\n')"
    with pytest.raises(BackupFailed) as err:
        stream_to_zstd(
            [PY, "-c", code + "; sys.exit(1)"],
            tmp_path / "o.zst",
            source="x",
            redact=lambda s: s.replace("hunter2hunter2", "***"),
        )
    assert len(err.value.stderr) < 70_000 and "bytes cut" in err.value.stderr
    assert "hunter2hunter2" not in err.value.message + err.value.stderr
    assert err.value.message.endswith("last: ***")


def test_the_env_reaches_the_child(tmp_path: Path) -> None:
    dest = tmp_path / "o.zst"
    stream_to_zstd(["sh", "-c", 'printf %s "$RG_X"'], dest, source="x", env={"RG_X": "val"})
    out = tmp_path / "o"
    decompress_to_file(dest, out)
    assert out.read_bytes() == b"val"


def test_feed_decompresses_into_a_command(tmp_path: Path) -> None:
    dest = tmp_path / "o.zst"
    stream_to_zstd(["sh", "-c", "seq 1 1000"], dest, source="x")
    fed = feed_zstd(dest, ["wc", "-l"], source="x")
    assert fed.exit_code == 0 and fed.stdout.strip() == "1000" and fed.stdout_lines == 1
    fed = feed_zstd(dest, ["sh", "-c", "head -c 10 >/dev/null; echo bad >&2; exit 4"], source="x")
    assert fed.exit_code == 4 and "bad" in fed.stderr


def test_feed_of_a_corrupt_file_fails(tmp_path: Path) -> None:
    dest = tmp_path / "o.zst"
    stream_to_zstd([PY, "-c", "print('x' * 3000000)"], dest, source="x", threads=0)
    data = bytearray(dest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dest.write_bytes(bytes(data))
    with pytest.raises(BackupFailed) as err:
        feed_zstd(dest, ["cat"], source="x")
    assert "corrupt" in err.value.message


def test_tool_label_looks_inside_docker_exec() -> None:
    assert tool_label(["pg_dump", "-Fc"]) == "pg_dump"
    assert tool_label(["/usr/bin/tar", "-c"]) == "tar"
    assert (
        tool_label(["docker", "exec", "-i", "-e", "PGPASSWORD", "seisei-db", "pg_dump"])
        == "pg_dump (in container seisei-db)"
    )
