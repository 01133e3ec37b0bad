"""The benchmark release, written for pyinfra (a deploy file: `pyinfra INVENTORY THIS -y`).

Data from the inventory the harness writes (per host: ssh settings and `addr`) and from
`--data version=... --data artifact=... --data http_port=...`. pyinfra's own operations where it
has one (files.directory, files.put); server.shell where it has none (unpack) or where its
operation does something else than the workload asks: files.link replaces a link with `rm -f`
then `ln -s`, not atomically, so the switch is `ln -s` to a temporary name and one `mv -T`.
The HTTP check is a shell check retried with pyinfra's own `_retries` / `_retry_delay`.
"""

from pyinfra import host
from pyinfra.operations import files, server

APP = "/srv/bench/app"
version = host.data.version
port = host.data.http_port
addr = host.data.addr
release = f"{APP}/releases/{version}"
archive = f"{APP}/uploads/app-{version}.tar.gz"

files.directory(name="Release directory", path=release)
files.put(name="Upload the artifact", src=host.data.artifact, dest=archive)
server.shell(
    name="Unpack the release",
    commands=[f"tar -xzf {archive} -C {release} --no-same-owner"],
)
server.shell(
    name="Switch current atomically",
    commands=[
        f"ln -sfn releases/{version} {APP}/.current.tmp && mv -T {APP}/.current.tmp {APP}/current"
    ],
)
server.shell(name="Restart", commands=[f"sh {APP}/current/restart.sh"])
server.shell(
    name="Smoke over HTTP",
    commands=[f"curl -fsS --max-time 2 http://{addr}:{port}/version.txt | grep -qx {version}"],
    _retries=40,
    _retry_delay=0.25,
)
