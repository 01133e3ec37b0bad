"""Where commands run. A transport executes argv lists; it never builds shell strings."""

from releasegate.transport.base import CommandResult, Transport
from releasegate.transport.local import LocalTransport

__all__ = ["CommandResult", "LocalTransport", "Transport", "for_host"]


def for_host(host: str) -> Transport:
    """The transport for a configured host: "local", or "ssh://user@host:port" (an SSH
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
        return SshTransport(target)
    raise BadInput(
        f"host {host!r}: expected 'local' or 'ssh://user@host[:port]'",
        hint="hosts: [local] or [ssh://deploy@web1:22]",
    )
