"""Test images without Docker Hub: a tiny web server per version, built from busybox-static.

The image's root filesystem is /bin/busybox with a link per applet (sh, httpd, wget, cat,
sleep, ...) and a /www folder served by `busybox httpd -f -p 80 -h /www`:

- /www/health   `{"status": "ok", "version": "sha-1111111"}` (absent in the broken variant,
                so GET /health answers 404 and a `wget -q -O- http://127.0.0.1/health`
                healthcheck fails: the container becomes unhealthy)
- /www/version  the version, plain text
- /www/index.html

It is imported with `tar -C ROOT -c . | docker import --change ... - REF`, pushed to the lab
registry as 127.0.0.1:5000/rg/web:VERSION, and the local copy removed so that a later
`docker compose pull` / `docker run` really pulls from the registry.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from pathlib import Path

from tests.lab.docker import REGISTRY, DockerError, docker, http_get

REPOSITORY = "rg/web"
BUSYBOX = Path("/bin/busybox")
CONTAINER_PORT = 80
PREFIX = "rgtest-"
# Every image built here carries this label, and so does every container made from one.
LABEL = "org.releasegate.test"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
_PROJECT = '{{.Label "com.docker.compose.project"}}'
# Stops at once on SIGTERM: busybox httpd as PID 1 would ignore it (10 s per `docker stop`).
SERVE = "trap 'exit 0' TERM INT; httpd -f -p 80 -h /www & wait"
HEALTHCHECK = ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"]

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
SHA_VERSION = re.compile(r"sha-[0-9a-f]{7}")

# ref -> broken, for what this session (process) built and pushed.
_pushed: dict[str, bool] = {}


def sha_version(seed: str) -> str:
    """A version in the seed's tag format, `sha-` and 7 hex digits, derived from `seed`."""
    return "sha-" + hashlib.sha1(seed.encode()).hexdigest()[:7]


def image_ref(version: str, registry: str = REGISTRY, repository: str = REPOSITORY) -> str:
    """`127.0.0.1:5000/rg/web:VERSION` (nothing is built)."""
    if not _TAG.fullmatch(version):
        raise ValueError(f"not a valid image tag: {version!r}")
    return f"{registry}/{repository}:{version}"


def health_body(version: str) -> str:
    """The exact body of GET /health of a healthy image of `version`."""
    return json.dumps({"status": "ok", "version": version})


def _write_root(root: Path, version: str, broken: bool) -> None:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    busybox = bin_dir / "busybox"
    busybox.write_bytes(BUSYBOX.read_bytes())
    busybox.chmod(0o755)
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox" and "/" not in applet:
            (bin_dir / applet).symlink_to("busybox")
    (root / "usr").mkdir()
    (root / "usr" / "bin").symlink_to("../bin")
    (root / "sbin").symlink_to("bin")
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    for d in ("root", "tmp"):
        (root / d).mkdir()
    (root / "tmp").chmod(0o1777)
    www = root / "www"
    www.mkdir()
    state = "broken" if broken else "ok"
    (www / "index.html").write_text(
        f"<!doctype html><title>rg web {version}</title><h1>rg web {version} ({state})</h1>\n"
    )
    (www / "version").write_text(version + "\n")
    if not broken:
        (www / "health").write_text(health_body(version) + "\n")


