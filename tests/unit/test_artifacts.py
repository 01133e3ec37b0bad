"""Artifact inspection as data: hostile tarballs and folders built in tmp_path."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from releasegate.artifacts import (
    GIB,
    MIB,
    ArtifactRefused,
    Limits,
    artifact_digest,
    inspect_artifact,
    inspect_tarball,
    strip_plan,
)
from tests.lab.artifacts import Entry, bomb, make_tar

GOOD = [("./", "d", None), ("./app.py", "f", b"print(1)\n"), ("./lib", "d", None)]

REFUSED: list[tuple[str, list[Entry], str]] = [
    ("marker-symlink", [("./.releasegate-release.json", "l", "/etc/passwd")], "releasegate"),
    ("marker-file", [(".releasegate-release.json", "f", b"{}")], "releasegate writes"),
    ("absolute", [("/etc/cron.d/x", "f", b"x")], "absolute name"),
    ("dotdot", [("a/../../x", "f", b"x")], "'..'"),
    ("char-device", [("null", "c", None)], "character device"),
    ("block-device", [("sda", "b", None)], "block device"),
    ("fifo", [("pipe", "p", None)], "FIFO"),
    ("symlink-absolute", [("etc", "l", "/etc")], "points outside"),
    ("symlink-up", [("up", "l", "../..")], "leads outside"),
    (
        "symlink-chain",  # lexically inside, but `u` is the release root: u/.. is its parent
        [("u", "l", "."), ("x", "l", "u/..")],
        "leads outside",
    ),
    (
        "symlink-chain-later",  # the link that makes it escape comes after it
        [("x", "l", "d/.."), ("d", "l", ".")],
        "leads outside",
    ),
    (
        "write-through-symlink",
        [("sub", "d", None), ("cfg", "l", "sub"), ("cfg/.env", "f", b"x")],
        "written through the symlink cfg",
    ),
    ("symlink-loop", [("a", "l", "b"), ("b", "l", "a")], "(or loops)"),
    ("root-as-symlink", [("./", "l", "lib")], "names the release folder itself"),
    ("hardlink-outside", [("h", "h", "../../etc/shadow")], "'..'"),
    ("hardlink-absolute", [("h", "h", "/etc/shadow")], "absolute name"),
    ("hardlink-unknown", [("h", "h", "nowhere")], "not a file of the artifact"),
    ("hardlink-to-symlink", [("s", "l", "a"), ("a", "f", b""), ("h", "h", "s")], "not a file"),
    ("symlink-and-dir", [("a", "d", None), ("a", "l", "b")], "once as a symlink"),
]


@pytest.mark.parametrize(("case", "entries", "message"), REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_tarballs_are_refused(
    tmp_path: Path, case: str, entries: list[Entry], message: str
) -> None:
    archive = make_tar(tmp_path / f"{case}.tar.gz", [*GOOD, *entries])
    with pytest.raises(ArtifactRefused) as refused:
        inspect_tarball(archive)
    assert message in refused.value.message
    assert refused.value.exit_code == 3


def test_a_plain_tarball_is_accepted_with_its_sha256(tmp_path: Path) -> None:
    entries: list[Entry] = [
        *GOOD,
        ("./lib/util.py", "f", b"x = 1\n"),
        ("./lib/link.py", "l", "util.py"),
        ("./bin", "l", "lib"),  # a link to a folder inside: fine, nothing is written through it
        ("./twin.py", "h", "./lib/util.py"),
    ]
    archive = make_tar(tmp_path / "v1.tar.gz", entries)
    found = inspect_tarball(archive)
    assert found.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert found.sha256 == artifact_digest(archive)
    assert (found.files, found.bytes, found.strip, found.notices) == (7, 15, 0, ())


def test_setuid_bits_are_stripped_with_a_notice(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "v1.tar.gz", [*GOOD, ("./su", "f", 0o4755)])
    found = inspect_tarball(archive)
    assert found.notices == ("./su: setuid/setgid/sticky bits stripped",)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["app-1.2/", "app-1.2/a.py", "app-1.2/lib/b.py"], (1, "app-1.2")),
        (["./app-1.2/", "./app-1.2/a.py"], (2, "app-1.2")),
        (["./", "./app-1.2/", "./app-1.2/a.py"], (2, "app-1.2")),
        (["app-1.2/a.py", "other/b.py"], (0, "")),
        (["a.py"], (0, "")),  # one top file
        (["./", "./a.py", "./lib/b.py"], (0, "")),
        (["app/", "./app/a.py"], (0, "")),  # written two ways: not the same top entry
        (["empty/"], (0, "")),
    ],
)
def test_strip_plan(names: list[str], expected: tuple[int, str]) -> None:
    assert strip_plan(names) == expected


def test_one_top_folder_is_stripped_and_judged_without_it(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "v1.tar.gz",
        [("app-1.2", "d", None), ("app-1.2/a.py", "f", b"1"), ("app-1.2/up", "l", "..")],
    )
    # Once the top level is gone, `up -> ..` leaves the release.
    with pytest.raises(ArtifactRefused, match="leads outside"):
        inspect_tarball(archive)
    archive = make_tar(
        tmp_path / "v2.tar.gz", [("app-1.2", "d", None), ("app-1.2/a.py", "f", b"1")]
    )
    found = inspect_tarball(archive)
    assert (found.strip, found.top) == (1, "app-1.2")
    assert "unpacked without its single top folder app-1.2/" in found.notices


def test_limits_on_files_and_bytes(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "v1.tar.gz", [(f"f{i}", "f", b"abc") for i in range(20)])
    with pytest.raises(ArtifactRefused, match="more than 10 entries"):
        inspect_tarball(archive, Limits(max_files=10))
    with pytest.raises(ArtifactRefused, match="expands to more than 50 bytes"):
        inspect_tarball(archive, Limits(max_bytes=50))
    assert inspect_tarball(archive, Limits(max_files=20, max_bytes=60)).files == 20


def test_a_compression_bomb_is_refused_at_its_header(tmp_path: Path) -> None:
    archive = bomb(tmp_path / "bomb.tar.gz", GIB)
    assert archive.stat().st_size < 2 * MIB
    with pytest.raises(ArtifactRefused, match="compression bomb"):
        inspect_tarball(archive)


def test_a_huge_pax_header_is_refused_within_the_budget(tmp_path: Path) -> None:
    archive = tmp_path / "pax.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a")
        info.pax_headers = {"comment": "x" * (3 * MIB)}
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArtifactRefused, match="expands past"):
        inspect_tarball(archive, Limits(max_bytes=MIB, max_files=10))


def test_garbage_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "v1.tar.gz"
    junk.write_bytes(b"not gzip at all" * 10)
    with pytest.raises(ArtifactRefused, match="not a readable"):
        inspect_tarball(junk)
    truncated = make_tar(tmp_path / "v2.tar.gz", [("a", "f", os.urandom(100_000))])
    truncated.write_bytes(truncated.read_bytes()[:50_000])
    with pytest.raises(ArtifactRefused):
        inspect_tarball(truncated)


# ---- folders -------------------------------------------------------------------------------


def make_dir(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "app.py").write_text("print(1)\n")
    (root / "lib" / "util.py").write_text("x = 1\n")
    (root / "lib" / "link.py").symlink_to("util.py")
    return root


def test_a_folder_digest_covers_names_content_modes_and_links(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "v1")
    first = artifact_digest(root)
    assert first == inspect_artifact(root).sha256 == artifact_digest(make_dir(tmp_path / "c"))
    changes = [
        lambda: (root / "app.py").write_text("print(2)\n"),
        lambda: (root / "app.py").chmod(0o755),
        lambda: (root / "lib" / "new").mkdir(),
        lambda: ((root / "lib" / "link.py").unlink(), (root / "lib" / "link.py").symlink_to("x")),
        lambda: (root / "app.py").rename(root / "main.py"),
    ]
    seen = {first}
    for change in changes:
        change()
        now = artifact_digest(root)
        assert now not in seen
        seen.add(now)


def test_hostile_folders_are_refused(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "v1")
    os.mkfifo(root / "pipe")
    with pytest.raises(ArtifactRefused, match="pipe is a FIFO"):
        inspect_artifact(root)
    (root / "pipe").unlink()
    (root / "config").symlink_to(tmp_path)
    with pytest.raises(ArtifactRefused, match="points outside"):
        inspect_artifact(root)
    (root / "config").unlink()
    (root / ".releasegate-release.json").symlink_to("app.py")
    with pytest.raises(ArtifactRefused, match="releasegate writes"):
        inspect_artifact(root)
    (root / ".releasegate-release.json").unlink()
    (root / "app.py").chmod(0o4755)
    found = inspect_artifact(root)
    assert found.notices == ("app.py: setuid/setgid/sticky bits stripped",)
    assert stat.S_IMODE((root / "app.py").stat().st_mode) == 0o4755  # inspection writes nothing


def test_notices_are_bounded_and_the_strip_comes_first(tmp_path: Path) -> None:
    entries: list[Entry] = [("app", "d", None)]
    entries += [(f"app/s{i}", "f", 0o4755) for i in range(30)]
    found = inspect_tarball(make_tar(tmp_path / "v1.tar.gz", entries))
    assert found.notices[0] == "unpacked without its single top folder app/"
    assert len(found.notices) == 11 and found.notices[-1] == "and 21 more like these"


def test_a_folder_reached_through_a_link_is_a_folder(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "v1")
    (tmp_path / "latest").symlink_to(root)
    assert inspect_artifact(tmp_path / "latest").sha256 == artifact_digest(root)
    with pytest.raises(ArtifactRefused, match="could not read"):
        inspect_artifact(tmp_path / "missing.tar.gz")
