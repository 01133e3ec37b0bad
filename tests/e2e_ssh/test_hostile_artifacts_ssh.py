"""Artifacts are untrusted input on an SSH host too (issue 16): the artifact is inspected on
the controller before anything is sent, the host's `tar` unpacks without owners or special
bits (one top folder stripped), releasegate's marker and shared links never go through the
artifact's links, and a changed artifact under the same version needs --reprepare."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.lab.artifacts import make_tar
from tests.lab.ssh import SshLab, host_dir, require_ssh_lab, run_rg

pytestmark = pytest.mark.e2e


class Host:
    """One lab host (h1) as a one-host releases stack; its /srv seen from here."""

    def __init__(self, lab: SshLab, tmp: Path) -> None:
        self.lab, self.tmp = lab, tmp
        self.name = f"art-{os.getpid()}-{time.monotonic_ns()}"
        self.dir = f"/srv/{self.name}"
        self.srv = host_dir(1) / "srv"
        self.local = self.srv / self.name
        self.artifacts = tmp / "artifacts"
        self.artifacts.mkdir()
        (self.local / "shared" / "config").mkdir(parents=True)
        (self.local / "shared" / "config" / ".env").write_text("DB=shared\n")
        self.outside = self.srv / f"{self.name}-outside"
        (self.outside / "etc").mkdir(parents=True)
        (self.outside / "victim.txt").write_text("do not touch\n")
        (self.outside / "etc" / ".env").write_text("SECRET=outside\n")
        (tmp / "releasegate.yaml").write_text(
            f"""\
stacks:
  web:
    env: staging
    runtime: releases
    hosts: [ssh://root@{lab.addresses[0]}:{lab.port}]
    dir: {self.dir}
    artifacts: ./artifacts
    shared: [config/.env]
    backup: {{files: []}}
"""
        )

    def rg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_rg(self.lab, self.tmp, *args, timeout=300)

    def snapshot(self) -> dict[str, tuple[object, ...]]:
        """The host's /srv but the stack's own folder: type, mode, content or target."""
        seen: dict[str, tuple[object, ...]] = {}
        for folder, dirs, files in os.walk(self.srv):
            dirs[:] = [d for d in dirs if Path(folder, d) != self.local]
            for name in [*dirs, *files]:
                path = Path(folder, name)
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    seen[str(path)] = ("link", os.readlink(path))
                elif stat.S_ISREG(st.st_mode):
                    seen[str(path)] = ("file", st.st_mode, _sha(path))
                else:
                    seen[str(path)] = ("other", st.st_mode)
        return seen


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def host(tmp_path: Path):
    h = Host(require_ssh_lab(1), tmp_path)
    yield h
    shutil.rmtree(h.local, ignore_errors=True)
    shutil.rmtree(h.outside, ignore_errors=True)


def test_hostile_artifacts_on_an_ssh_host(host: Host) -> None:
    app = [("./", "d", None), ("./version.txt", "f", b"x\n")]
    make_tar(
        host.artifacts / "evil-marker.tar.gz",
        [*app, ("./.releasegate-release.json", "l", "/srv/" + host.outside.name + "/victim.txt")],
    )
    make_tar(host.artifacts / "evil-fifo.tar.gz", [*app, ("./pipe", "p", None)])
    folder = host.artifacts / "evil-dirlink"  # config -> conf: inside, but shared goes through
    (folder / "conf").mkdir(parents=True)
    (folder / "config").symlink_to("conf")
    before = host.snapshot()
    for version, message in (
        ("evil-marker", "releasegate writes that name"),
        ("evil-fifo", "is a FIFO"),
        ("evil-dirlink", "config in the release is a symlink"),
    ):
        out = host.rg("deploy", "web", "staging", version)
        # Inspected on the controller: refused at preflight; the link guard acts at prepare.
        code = 1 if version == "evil-dirlink" else 3
        assert out.returncode == code, (version, out.stdout, out.stderr)
        assert message in out.stdout, (version, out.stdout)
    assert host.snapshot() == before
    assert (host.outside / "victim.txt").read_text() == "do not touch\n"
    releases = host.local / "releases"
    assert not releases.exists() or list(releases.iterdir()) == []

    # One top folder, a setuid file: unpacked on the host without the folder level and bits.
    src = host.tmp / "build" / "app-1.2"
    (src / "bin").mkdir(parents=True)
    (src / "version.txt").write_text("v1\n")
    (src / "bin" / "tool").write_text("#!/bin/sh\n")
    (src / "bin" / "tool").chmod(0o4755)
    with tarfile.open(host.artifacts / "v1.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="app-1.2")
    out = host.rg("deploy", "web", "staging", "v1")
    assert out.returncode == 0, out.stdout + out.stderr
    release = host.local / "releases" / "v1"
    assert (release / "version.txt").read_text() == "v1\n"
    assert (release / "bin" / "tool").stat().st_mode & 0o7000 == 0
    assert os.readlink(release / "config" / ".env") == f"{host.dir}/shared/config/.env"
    marker = release / ".releasegate-release.json"
    assert _sha(host.artifacts / "v1.tar.gz") in marker.read_text()

    # Same version, new content: refused until --reprepare.
    (src / "version.txt").write_text("v1 rebuilt\n")
    with tarfile.open(host.artifacts / "v1.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="app-1.2")
    out = host.rg("deploy", "web", "staging", "v1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "prepared from other content" in out.stdout
    assert (release / "version.txt").read_text() == "v1\n"
    out = host.rg("deploy", "web", "staging", "v1", "--reprepare")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (release / "version.txt").read_text() == "v1 rebuilt\n"
