"""Backup sets: the manifest, all-or-nothing writing, listing, retention (pure), verify
and restore refusing a changed file."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from releasegate.backup.sets import (
    FORMAT,
    BackupProgress,
    BackupSet,
    list_backups,
    restore_backup,
    select_retention,
    take_backup,
    verify_backup,
)
from releasegate.backup.sources import (
    FilesSource,
    PostgresSource,
    SanityCheck,
    SQLiteSource,
)
from releasegate.backup.stream import BackupFailed
from releasegate.errors import BadInput, Refused

PW = "pw-that-must-stay-secret-42"
NOW = datetime(2026, 1, 30, 14, 30, 22, tzinfo=UTC)


def make_db(path: Path, rows: int = 50) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO users (name) VALUES (?)", [(f"u{i}",) for i in range(rows)])
    db.close()
    return path


def count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM users").fetchone()[0])
    finally:
        db.close()


class FailingSource:
    """A source whose dump is `sh -c 'echo x; exit 3'`."""

    name = "broken"
    kind = "files"
    file_name = "broken.tar.zst"
    checks = ()

    def describe(self) -> dict[str, object]:
        return {}

    def dump(self, dest, *, secrets, progress=None):  # type: ignore[no-untyped-def]
        from releasegate.backup.stream import stream_to_zstd

        stream_to_zstd(["sh", "-c", "echo x; echo 'tar: boom' >&2; exit 3"], dest, source="broken")

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"not expected: {name}")


@pytest.fixture()
def app(tmp_path: Path) -> tuple[Path, list[SQLiteSource | FilesSource]]:
    db = make_db(tmp_path / "app.db")
    conf = tmp_path / "stack"
    conf.mkdir()
    (conf / ".env").write_text(f"DB_PASSWORD={PW}\n")
    sources: list[SQLiteSource | FilesSource] = [
        SQLiteSource(
            name="app-db", path=db, checks=(SanityCheck("SELECT count(*) FROM users", ">=50"),)
        ),
        FilesSource(name="config", paths=(".env",), base_dir=conf),
    ]
    return tmp_path, sources


def test_manifest_shape(app: tuple[Path, list[SQLiteSource | FilesSource]]) -> None:
    tmp, sources = app
    events: list[BackupProgress] = []
    taken = take_backup(
        stack="web-prod", env="prod", sources=sources, root=tmp / "backups",
        running_version="sha-19b9b98", release="sha-abc123", secrets={"DB_PASSWORD": PW},
        now=NOW, progress=events.append,
    )  # fmt: skip
    stamp = NOW.astimezone().strftime("%Y%m%d_%H%M%S")
    assert taken.id == stamp and taken.path == tmp / "backups" / "web-prod" / stamp
    on_disk = json.loads((taken.path / "manifest.json").read_text())
    assert on_disk == taken.manifest
    assert on_disk["format"] == FORMAT
    for key, value in {
        "id": stamp, "stack": "web-prod", "env": "prod", "created_at": NOW.isoformat(),
        "running_version": "sha-19b9b98", "release": "sha-abc123",
    }.items():  # fmt: skip
        assert on_disk[key] == value
    db, conf = on_disk["sources"]
    assert set(db) >= {
        "name", "kind", "file", "raw_size", "compressed_size", "sha256", "duration_s",
        "tool", "tool_version", "database",
    }  # fmt: skip
    assert (db["name"], db["kind"], db["file"]) == ("app-db", "sqlite", "app-db.sqlite3.zst")
    assert db["compressed_size"] == (taken.path / db["file"]).stat().st_size
    assert db["tool_version"].startswith("SQLite ")
    assert (conf["kind"], conf["tool"], conf["paths"]) == ("files", "tar", [".env"])
    assert sorted(p.name for p in taken.path.iterdir()) == [
        "app-db.sqlite3.zst", "config.tar.zst", "manifest.json",
    ]  # fmt: skip
    assert [(e.source, e.phase) for e in events if e.phase != "bytes"] == [
        ("app-db", "start"), ("app-db", "done"), ("config", "start"), ("config", "done"),
    ]  # fmt: skip
    assert PW not in (taken.path / "manifest.json").read_text()


def test_a_second_backup_in_the_same_second_gets_a_suffix(
    app: tuple[Path, list[SQLiteSource | FilesSource]],
) -> None:
    tmp, sources = app
    ids = [
        take_backup(stack="s", env="e", sources=sources, root=tmp / "b", running_version=None,
                    release=None, secrets={}, now=NOW).id
        for _ in range(3)
    ]  # fmt: skip
    stamp = NOW.astimezone().strftime("%Y%m%d_%H%M%S")
    assert ids == [stamp, f"{stamp}_1", f"{stamp}_2"]
    assert [s.id for s in list_backups(tmp / "b", "s")] == list(reversed(ids))


def test_a_failing_source_leaves_nothing_that_looks_complete(
    app: tuple[Path, list[SQLiteSource | FilesSource]],
) -> None:
    tmp, sources = app
    with pytest.raises(BackupFailed) as err:
        take_backup(
            stack="s", env="e", sources=[*sources, FailingSource()],  # type: ignore[list-item]
            root=tmp / "b", running_version=None, release=None, secrets={}, now=NOW,
        )  # fmt: skip
    assert err.value.source == "broken"
    assert "'broken'" in err.value.message and "tar: boom" in err.value.message
    assert list((tmp / "b" / "s").iterdir()) == []
    assert list_backups(tmp / "b", "s") == []


def test_a_missing_password_names_the_variable_and_leaves_nothing(tmp_path: Path) -> None:
    src = PostgresSource(name="db", database="odoo", password_env="RG_TEST_UNSET_PW")
    with pytest.raises(BadInput) as err:
        take_backup(stack="s", env="e", sources=[src], root=tmp_path, running_version=None,
                    release=None, secrets={})  # fmt: skip
    assert "RG_TEST_UNSET_PW" in err.value.message
    assert list((tmp_path / "s").iterdir()) == []


def test_sources_must_have_distinct_names(
    app: tuple[Path, list[SQLiteSource | FilesSource]],
) -> None:
    tmp, sources = app
    with pytest.raises(BadInput):
        take_backup(stack="s", env="e", sources=[sources[0], sources[0]], root=tmp,
                    running_version=None, release=None, secrets={})  # fmt: skip
    with pytest.raises(BadInput):
        take_backup(stack="../x", env="e", sources=sources, root=tmp, running_version=None,
                    release=None, secrets={})  # fmt: skip


def test_list_flags_missing_and_corrupt_manifests_and_ignores_partials(
    app: tuple[Path, list[SQLiteSource | FilesSource]],
) -> None:
    tmp, sources = app
    root = tmp / "b"
    good = take_backup(stack="s", env="e", sources=sources, root=root, running_version="v1",
                       release="v2", secrets={}, now=NOW)  # fmt: skip
    base = root / "s"
    (base / "20260101_000000").mkdir()  # no manifest
    (base / "20260102_000000").mkdir()
    (base / "20260102_000000" / "manifest.json").write_text("{not json")
    (base / ".20260201_000000.partial").mkdir()  # being written / crashed
    truncated = base / "20260103_000000"
    truncated.mkdir()
    manifest = dict(good.manifest, id=truncated.name)
    (truncated / "manifest.json").write_text(json.dumps(manifest))
    (truncated / "app-db.sqlite3.zst").write_bytes(b"short")
    listed = {s.id: s for s in list_backups(root, "s")}
    assert set(listed) == {good.id, "20260101_000000", "20260102_000000", "20260103_000000"}
    assert listed[good.id].complete
    assert "missing" in listed["20260101_000000"].problem
    assert "corrupt" in listed["20260102_000000"].problem
    assert not listed["20260103_000000"].complete
    assert list_backups(root, "s")[0].id == good.id  # newest first
    assert list_backups(root, "other") == []


# --- retention (pure) -----------------------------------------------------------------------


def fake_set(id_: str, days_ago: float, complete: bool = True) -> BackupSet:
    return BackupSet(
        id_, "s", Path("/nowhere") / id_, NOW - timedelta(days=days_ago),
        {"id": id_} if complete else {}, complete, "" if complete else "manifest.json missing",
    )  # fmt: skip


SETS = [fake_set(f"b{i}", i) for i in range(10)]  # b0 newest .. b9 oldest


def ids(sets: list[BackupSet]) -> list[str]:
    return [s.id for s in sets]


def test_retention_without_limits_keeps_everything() -> None:
    keep, remove = select_retention(SETS, keep_days=None, keep_last=None, protect=set(), now=NOW)
    assert ids(keep) == ids(SETS) and remove == []


def test_retention_keep_last() -> None:
    keep, remove = select_retention(SETS, keep_days=None, keep_last=3, protect=set(), now=NOW)
    assert ids(keep) == ["b0", "b1", "b2"]
    assert ids(remove) == [f"b{i}" for i in range(3, 10)]


def test_retention_keep_days() -> None:
    keep, remove = select_retention(SETS, keep_days=4, keep_last=None, protect=set(), now=NOW)
    assert ids(keep) == ["b0", "b1", "b2", "b3", "b4"]
    assert ids(remove) == ["b5", "b6", "b7", "b8", "b9"]


def test_retention_both_limits_keep_the_union() -> None:
    keep, _ = select_retention(SETS, keep_days=1, keep_last=4, protect=set(), now=NOW)
    assert ids(keep) == ["b0", "b1", "b2", "b3"]
    keep, _ = select_retention(SETS, keep_days=6, keep_last=2, protect=set(), now=NOW)
    assert ids(keep) == ["b0", "b1", "b2", "b3", "b4", "b5", "b6"]


def test_retention_never_removes_a_protected_set() -> None:
    keep, remove = select_retention(
        list(reversed(SETS)), keep_days=None, keep_last=0, protect={"b9", "b5"}, now=NOW
    )
    assert ids(keep) == ["b5", "b9"] and "b9" not in ids(remove)
    assert len(keep) + len(remove) == len(SETS)


def test_retention_incomplete_sets_do_not_count_and_go_only_by_age() -> None:
    sets = [fake_set("x0", 0, complete=False), *SETS[:3], fake_set("x9", 9, complete=False)]
    keep, remove = select_retention(sets, keep_days=None, keep_last=2, protect=set(), now=NOW)
    assert ids(keep) == ["x0", "b0", "b1", "x9"] and ids(remove) == ["b2"]
    keep, remove = select_retention(sets, keep_days=3, keep_last=1, protect=set(), now=NOW)
    assert ids(remove) == ["x9"]


def test_retention_refuses_negative_limits() -> None:
    with pytest.raises(BadInput):
        select_retention(SETS, keep_days=-1, keep_last=None, protect=set(), now=NOW)


# --- verify and restore ---------------------------------------------------------------------


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_restores_into_a_scratch_file_and_runs_the_checks(
    app: tuple[Path, list[SQLiteSource | FilesSource]],
) -> None:
    tmp, sources = app
    taken = take_backup(stack="s", env="e", sources=sources, root=tmp / "b",
                        running_version=None, release=None, secrets={})  # fmt: skip
    report = verify_backup(taken, sources, {})
    assert report.ok, report
    db, conf = report.results
    assert db.evidence["sha256_ok"] and db.evidence["scratch_dropped"]
    assert db.evidence["checks"][0]["value"] == "50"
    assert not Path(db.evidence["scratch"]).exists()
    assert "1 entries" in conf.summary


def test_verify_fails_a_failing_check(app: tuple[Path, list[SQLiteSource | FilesSource]]) -> None:
    tmp, sources = app
    taken = take_backup(stack="s", env="e", sources=sources, root=tmp / "b",
                        running_version=None, release=None, secrets={})  # fmt: skip
    strict = SQLiteSource(
        name="app-db", path=tmp / "app.db",
        checks=(SanityCheck("SELECT count(*) FROM users", ">=1000"),
                SanityCheck("SELECT count(*) FROM nope", ">0")),
    )  # fmt: skip
    report = verify_backup(taken, [strict, sources[1]], {})
    assert not report.ok
    bad = report.results[0]
    assert "2 of 2 sanity check(s) failed" in bad.summary and "no such table" in bad.summary


def test_a_flipped_byte_fails_verify_and_restore_is_refused(
    app: tuple[Path, list[SQLiteSource | FilesSource]],
) -> None:
    tmp, sources = app
    taken = take_backup(stack="s", env="e", sources=sources, root=tmp / "b",
                        running_version=None, release=None, secrets={})  # fmt: skip
    flip_byte(taken.path / "app-db.sqlite3.zst")
    report = verify_backup(taken, sources, {})
    assert not report.ok
    assert "sha256 mismatch" in report.results[0].summary
    assert report.results[1].ok
    with sqlite3.connect(tmp / "app.db") as db:
        db.execute("DELETE FROM users")
    db.close()
    with pytest.raises(Refused) as err:
        restore_backup(taken, sources, {})
    assert "sha256 mismatch" in err.value.message and "nothing was restored" in err.value.message
    assert count(tmp / "app.db") == 0  # untouched


def test_restore_puts_the_data_back(app: tuple[Path, list[SQLiteSource | FilesSource]]) -> None:
    tmp, sources = app
    taken = take_backup(stack="s", env="e", sources=sources, root=tmp / "b",
                        running_version=None, release=None, secrets={})  # fmt: skip
    with sqlite3.connect(tmp / "app.db") as db:
        db.execute("DELETE FROM users WHERE id > 10")
    db.close()
    (tmp / "stack" / ".env").write_text("DB_PASSWORD=changed\n")
    report = restore_backup(taken, sources, {})
    assert report.ok and [r.name for r in report.results] == ["app-db", "config"]
    assert count(tmp / "app.db") == 50
    assert (tmp / "stack" / ".env").read_text() == f"DB_PASSWORD={PW}\n"


def test_restore_refuses_sources_the_set_lacks(
    app: tuple[Path, list[SQLiteSource | FilesSource]],
) -> None:
    tmp, sources = app
    taken = take_backup(stack="s", env="e", sources=sources[:1], root=tmp / "b",
                        running_version=None, release=None, secrets={})  # fmt: skip
    with pytest.raises(Refused) as err:
        restore_backup(taken, sources, {})
    assert "config: not in this backup" in err.value.message
    # only some sources: fine
    assert restore_backup(taken, sources[:1], {}).ok


def test_verify_of_an_incomplete_set_fails(tmp_path: Path) -> None:
    (tmp_path / "s" / "20260101_000000").mkdir(parents=True)
    [incomplete] = list_backups(tmp_path, "s")
    report = verify_backup(incomplete, [], {})
    assert not report.ok and "incomplete" in report.results[0].summary
    with pytest.raises(Refused):
        restore_backup(incomplete, [SQLiteSource(name="a", path=tmp_path / "a.db")], {})


def test_verify_without_a_configured_database_source_says_so(
    app: tuple[Path, list[SQLiteSource | FilesSource]], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp, sources = app
    taken = take_backup(stack="s", env="e", sources=sources, root=tmp / "b",
                        running_version=None, release=None, secrets={})  # fmt: skip
    # files and sqlite sources are rebuilt from the manifest when not configured
    report = verify_backup(taken, [], {})
    assert report.ok, report
    entry = taken.manifest["sources"][0]
    entry["kind"] = "postgres"  # a database that needs credentials: cannot be restore-tested
    report = verify_backup(taken, [], {})
    assert not report.results[0].ok and "not restore-tested" in report.results[0].summary


def test_no_password_in_argv_or_manifest_for_a_postgres_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "argv.log"
    (bin_dir / "pg_dump").write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" >> "$RG_ARGV_LOG"\n'
        '[ "$1" = --version ] && echo "pg_dump (PostgreSQL) 15.99" && exit 0\n'
        '[ -n "$PGPASSWORD" ] || exit 9\necho PGDMP\n'
    )
    (bin_dir / "pg_dump").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RG_ARGV_LOG", str(log))
    src = PostgresSource(name="db", database="odoo", password_env="DB_PASSWORD")
    secrets = {"DB_PASSWORD": PW}
    taken = take_backup(stack="s", env="e", sources=[src], root=tmp_path / "b",
                        running_version=None, release=None, secrets=secrets)  # fmt: skip
    assert PW not in log.read_text() and "odoo" in log.read_text()
    text = (taken.path / "manifest.json").read_text()
    assert PW not in text and "PASSWORD" not in text.upper()
    entry = taken.manifest["sources"][0]
    assert entry["tool_version"] == "pg_dump (PostgreSQL) 15.99" and entry["database"] == "odoo"
