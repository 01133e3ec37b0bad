"""`releasegate init`'s template as data: what a folder tells, and that every text it renders
loads as releasegate.yaml and asks for what is left to fill in."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.config.loader import load_config
from releasegate.init import Detected, app_name, detect, render, todo_lines


@pytest.mark.parametrize(
    ("folder", "name"),
    [("shop", "shop"), ("My Shop", "my-shop"), ("__x__", "x"), ("...", "app"), ("é", "app")],
)
def test_app_name(folder: str, name: str) -> None:
    assert app_name(Path("/srv") / folder) == name


WEB = "services:\n  web:\n    image: "


@pytest.mark.parametrize(
    ("compose", "var", "port"),
    [
        ("services:\n  web:\n    image: r/web:${TAG}\n    ports: ['8080:80']\n", "TAG", 8080),
        (
            "services:\n  web:\n    image: r/web:$TAG\n    ports: ['127.0.0.1:81:80/tcp']\n",
            "TAG",
            81,
        ),
        (
            "services:\n  web:\n    image: web:1\n    ports: [{target: 80, published: 82}]\n",
            None,
            82,
        ),
        ("services:\n  db:\n    image: ${REG}/db:15\n", None, None),  # a registry, not a tag
        ("services: [oops", None, None),  # unreadable: no facts, still a compose stack
    ],
)
def test_detect_compose(tmp_path: Path, compose: str, var: str | None, port: int | None) -> None:
    (tmp_path / "docker-compose.yml").write_text(compose, encoding="utf-8")
    d = detect(tmp_path)
    assert (d.runtime, d.compose_file, d.version_var, d.port) == (
        "compose", "docker-compose.yml", var, port,
    )  # fmt: skip


def test_detect_releases(tmp_path: Path) -> None:
    assert detect(tmp_path).runtime == "releases"
    (tmp_path / "requirements.txt").touch()
    (tmp_path / "manage.py").touch()
    d = detect(tmp_path)
    assert d.install == ["pip", "install", "-r", "requirements.txt"]
    assert d.migrate == ["python", "manage.py", "migrate"]


@pytest.mark.parametrize(
    "detected",
    [
        Detected("web"),
        Detected("web", install=["npm", "ci"], migrate=["python", "manage.py", "migrate"]),
        Detected("shop", compose_file="compose.yaml", version_var="TAG", port=8069),
        Detected("shop", compose_file="docker-compose.yml"),
    ],
    ids=["releases", "releases-detected", "compose", "compose-no-var"],
)
def test_every_rendering_loads_and_says_what_to_fill(tmp_path: Path, detected: Detected) -> None:
    text = render(detected)
    path = tmp_path / "releasegate.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    stack = config.stack(f"{detected.app}-staging")
    assert (stack.runtime, stack.env) == (detected.runtime, "staging")
    assert todo_lines(text)  # what is left to a person is said, by line
    assert all("TODO:" in line for _, line in todo_lines(text))
    if detected.compose_file:
        assert stack.compose is not None and stack.compose.files == [detected.compose_file]
        assert stack.compose.version_var == (detected.version_var or "IMAGE_TAG")
        assert ("no image in" in text) is (detected.version_var is None)
    else:
        assert stack.commands.restart is not None  # fails until filled in: never a silent no-op
        install = stack.commands.install
        assert (install.argv() if install else []) == detected.install
    # the commented production stack becomes a valid one once uncommented
    prod = "\n".join(
        line.replace("  # ", "  ", 1)
        if line.startswith(f"  # {detected.app}-prod") or (line.startswith("  #   "))
        else line
        for line in text.splitlines()
    )
    path.write_text(prod, encoding="utf-8")
    assert load_config(path).stack(f"{detected.app}-prod").promote_from == stack.name
