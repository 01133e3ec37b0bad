"""Artifacts are untrusted input (issue 16, rows 1-4; issue 15, "same version, new
content"): the real CLI on the embedded default (releases runtime, SQLite) against
hostile tarballs and folders built with tarfile."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from tests.e2e.conftest import Lab, _teardown, build_lab
from tests.lab.artifacts import Entry, bomb, make_tar

pytestmark = pytest.mark.e2e

STACK = "web-staging"


@pytest.fixture()
def lab(tmp_path: Path):
    """The standard lab, with `config/.env` shared as well (issue 16, row 2), and an
    outside folder of files a hostile artifact aims at."""
    lab = build_lab(tmp_path / "ws")
    text = lab.config.read_text().replace(
        "shared: [.env, logs/]", "shared: [.env, logs/, config/.env]"
    )
    lab.config.write_text(text)
    for stack in lab.ports:
        (lab.root / "srv" / stack / "shared" / "config").mkdir(parents=True)
        (lab.root / "srv" / stack / "shared" / "config" / ".env").write_text("DB=shared\n")
    outside = tmp_path / "outside"
    (outside / "etc").mkdir(parents=True)
    (outside / "victim.txt").write_text("do not touch\n")
    (outside / "etc" / ".env").write_text("SECRET=outside\n")
    yield lab
    _teardown(lab)


def app_entries(lab: Lab, version: str) -> list[Entry]:
    """The sample app (v1's server) under `version`: a release that would run."""
    server = (lab.root / "artifacts" / "v1" / "server.py").read_bytes()
    return [
        ("./", "d", None),
        ("./server.py", "f", server),
        ("./VERSION", "f", f"{version}\n".encode()),
    ]


def snapshot(top: Path, skip: list[Path]) -> dict[str, tuple[object, ...]]:
    """Every entry under `top` (links not followed): type, mode, and content or target."""
    seen: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if Path(folder, d) not in skip]
        for name in [*dirs, *files]:
            path = Path(folder, name)
            st = path.lstat()
            rel = str(path.relative_to(top))
            if stat.S_ISLNK(st.st_mode):
                seen[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                seen[rel] = ("file", st.st_mode, digest)
            else:
                seen[rel] = ("other", st.st_mode)
    return seen


def special_entries(top: Path) -> list[str]:
    """Devices, FIFOs, sockets and setuid/setgid files anywhere under `top`."""
    found = []
    for folder, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            st = Path(folder, name).lstat()
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                if not stat.S_ISLNK(st.st_mode):
                    found.append(str(Path(folder, name)))
            elif st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(str(Path(folder, name)))
    return found


def test_the_hostile_artifact_set_leaves_everything_outside_the_stack_byte_identical(
    lab: Lab, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    arts = lab.root / "artifacts"
    hostile: dict[str, tuple[list[Entry], str]] = {
        # row 1: a symlink named like the marker, pointing at an outside file
        "evil-marker": (
            [("./.releasegate-release.json", "l", str(outside / "victim.txt"))],
            "releasegate writes that name",
        ),
        # row 2: `config` is a link to an outside folder; shared: [config/.env]
        "evil-config": ([("./config", "l", str(outside / "etc"))], "points outside"),
        "evil-config-up": ([("./config", "l", "../../../../outside/etc")], "leads outside"),
        # row 3: devices, a FIFO, a setuid-root file
        "evil-chr": ([("./null", "c", None)], "is a character device"),
        "evil-blk": ([("./disk", "b", None)], "is a block device"),
        "evil-fifo": ([("./pipe", "p", None)], "is a FIFO"),
        # names that climb out
        "evil-dotdot": ([("./a/../../../outside/victim.txt", "f", b"x")], "'..'"),
        "evil-abs": ([(str(outside / "victim.txt"), "f", b"x")], "absolute name"),
        "evil-hardlink": ([("./h", "h", str(outside / "victim.txt"))], "absolute name"),
    }
    for version, (extra, _) in hostile.items():
        make_tar(arts / f"{version}.tar.gz", [*app_entries(lab, version), *extra])
    # row 4: a 1 MB tar.gz that expands to 1 GiB
    bomb(arts / "evil-bomb.tar.gz", 1 << 30)
    assert (arts / "evil-bomb.tar.gz").stat().st_size < 2 << 20
    hostile["evil-bomb"] = ([], "compression bomb")
    # a folder artifact whose `config` links inside the release: accepted by the inspection,
    # but the shared link `config/.env` must not be made through it
    folder = arts / "evil-dirlink"
    shutil.copytree(arts / "v1", folder)
    (folder / "VERSION").write_text("evil-dirlink\n")
    (folder / "conf").mkdir()
    (folder / "config").symlink_to("conf")
    hostile["evil-dirlink"] = ([], "config in the release is a symlink")

    stack_dir = lab.root / "srv" / STACK
    skip = [stack_dir, lab.root / ".releasegate"]
    before = snapshot(tmp_path, skip)
    # The inspection refuses at preflight (exit 3: nothing, not even the backup, was done);
    # a release whose shared entry would be linked through its own symlinked folder is
    # caught at prepare, where the release is laid out (exit 1).
    at_prepare = {"evil-dirlink"}
    for version, (_, message) in hostile.items():
        out = lab.rg("deploy", STACK, "staging", version)
        code = 1 if version in at_prepare else 3
        assert out.returncode == code, (version, out.stdout, out.stderr)
        assert message in out.stdout, (version, out.stdout)
        assert not (stack_dir / "releases" / version).exists(), version
    assert snapshot(tmp_path, skip) == before
    assert (outside / "victim.txt").read_text() == "do not touch\n"
    assert (outside / "etc" / ".env").read_text() == "SECRET=outside\n"
    assert special_entries(tmp_path) == []
    assert not (stack_dir / "current").exists()
    # nothing half-made is left, and the bomb wrote nothing
    releases = stack_dir / "releases"
    assert not releases.exists() or list(releases.iterdir()) == []
    used = sum(p.lstat().st_size for p in stack_dir.rglob("*"))
    assert used < 1 << 20
    # each refusal is in the ledger, with the reason
    rows = lab.history_json("--stack", STACK)
    assert [(r["version"], r["status"]) for r in rows] == [
        (v, "fail" if v in at_prepare else "refused") for v in hostile
    ]
    for row in rows:
        assert hostile[row["version"]][1] in row["details"]["message"], row


def test_setuid_bits_are_stripped_and_the_release_runs(lab: Lab) -> None:
    arts = lab.root / "artifacts"
    make_tar(
        arts / "v7.tar.gz",
        [*app_entries(lab, "v7"), ("./bin", "d", None), ("./bin/tool", "f", 0o6755)],
    )
    out = lab.rg("deploy", STACK, "staging", "v7")
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.running_version(STACK) == "v7"
    tool = lab.root / "srv" / STACK / "releases" / "v7" / "bin" / "tool"
    assert tool.stat().st_mode & 0o7000 == 0
    [rec] = [r for r in lab.history_json("--stack", STACK) if r["version"] == "v7"]
    assert rec["status"] == "success"


def test_a_tarball_of_one_top_folder_is_unpacked_without_it(lab: Lab, tmp_path: Path) -> None:
    src = tmp_path / "build" / "app-1.2"
    shutil.copytree(lab.root / "artifacts" / "v1", src)
    (src / "VERSION").write_text("v8\n")
    with tarfile.open(lab.root / "artifacts" / "v8.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="app-1.2")
    out = lab.rg("deploy", STACK, "staging", "v8")
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.running_version(STACK) == "v8"
    release = lab.root / "srv" / STACK / "releases" / "v8"
    assert (release / "server.py").is_file() and not (release / "app-1.2").exists()


def test_same_version_new_content_needs_reprepare(lab: Lab) -> None:
    for version in ("v1", "v2"):
        assert lab.rg("deploy", STACK, "staging", version).returncode == 0
    # v1's artifact changes after it was prepared
    (lab.root / "artifacts" / "v1" / "extra.txt").write_text("new content\n")
    release = lab.root / "srv" / STACK / "releases" / "v1"

    # a rollback brings back the release that ran, whatever its artifact holds now
    out = lab.rg("rollback", STACK, "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.running_version(STACK) == "v1" and not (release / "extra.txt").exists()
    assert lab.rg("deploy", STACK, "staging", "v2").returncode == 0

    out = lab.rg("deploy", STACK, "staging", "v1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "releases/v1 was prepared from other content" in out.stdout
    assert "--reprepare" in out.stdout
    assert lab.running_version(STACK) == "v2"  # nothing switched
    assert not (release / "extra.txt").exists()
    [row] = [r for r in lab.history_json("--stack", STACK) if r["status"] == "fail"]
    assert row["version"] == "v1" and "prepared from other content" in row["details"]["message"]

    out = lab.rg("deploy", STACK, "staging", "v1", "--reprepare")
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.running_version(STACK) == "v1"
    assert (release / "extra.txt").read_text() == "new content\n"
    # prepared again from the same content: reused
    assert lab.rg("deploy", STACK, "staging", "v2").returncode == 0
    out = lab.rg("deploy", STACK, "staging", "v1", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "same content, sha256" in out.stdout


def test_artifact_limits_from_the_config(lab: Lab) -> None:
    text = lab.config.read_text().replace(
        "    keep_releases: 3\n",
        "    keep_releases: 3\n    artifact_limits: {max_files: 3}\n",
        1,
    )
    lab.config.write_text(text)
    out = lab.rg("deploy", STACK, "staging", "v1")  # v1 holds 2 files (and its folder)
    assert out.returncode == 0, out.stdout + out.stderr
    (lab.root / "artifacts" / "v2" / "more.txt").write_text("x")
    (lab.root / "artifacts" / "v2" / "more2.txt").write_text("x")
    out = lab.rg("deploy", STACK, "staging", "v2")
    assert out.returncode == 3  # refused at preflight, before the backup
    assert "more than 3 entries" in out.stdout and "artifact_limits.max_files" in out.stdout
