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
    ]
    assert rc.copy_tree(P("/a/v1"), P("/d")) == ["cp", "-a", "--", "/a/v1/.", "/d/"]


def test_staging_dir_is_hidden_and_unique():
    d = rc.staging_dir(ROOT, "v1", "abc")
    assert d.name.startswith(".") and d.name.endswith("abc") and d.parent == ROOT / "releases"


def test_shared_links_file_and_nested_dir():
    release = P("/srv/app/releases/v1")
    cmds = rc.shared_links(ROOT, release, [".env", "var/logs/"])
    assert cmds == [
        ["rm", "-rf", "--", "/srv/app/releases/v1/.env"],
        ["ln", "-s", "--", "/srv/app/shared/.env", "/srv/app/releases/v1/.env"],
        ["mkdir", "-p", "--", "/srv/app/shared/var/logs"],
        ["rm", "-rf", "--", "/srv/app/releases/v1/var/logs"],
        ["mkdir", "-p", "--", "/srv/app/releases/v1/var"],
        ["ln", "-s", "--", "/srv/app/shared/var/logs", "/srv/app/releases/v1/var/logs"],
    ]


def test_write_file_keeps_content_out_of_the_script():
    argv = rc.write_file(P("/x/m.json"), '{"a": "$(id)"}')
    assert argv[:3] == ["sh", "-c", 'printf "%s" "$1" > "$2"']
    assert argv[4] == '{"a": "$(id)"}' and argv[5] == "/x/m.json"


def test_version_from_link():
    assert rc.version_from_link("releases/sha-19b9b98\n") == "sha-19b9b98"
    assert rc.version_from_link("/srv/app/releases/v3") == "v3"