def _import(root: Path, ref: str, version: str, broken: bool) -> None:
    tar = subprocess.run(
        [
            "tar",
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
            str(root),
            "-c",
            ".",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    changes = [
        f'CMD ["/bin/sh", "-c", "{SERVE}"]',
        f"EXPOSE {CONTAINER_PORT}",
        "WORKDIR /www",
        "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        f"ENV RG_VERSION={version}",
        f"LABEL {LABEL}=true",
        f"LABEL {LABEL}.version={version}",
        f"LABEL {LABEL}.broken={str(broken).lower()}",
    ]
    cmd = ["docker", "import"]
    for change in changes:
        cmd += ["--change", change]
    cmd += ["-", ref]
    proc = subprocess.run(cmd, input=tar, capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise DockerError(
            cmd,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )


def build_web_image(
    version: str,
    *,
    broken: bool = False,
    registry: str = REGISTRY,
    repository: str = REPOSITORY,
    keep_local: bool = False,
) -> str:
    """Build the web image of `version`, push it to the registry, return its reference.

    Cached per process: the same (version, broken) is built and pushed once; asking for the
    other variant of a version builds it and pushes it over the same tag. Unless
    `keep_local`, the local copy is removed after the push so a later pull really pulls.
    """
    ref = image_ref(version, registry, repository)
    if _pushed.get(ref) is broken:
        return ref
    with tempfile.TemporaryDirectory(prefix="rg-image-") as tmp:
        root = Path(tmp) / "root"
        _write_root(root, version, broken)
        _import(root, ref, version, broken)
    docker("push", ref, timeout=180)
    _pushed[ref] = broken
    if not keep_local:
        docker("rmi", ref, check=False)
    return ref


def in_registry(ref: str) -> bool:
    """True if the registry holds a manifest for `ref` (REGISTRY/REPO:TAG)."""
    registry, _, rest = ref.partition("/")
    repository, _, tag = rest.rpartition(":")
    status, _ = http_get(f"http://{registry}/v2/{repository}/manifests/{tag}")
    return status == 200


def registry_tags(repository: str = REPOSITORY, registry: str = REGISTRY) -> list[str]:
    """The tags the registry holds for `repository` (empty if none)."""
    status, body = http_get(f"http://{registry}/v2/{repository}/tags/list")
    if status != 200:
        return []
    tags = json.loads(body).get("tags") or []
    return sorted(str(t) for t in tags)


def _lines(*args: str) -> list[str]:
    return [line for line in docker(*args).stdout.splitlines() if line.strip()]


def _matches(name: str, project: str, prefix: str) -> bool:
    return name.lstrip("/").startswith(prefix) or project.startswith(prefix)


def cleanup(prefix: str = PREFIX, *, labelled: bool = True, images: bool = True) -> list[str]:
    """Remove what tests made; return what was removed, as `kind name` strings.

    - containers named `PREFIX*` or in a compose project `PREFIX*`, and with `labelled` any
      container made from a test image (label org.releasegate.test), with their anonymous
      volumes;
    - networks and volumes named `PREFIX*` or of a compose project `PREFIX*`;
    - with `images`: local test images (label org.releasegate.test) and local copies of
      `127.0.0.1:5000/rg/*`.
    The registry's content is left as it is.
    """
    removed: list[str] = []
    fmt = "{{.ID}}\t{{.Names}}\t" + _PROJECT
    containers: dict[str, str] = {}
    for line in _lines("ps", "-a", "--format", fmt):
        cid, name, project = [*line.split("\t"), "", ""][:3]
        if _matches(name, project, prefix):
            containers[cid] = name
    if labelled:
        fmt = "{{.ID}}\t{{.Names}}"
        for line in _lines("ps", "-a", "--filter", f"label={LABEL}", "--format", fmt):
            cid, _, name = line.partition("\t")
            containers[cid] = name
    if containers:
        docker("rm", "-f", "-v", *containers, check=False, timeout=180)
        removed += [f"container {n}" for n in containers.values()]

    fmt = "{{.ID}}\t{{.Name}}\t" + _PROJECT
    networks = {}
    for line in _lines("network", "ls", "--format", fmt):
        nid, name, project = [*line.split("\t"), "", ""][:3]
        if _matches(name, project, prefix):
            networks[nid] = name
    if networks:
        docker("network", "rm", *networks, check=False)
        removed += [f"network {n}" for n in networks.values()]

    fmt = "{{.Name}}\t" + _PROJECT
    volumes = []
    for line in _lines("volume", "ls", "--format", fmt):
        name, _, project = line.partition("\t")
        if _matches(name, project, prefix):
            volumes.append(name)
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False)
        removed += [f"volume {n}" for n in volumes]

    if images:
        refs = set(_lines("images", "--filter", f"label={LABEL}", "--format", "{{.ID}}"))
        mine = f"{REGISTRY}/rg/"
        for line in _lines("images", "--format", "{{.Repository}}:{{.Tag}}"):
            if line.startswith(mine):
                refs.add(line.removesuffix(":<none>"))
        if refs:
            docker("rmi", "-f", *sorted(refs), check=False)
            removed += [f"image {r}" for r in sorted(refs)]
    return removed


def forget_pushed() -> None:
    """Forget the session cache (the next build_web_image builds and pushes again)."""
    _pushed.clear()
