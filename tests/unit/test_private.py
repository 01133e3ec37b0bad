"""Files at rest: private from creation, older ones tightened with a notice."""

import os
import sqlite3
import stat

from releasegate.ledger import Ledger
from releasegate.private import private_dir, private_file, tighten


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_folders_and_files_are_private_even_with_a_loose_umask(tmp_path):
    old = os.umask(0)
    try:
        assert private_dir(tmp_path / "a" / ".releasegate") == []
        assert private_file(tmp_path / "a" / ".releasegate" / "f") == []
    finally:
        os.umask(old)
    assert mode(tmp_path / "a" / ".releasegate") == 0o700
    assert mode(tmp_path / "a" / ".releasegate" / "f") == 0o600


def test_wider_modes_are_tightened_and_named(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir(mode=0o755)
    (folder / "r.md").write_text("x")
    os.chmod(folder, 0o755)
    os.chmod(folder / "r.md", 0o644)
    notices = private_dir(folder, tighten_files=True)
    assert notices == [
        f"{folder}: mode 0755 -> 0700 (releasegate's files are private)",
        f"{folder / 'r.md'}: mode 0644 -> 0600 (releasegate's files are private)",
    ]
    assert mode(folder) == 0o700 and mode(folder / "r.md") == 0o600
    assert private_dir(folder, tighten_files=True) == []  # once
    assert tighten(tmp_path / "missing", 0o600) == []


def test_the_ledger_its_wal_and_shm_are_created_private(tmp_path):
    path = tmp_path / ".releasegate" / "state.db"
    with Ledger.open(str(path)) as ledger:
        assert ledger.notices == []
        ledger.mark(stack="s", env="e", action="verify", version="v1", user="u", host="h", pid=1)
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            assert mode(tmp_path / ".releasegate" / name) == 0o600, name
    assert mode(tmp_path / ".releasegate") == 0o700


def test_an_older_world_readable_ledger_is_tightened_on_open(tmp_path):
    folder = tmp_path / ".releasegate"
    folder.mkdir()
    sqlite3.connect(folder / "state.db").close()
    os.chmod(folder, 0o755)
    os.chmod(folder / "state.db", 0o644)
    with Ledger.open(str(folder / "state.db")) as ledger:
        assert len(ledger.notices) == 2
        assert "state.db: mode 0644 -> 0600" in ledger.notices[1]
    assert mode(folder) == 0o700 and mode(folder / "state.db") == 0o600


def test_a_chosen_state_folder_is_left_as_it_is(tmp_path):
    folder = tmp_path / "shared-state"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    with Ledger.open(str(folder / "rg.db")) as ledger:
        assert ledger.notices == []
    assert mode(folder) == 0o755 and mode(folder / "rg.db") == 0o600
