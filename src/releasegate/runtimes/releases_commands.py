"""Pure command builders for the `releases` runtime (tested as data).

Layout on a host, Capistrano's, with the version as the release name:
    <dir>/releases/<version>/   one immutable release per version
    <dir>/shared/               files and folders every release links in (.env, logs/)
    <dir>/current -> releases/<version>   switched atomically with rename(2)
"""

from __future__ import annotations

from pathlib import PurePosixPath

MARKER = ".releasegate-release.json"  # written once a release is fully prepared


def releases_dir(root: PurePosixPath) -> PurePosixPath:
    return root / "releases"


def release_dir(root: PurePosixPath, version: str) -> PurePosixPath:
    return root / "releases" / version


def staging_dir(root: PurePosixPath, version: str, token: str) -> PurePosixPath:
    # Dot-prefixed so a half-unpacked release is never taken for a release.
    return root / "releases" / f".{version}.tmp-{token}"


def mkdirs(*paths: PurePosixPath) -> list[str]:
    return ["mkdir", "-p", "--", *map(str, paths)]


def remove(path: PurePosixPath) -> list[str]:
    return ["rm", "-rf", "--", str(path)]


def unpack_tarball(archive: PurePosixPath, dest: PurePosixPath) -> list[str]:
    # --no-same-owner: files belong to whoever deploys, not to the uid in the archive.
    return ["tar", "-xzf", str(archive), "-C", str(dest), "--no-same-owner"]


def copy_tree(source: PurePosixPath, dest: PurePosixPath) -> list[str]:
    return ["cp", "-a", "--", f"{source}/.", f"{dest}/"]


def rename_dir(source: PurePosixPath, dest: PurePosixPath) -> list[str]:
    # -T: rename onto `dest` itself, never into it if it exists.
    return ["mv", "-T", "--", str(source), str(dest)]


def link(target: str, link_path: PurePosixPath) -> list[str]:
    return ["ln", "-s", "--", target, str(link_path)]


def switch_current(root: PurePosixPath, version: str, token: str) -> list[list[str]]:
    """Make `current` point at the release: a new symlink, then one atomic rename over the old."""
    tmp = root / f".current.tmp-{token}"
    return [
        remove(tmp),
        link(f"releases/{version}", tmp),
        ["mv", "-T", "--", str(tmp), str(root / "current")],
    ]


def write_file(path: PurePosixPath, content: str) -> list[str]:
    # Content and path are positional parameters of the shell, never part of its script.
    return ["sh", "-c", 'printf "%s" "$1" > "$2"', "sh", content, str(path)]


def read_current(root: PurePosixPath) -> list[str]:
    return ["readlink", "--", str(root / "current")]


def list_releases(root: PurePosixPath) -> list[str]:
    return ["ls", "-1A", "--", str(releases_dir(root))]


def shared_links(
    root: PurePosixPath, release: PurePosixPath, entries: list[str]
) -> list[list[str]]:
    """Link each shared entry into the release, replacing what the artifact shipped there."""
    cmds: list[list[str]] = []
    for entry in entries:
        name = entry.rstrip("/")
        target = root / "shared" / name
        inside = release / name
        if entry.endswith("/"):
            cmds.append(mkdirs(target))
        cmds.append(remove(inside))
        if inside.parent != release:
            cmds.append(mkdirs(inside.parent))
        cmds.append(link(str(target), inside))
    return cmds


def version_from_link(target: str) -> str:
    """`releases/v2` (or an absolute path to it) -> `v2`."""
    return PurePosixPath(target.strip()).name


_SURVEY = """\
target=$(readlink -- "$1/current") && echo "current $target"
for d in "$1"/releases/*/; do
  [ -f "$d.releasegate-release.json" ] && echo "prepared $(basename -- "$d")"
done
exit 0
"""


def survey(root: PurePosixPath) -> list[str]:
    """What a host has, in one round trip: where `current` points, which releases are complete."""
    return ["sh", "-c", _SURVEY, "sh", str(root)]


def parse_survey(stdout: str) -> tuple[str | None, set[str]]:
    """`survey` output -> (the running version or None, the prepared versions)."""
    current: str | None = None
    prepared: set[str] = set()
    for line in stdout.splitlines():
        kind, _, value = line.partition(" ")
        if kind == "current" and value.strip():
            current = version_from_link(value)
        elif kind == "prepared" and value.strip():
            prepared.add(value.strip())
    return current, prepared


_SHA256 = """\
sum=$(sha256sum -- "$1") || exit 1
sum=${sum%% *}
[ "$sum" = "$2" ] || { echo "$1 arrived with sha256 $sum, sent $2" >&2; exit 1; }
"""


def receive(path: PurePosixPath) -> list[str]:
    """Write standard input to `path` (the artifact streamed over the SSH channel)."""
    return ["sh", "-c", 'cat > "$1"', "sh", str(path)]


def check_sha256(path: PurePosixPath, digest: str) -> list[str]:
    """Fails unless the file's sha256 on the host is `digest` (an upload checked on arrival)."""
    return ["sh", "-c", _SHA256, "sh", str(path), digest]
