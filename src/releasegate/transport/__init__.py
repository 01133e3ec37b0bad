"""Where commands run. A transport executes argv lists; it never builds shell strings."""

from releasegate.transport.base import CommandResult, Transport
from releasegate.transport.local import LocalTransport

__all__ = ["CommandResult", "LocalTransport", "Transport", "for_host"]


def for_host(host: str) -> Transport:
    """The transport for a configured host ("local" now; ssh:// arrives with fleets)."""
    if host == "local":
        return LocalTransport()
    from releasegate.errors import BadInput

    raise BadInput(
        f"host {host!r}: SSH hosts are not supported in this version",
        hint="use hosts: [local] for now",
    )
