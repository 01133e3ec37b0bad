"""Pure command builders for the `releases` runtime (tested as data).

Layout on a host, Capistrano's, with the version as the release name:
    <dir>/releases/<version>/   one immutable release per version
    <dir>/shared/               files and folders every release links in (.env, logs/)
    <dir>/current -> releases/<version>   switched atomically with rename(2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


def remove(*paths: PurePosixPath) -> list[str]:
    return ["rm", "-rf", "--", *map(str, paths)]


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
        # -f -n: a stale link of that name is replaced, never followed (it is ours alone,
        # so this step need not be atomic; the rename is).
        ["ln", "-sfn", "--", f"releases/{version}", str(tmp)],
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


# What a host has, and what preflight needs to know of it, in one round trip. Every line
# of ours starts with "@"; only `df`'s own lines do not. ${d##*/} rather than basename: no
# process per release.
_SURVEY = """\
root=$1; shift
if target=$(readlink -- "$root/current"); then echo "@current $target"; fi
for d in "$root"/releases/* "$root"/releases/.[!.]*; do
  [ -d "$d" ] || continue
  if [ -f "$d/.releasegate-release.json" ]; then echo "@release 1 ${d##*/}"
  else echo "@release 0 ${d##*/}"; fi
done
p=$root; while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done
if [ -d "$root" ]; then echo "@root"; fi
echo "@df $p"; df -Pk -- "$p" || echo "@df-failed"
mode=cmd
for a in "$@"; do
  if [ "$a" = "--shared" ]; then mode=shared; continue; fi
  if [ "$mode" = cmd ]; then
    if w=$(command -v -- "$a"); then echo "@cmd 1 $w"; else echo "@cmd 0"; fi
  elif [ -e "$root/shared/$a" ]; then echo "@shared 1"; else echo "@shared 0"; fi
done
exit 0
"""


@dataclass(frozen=True)
class Survey:
    """One host as `survey` saw it."""

    current: str | None  # the running version: where `current` points
    prepared: frozenset[str]  # complete releases (their marker written)
    names: tuple[str, ...]  # every entry of releases/, half-made dot-folders included
    root_exists: bool = False  # the stack's dir is there


def survey(
    root: PurePosixPath, commands: Sequence[str] = (), shared: Sequence[str] = ()
) -> list[str]:
    """`current`, the releases, free disk, the required `commands` and the `shared` files of
    a host (read by gates.preflight.probe_verdicts), in one command. Every value is a
    positional parameter of the shell, never part of its script."""
    return ["sh", "-c", _SURVEY, "sh", str(root), *commands, "--shared", *shared]


def parse_survey(stdout: str) -> Survey:
    current: str | None = None
    prepared: set[str] = set()
    names: list[str] = []
    for line in stdout.splitlines():
        kind, _, value = line.partition(" ")
        if kind == "@current" and value.strip():
            current = version_from_link(value)
        elif kind == "@release":
            done, _, name = value.partition(" ")
            if name:
                names.append(name)
                if done == "1" and not name.startswith("."):
                    prepared.add(name)
    root = "@root" in stdout.splitlines()
    return Survey(current, frozenset(prepared), tuple(names), root)


_RECEIVE = """\
cat > "$1" || exit 1
sum=$(sha256sum -- "$1") || exit 1
sum=${sum%% *}
[ "$sum" = "$2" ] || { echo "$1 arrived with sha256 $sum, sent $2" >&2; exit 1; }
"""


def receive(path: PurePosixPath, digest: str) -> list[str]:
    """Write standard input (the artifact streamed over the SSH channel) to `path`; fail
    unless its sha256 on the host is `digest` (an upload checked on arrival)."""
    return ["sh", "-c", _RECEIVE, "sh", str(path), digest]
