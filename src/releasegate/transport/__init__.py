"""Where commands run. A transport executes argv lists; it never builds shell strings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from releasegate.transport.base import CommandResult, Transport
from releasegate.transport.local import LocalTransport

if TYPE_CHECKING:
    from releasegate.transport.ssh import SshOptions

__all__ = ["CommandResult", "LocalTransport", "Transport", "for_host"]


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
