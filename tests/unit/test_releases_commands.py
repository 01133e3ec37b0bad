import json
import os
import subprocess
from pathlib import PurePosixPath as P

from releasegate.runtimes import releases_commands as rc

ROOT = P("/srv/app")


def test_switch_is_a_symlink_then_one_rename():
    cmds = rc.switch_current(ROOT, "v2", "tok")
    assert cmds == [
        ["ln", "-sfn", "--", "releases/v2", "/srv/app/.current.tmp-tok"],
        ["mv", "-T", "--", "/srv/app/.current.tmp-tok", "/srv/app/current"],
    ]


def test_switch_replaces_a_stale_link_to_a_folder_without_following_it(tmp_path):
    root = tmp_path / "app"
    for v in ("v1", "v2"):
        (root / "releases" / v).mkdir(parents=True)
    (root / "current").symlink_to("releases/v1")
    (root / ".current.tmp-tok").symlink_to("releases/v1")  # left by a crashed run
    for argv in rc.switch_current(P(str(root)), "v2", "tok"):
        subprocess.run(argv, check=True)
    assert os.readlink(root / "current") == "releases/v2"
    assert not (root / ".current.tmp-tok").exists()
    assert sorted(p.name for p in (root / "releases" / "v1").iterdir()) == []


def test_unpack_and_copy():
    assert rc.unpack_tarball(P("/a/v1.tar.gz"), P("/srv/app/releases/.v1.tmp-x")) == [
        "tar",
        "-xzf",
        "/a/v1.tar.gz",
        "-C",
        "/srv/app/releases/.v1.tmp-x",
        "--no-same-owner",
        "--no-same-permissions",
        "--no-overwrite-dir",
    ]
    assert rc.unpack_tarball(P("/a/v1.tar.gz"), P("/d"), 2)[-1] == "--strip-components=2"
    assert rc.copy_tree(P("/a/v1"), P("/d")) == [
        *["cp", "-R", "-P", "--preserve=mode,timestamps,links", "--", "/a/v1/.", "/d/"]
    ]
    assert rc.strip_special_bits(P("/d")) == ["chmod", "-R", "ug-s,-t", "--", "/d"]


def test_unpack_drops_owners_and_special_bits(tmp_path):
    """The real tar: a setuid file and a sticky folder come out plain; `./app-1.2/` with
    strip 2 (the "./" counts) unpacks its content."""
    src = tmp_path / "src" / "app-1.2"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_text("#!/bin/sh\n")
    (src / "bin" / "tool").chmod(0o6755)
    (src / "bin").chmod(0o1777)
    archive = tmp_path / "v1.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(src.parent), "./app-1.2"], check=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    subprocess.run(rc.unpack_tarball(P(str(archive)), P(str(dest)), 2), check=True)
    assert sorted(p.name for p in dest.iterdir()) == ["bin"]
    assert (dest / "bin" / "tool").stat().st_mode & 0o7777 == 0o755 & ~_umask()
    assert (dest / "bin").stat().st_mode & 0o7000 == 0


def test_copy_keeps_links_as_links_and_drops_special_bits(tmp_path):
    src, dest = tmp_path / "v1", tmp_path / "dest"
    (src / "lib").mkdir(parents=True)
    dest.mkdir()
    (src / "run").write_text("x")
    (src / "run").chmod(0o4755)
    (src / "lib" / "link").symlink_to("../run")
    subprocess.run(rc.copy_tree(P(str(src)), P(str(dest))), check=True)
    subprocess.run(rc.strip_special_bits(P(str(dest))), check=True)
    assert (dest / "run").stat().st_mode & 0o7777 == 0o755
    assert os.readlink(dest / "lib" / "link") == "../run"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_staging_dir_is_hidden_and_unique():
    d = rc.staging_dir(ROOT, "v1", "abc")
    assert d.name.startswith(".") and d.name.endswith("abc") and d.parent == ROOT / "releases"


def test_shared_links_file_and_nested_dir():
    release = P("/srv/app/releases/v1")
    cmds = rc.shared_links(ROOT, release, [".env", "var/log/app/"])
    guard = cmds[3]
    assert guard[:2] == ["sh", "-c"] and guard[4:] == [str(release), "var", "var/log"]
    assert cmds[:3] + cmds[4:] == [
        ["rm", "-rf", "--", "/srv/app/releases/v1/.env"],
        ["ln", "-s", "-T", "--", "/srv/app/shared/.env", "/srv/app/releases/v1/.env"],
        ["mkdir", "-p", "--", "/srv/app/shared/var/log/app"],
        ["rm", "-rf", "--", "/srv/app/releases/v1/var/log/app"],
        ["mkdir", "-p", "--", "/srv/app/releases/v1/var/log"],
        ["ln", "-s", "-T", "--", "/srv/app/shared/var/log/app", "/srv/app/releases/v1/var/log/app"],
    ]


def test_shared_links_never_go_through_a_symlinked_folder(tmp_path):
    """The artifact's `config -> /outside`, `shared: [config/.env]`: the chain stops at the
    guard; the outside .env is untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".env").write_text("SECRET=1")
    root = tmp_path / "app"
    release = root / "releases" / "v1"
    release.mkdir(parents=True)
    (release / "config").symlink_to(outside)
    ran = [
        subprocess.run(argv, capture_output=True, text=True)
        for argv in rc.shared_links(P(str(root)), P(str(release)), ["config/.env"])[:1]
    ]
    assert ran[0].returncode == 1
    assert "config in the release is a symlink" in ran[0].stderr
    assert (outside / ".env").read_text() == "SECRET=1"
    # a real folder passes the guard
    (release / "config").unlink()
    (release / "config").mkdir()
    for argv in rc.shared_links(P(str(root)), P(str(release)), ["config/.env"]):
        subprocess.run(argv, check=True)
    assert os.readlink(release / "config" / ".env") == str(root / "shared" / "config" / ".env")


def test_write_file_keeps_content_out_of_the_script():
    argv = rc.write_file(P("/x/m.json"), '{"a": "$(id)"}')
    assert argv[:3] == ["sh", "-c", 'printf "%s" "$1" > "$2"']
    assert argv[4] == '{"a": "$(id)"}' and argv[5] == "/x/m.json"


def test_the_marker_replaces_a_link_never_writes_through_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    release = tmp_path / "v1"
    release.mkdir()
    (release / rc.MARKER).symlink_to(victim)
    subprocess.run(rc.write_marker(P(str(release)), '{"sha256": "$(id)"}'), check=True)
    assert victim.read_text() == "keep"
    marker = release / rc.MARKER
    assert not marker.is_symlink() and marker.read_text() == '{"sha256": "$(id)"}'
    assert marker.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in release.iterdir()) == [rc.MARKER]  # no temporary left
    read = subprocess.run(rc.read_marker(P(str(release))), capture_output=True, text=True)
    assert read.stdout == '{"sha256": "$(id)"}'
    marker.unlink()
    marker.symlink_to(victim)
    read = subprocess.run(rc.read_marker(P(str(release))), capture_output=True, text=True)
    assert read.returncode == 3 and read.stdout == ""


def test_marker_sha256():
    digest = "a" * 64
    assert rc.marker_sha256(json.dumps({"version": "v1", "sha256": digest})) == digest
    for text in ("", "[]", "{}", '{"sha256": "xyz"}', '{"sha256": 5}', "not json"):
        assert rc.marker_sha256(text) is None


def test_version_from_link():
    assert rc.version_from_link("releases/sha-19b9b98\n") == "sha-19b9b98"
    assert rc.version_from_link("/srv/app/releases/v3") == "v3"
