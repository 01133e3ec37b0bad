"""Config reading is bounded: file size, alias expansion; duplicate keys refused on the
quick path (read-only commands) as on the full one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from releasegate.config import load_config, quick_state_url
from releasegate.config.yamlsource import MAX_BYTES_VAR, load_yaml, load_yaml_file
from releasegate.errors import ConfigError, ExitCode

STACKS = "stacks:\n  web:\n    env: prod\n    runtime: releases\n    dir: srv\n    artifacts: art\n"


def alias_bomb(levels: int = 7, width: int = 9) -> str:
    """a0 holds `width` scalars, each a(i) holds `width` aliases of a(i-1): width**levels."""
    lines = [f"a0: &a0 [{','.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"stacks: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_the_alias_bomb_is_refused_fast_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "releasegate.yaml"
    config.write_text(alias_bomb())
    assert len(config.read_bytes()) < 450
    for read in (load_config, quick_state_url):
        started = time.monotonic()
        with pytest.raises(ConfigError) as caught:
            read(config)
        assert time.monotonic() - started < 1.0  # the bound; it took 37 s before
        message = caught.value.message
        assert message.startswith(f"{config}:")
        assert "expands to more than" in message and "alias *a" in message
        line = int(message.split(":")[1])
        alias = message.split("alias *")[1].split()[0]
        # The line named holds that alias.
        assert f"*{alias}" in config.read_text().splitlines()[line - 1]
        assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_reasonable_reuse_of_anchors_is_fine() -> None:
    # 300 stacks merging one block of defaults: far below the bound.
    text = "x-d: &d {env: prod, runtime: releases, dir: srv, artifacts: art, keep_releases: 3}\n"
    text += "stacks:\n" + "".join(f"  s{i}: {{<<: *d}}\n" for i in range(300))
    source = load_yaml(text, "f.yaml")
    assert source.data["stacks"]["s299"]["env"] == "prod"


def test_a_config_larger_than_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    config = tmp_path / "releasegate.yaml"
    config.write_text(STACKS + "# padding\n" * 120_000)  # 1.2 MB
    with pytest.raises(ConfigError, match=r"larger than 1,048,576 bytes") as caught:
        load_config(config)
    assert MAX_BYTES_VAR in caught.value.hint
    with pytest.raises(ConfigError, match="larger than"):
        quick_state_url(config)


def test_the_limit_can_be_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "releasegate.yaml"
    config.write_text(STACKS + "# padding\n" * 120_000)
    monkeypatch.setenv(MAX_BYTES_VAR, str(4 * 1024 * 1024))
    assert load_yaml_file(config).data["stacks"]["web"]["env"] == "prod"
    monkeypatch.setenv(MAX_BYTES_VAR, "lots")
    with pytest.raises(ConfigError, match=MAX_BYTES_VAR):
        load_yaml_file(config)


def test_two_state_keys_are_refused_by_the_quick_path_too(tmp_path: Path) -> None:
    config = tmp_path / "releasegate.yaml"
    config.write_text("state: a.db\n" + STACKS + "state: b.db\n")
    for read in (load_config, quick_state_url):
        with pytest.raises(ConfigError, match=r"releasegate.yaml:8: duplicate key 'state'"):
            read(config)


def test_a_duplicate_anywhere_is_refused_by_the_quick_path(tmp_path: Path) -> None:
    config = tmp_path / "releasegate.yaml"
    config.write_text(STACKS + "    env: staging\n")
    with pytest.raises(ConfigError, match="duplicate key 'env'"):
        quick_state_url(config)
