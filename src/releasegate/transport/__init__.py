"""Where commands run. A transport executes argv lists; it never builds shell strings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from releasegate.transport.base import (
    DEFAULT_COMMAND_TIMEOUT_S,
    CommandResult,
    Transport,
    tail_for_terminal,
)
from releasegate.transport.local import LocalTransport

if TYPE_CHECKING:
    from releasegate.transport.ssh import SshOptions

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT_S",
    "CommandResult",
    "LocalTransport",
    "Transport",
    "for_host",
    "tail_for_terminal",
    "terminate_running",
]


def for_host(host: str) -> Transport:
    """The transport for a configured host: "local", or "ssh://[user@]host[:port]" (an SSH
    connection opened on first use and kept for the run; asyncssh is imported only then)."""
    if host == "local":
        return LocalTransport()
    from releasegate.errors import BadInput

    if host.startswith("ssh://"):
        from releasegate.transport.ssh import SshTarget, SshTransport

        try:
            target = SshTarget.parse(host)
        except ValueError as exc:
            raise BadInput(f"host {host!r} is not a valid ssh:// host: {exc}") from exc
        return SshTransport(target, ssh_options())
    raise BadInput(
        f"host {host!r}: expected 'local' or 'ssh://[user@]host[:port]'",
        hint="hosts: [local] or [ssh://deploy@web1:22]",
    )


def ssh_options(*, connect_timeout: float | None = None, accept_new: bool = False) -> SshOptions:
    """SSH settings: ~/.ssh by default; RELEASEGATE_SSH_CONFIG, RELEASEGATE_KNOWN_HOSTS and
    RELEASEGATE_SSH_KEY (paths) override them, e.g. for a CI job with its own key."""
    import os
    from pathlib import Path

    from releasegate.transport.ssh import SshOptions

    config = os.environ.get("RELEASEGATE_SSH_CONFIG")
    known = os.environ.get("RELEASEGATE_KNOWN_HOSTS")
    key = os.environ.get("RELEASEGATE_SSH_KEY")
    extra: dict[str, float] = {"connect_timeout": connect_timeout} if connect_timeout else {}
    return SshOptions(
        known_hosts=Path(known) if known else None,
        config=(Path(config),) if config else None,
        client_keys=(Path(key),) if key else None,
        accept_new=accept_new,
        **extra,
    )


def terminate_running(grace: float = 5.0) -> list[str]:
    """Stop every team command running now, local and on SSH hosts: SIGTERM to each one's
    process group, up to `grace` seconds, then SIGKILL; each waiting `run()` returns with
    `interrupted=True`. For the executor's SIGINT/SIGTERM handler. Returns what was
    signalled ("local PGID", "ssh://host PGID")."""
    import sys

    from releasegate.transport.local import terminate_running as local_terminate

    ssh = sys.modules.get("releasegate.transport.ssh")  # else no SSH host was used
    # The SSH stops start first and run on their loops while the local groups are stopped.
    waits = ssh.start_terminating(grace) if ssh is not None else []
    stopped = [f"local {pgid}" for pgid in local_terminate(grace)]
    if ssh is not None:
        stopped += ssh.wait_stopped(waits, grace)
    return stopped
