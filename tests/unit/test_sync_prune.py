"""Pure parts of `sync` (what would change) and `prune` (which tags may go)."""

from __future__ import annotations

from pathlib import Path

from releasegate.prune import select_prunable
from releasegate.redact import Redactor
from releasegate.sync import plan_sync


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def test_sync_plan_shows_new_changed_and_keeps_env(tmp_path: Path) -> None:
    src, run = tmp_path / "src", tmp_path / "run"
    write(src, {
        "docker-compose.yml": "services:\n  web:\n    image: r/web:${IMAGE_TAG}\n",
        "conf/odoo.conf": "[options]\nworkers = 4\n",
        "logo.png": b"\x89PNG\0\0",
        ".env": "IMAGE_TAG=sha-0000000\n",
        ".git/HEAD": "ref: main\n",
    })  # fmt: skip
    write(run, {
        "docker-compose.yml": "services:\n  web:\n    image: r/web:${IMAGE_TAG}\n",
        "conf/odoo.conf": "[options]\nworkers = 2\nadmin_passwd = hunter2hunter2\n",
        ".env": "IMAGE_TAG=sha-1111111\nDB_PASSWORD=hunter2hunter2\n",
        "local-only.txt": "x",
    })  # fmt: skip
    plan = plan_sync(src, run, Redactor.from_env({"DB_PASSWORD": "hunter2hunter2"}))
    kinds = {c.path: c.kind for c in plan.changes}
    assert kinds == {"conf/odoo.conf": "changed", "logo.png": "new"}
    assert plan.unchanged == 1 and plan.kept == [".env"]
    assert plan.only_in_target == ["local-only.txt"]
    diff = next(c for c in plan.changes if c.path == "conf/odoo.conf").diff
    assert "-workers = 2" in diff and "+workers = 4" in diff
    assert not any("hunter2hunter2" in line for line in diff)  # secrets masked in the diff
    assert next(c for c in plan.changes if c.path == "logo.png").binary
    assert plan.replaced == ["conf/odoo.conf"]


def test_sync_into_a_missing_run_dir_is_all_new(tmp_path: Path) -> None:
    write(tmp_path / "src", {"compose.yaml": "services: {}\n"})
    plan = plan_sync(tmp_path / "src", tmp_path / "run", Redactor())
    assert [(c.path, c.kind) for c in plan.changes] == [("compose.yaml", "new")]


def test_prune_keeps_recent_and_protected_and_ignores_unknown_tags() -> None:
    order = ["sha-5", "sha-4", "sha-3", "sha-2", "sha-1"]  # newest first, from the ledger
    present = ["sha-1", "sha-2", "sha-3", "sha-4", "sha-5", "nightly", "sha-9"]
    choice = select_prunable(present, order, keep_n=2, protect={"sha-2"})
    assert choice.remove == ["sha-3", "sha-1"]
    assert choice.keep == ["sha-5", "sha-4", "sha-2"]
    assert choice.unknown == ["nightly", "sha-9"]


def test_prune_with_nothing_deployed_removes_nothing() -> None:
    choice = select_prunable(["a", "b"], [], keep_n=1, protect=())
    assert choice.remove == [] and choice.unknown == ["a", "b"]
