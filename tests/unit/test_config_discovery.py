"""Which releasegate.yaml is used: --config, then $RELEASEGATE_CONFIG, then cwd and its parents."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.config import find_config_path
from releasegate.errors import BadInput


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/releasegate.yaml, tmp/a/b/c (cwd), tmp/other/custom.yaml; no env var."""
    monkeypatch.delenv("RELEASEGATE_CONFIG", raising=False)
    (tmp_path / "releasegate.yaml").write_text("stacks: {}\n")
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "custom.yaml").write_text("stacks: {}\n")
    (tmp_path / "other" / "env.yaml").write_text("stacks: {}\n")
    monkeypatch.chdir(tmp_path / "a" / "b" / "c")
    return tmp_path


def test_nearest_parent_is_found(tree: Path) -> None:
    assert find_config_path(None) == tree / "releasegate.yaml"


def test_cwd_wins_over_parents(tree: Path) -> None:
    (tree / "a" / "releasegate.yaml").write_text("stacks: {}\n")
    assert find_config_path(None) == tree / "a" / "releasegate.yaml"
    (tree / "a" / "b" / "c" / "releasegate.yaml").write_text("stacks: {}\n")
    assert find_config_path(None) == tree / "a" / "b" / "c" / "releasegate.yaml"


def test_env_var_wins_over_cwd(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASEGATE_CONFIG", str(tree / "other" / "env.yaml"))
    assert find_config_path(None) == tree / "other" / "env.yaml"


def test_explicit_wins_over_env_var(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASEGATE_CONFIG", str(tree / "other" / "env.yaml"))
    assert find_config_path("../../../other/custom.yaml") == Path("../../../other/custom.yaml")


def test_explicit_folder_means_its_releasegate_yaml(tree: Path) -> None:
    assert find_config_path(str(tree)) == tree / "releasegate.yaml"


def test_explicit_missing_file(tree: Path) -> None:
    with pytest.raises(BadInput) as caught:
        find_config_path("nope.yaml")
    assert caught.value.message == "config file nope.yaml (from --config) does not exist"
    assert "releasegate demo --dir DIR" in caught.value.hint


def test_env_var_missing_file(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASEGATE_CONFIG", str(tree / "gone.yaml"))
    with pytest.raises(BadInput, match=r"gone\.yaml \(from RELEASEGATE_CONFIG\) does not exist"):
        find_config_path(None)


def test_nothing_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELEASEGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    if any((d / "releasegate.yaml").is_file() for d in tmp_path.parents):
        pytest.skip("a releasegate.yaml exists above the temporary folder")
    with pytest.raises(BadInput) as caught:
        find_config_path(None)
    assert caught.value.message == f"no releasegate.yaml in {tmp_path} or any folder above it"
    assert "`releasegate init` writes a releasegate.yaml" in caught.value.hint
    assert "--config" in caught.value.hint
