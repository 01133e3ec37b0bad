"""SQLite backups of a live database: the online backup API gives a consistent copy while
a writer keeps committing (a plain copy of the file would not); verify restores it into a
temporary file; restore puts it back under an open connection."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from releasegate.backup.sets import restore_backup, take_backup, verify_backup
from releasegate.backup.sources import SanityCheck, SQLiteSource
from releasegate.backup.stream import decompress_to_file

pytestmark = pytest.mark.e2e


def test_backup_of_a_database_being_written_is_consistent(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, debit INT, credit INT, pad TEXT)")
    db.executemany(
        "INSERT INTO ledger (debit, credit, pad) VALUES (?, ?, ?)",
        [(5, 5, "x" * 200) for _ in range(20000)],
    )
    db.commit()
    db.close()
    stop = threading.Event()
    commits = [0]

    def writer() -> None:
        conn = sqlite3.connect(path, timeout=30)
        while not stop.is_set():
            with conn:  # each transaction keeps debit = credit overall
                conn.execute("INSERT INTO ledger (debit, credit, pad) VALUES (7, 0, 'w')")
                conn.execute("INSERT INTO ledger (debit, credit, pad) VALUES (0, 7, 'w')")
            commits[0] += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while commits[0] < 20:
            time.sleep(0.01)
        src = SQLiteSource(
            name="app",
            path=path,
            checks=(
                SanityCheck("SELECT SUM(debit) - SUM(credit) FROM ledger", "=0"),
                SanityCheck("SELECT COUNT(*) % 2 FROM ledger", "=0"),
                SanityCheck("SELECT COUNT(*) FROM ledger", ">=20000"),
            ),
        )
        taken = take_backup(stack="s", env="e", sources=[src], root=tmp_path / "b",
                            running_version="v1", release="v2", secrets={})  # fmt: skip
        report = verify_backup(taken, [src], {})
    finally:
        stop.set()
        thread.join()
    assert report.ok, report
    assert "PRAGMA integrity_check: ok" in report.results[0].summary
    # the copy is a single file that opens on its own (no -wal beside it is needed)
    copy = tmp_path / "copy.db"
    decompress_to_file(taken.path / src.file_name, copy)
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT SUM(debit) - SUM(credit) FROM ledger").fetchone() == (0,)
    conn.close()

    live = sqlite3.connect(path)  # an open connection (the app's) during the restore
    live.execute("DELETE FROM ledger")
    live.commit()
    assert restore_backup(taken, [src], {}).ok
    rows = live.execute("SELECT COUNT(*), SUM(debit) - SUM(credit) FROM ledger").fetchone()
    assert rows[0] >= 20000 and rows[1] == 0
    live.close()


def test_a_missing_database_file_fails_clearly(tmp_path: Path) -> None:
    from releasegate.backup.stream import BackupFailed

    src = SQLiteSource(name="app", path=tmp_path / "nope.db")
    with pytest.raises(BackupFailed) as err:
        take_backup(stack="s", env="e", sources=[src], root=tmp_path / "b",
                    running_version=None, release=None, secrets={})  # fmt: skip
    assert "nope.db does not exist" in err.value.message
    assert not (tmp_path / "nope.db").exists()  # not created by the attempt
    assert list((tmp_path / "b" / "s").iterdir()) == []
