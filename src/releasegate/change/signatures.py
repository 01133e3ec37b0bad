"""Signed approvals: OpenSSH's `ssh-keygen -Y` over a change's plan hash.

The signed message is the plan hash (``sha256:<hex>`` and a newline) in the namespace
``releasegate-approval``, so a signature made for anything else (a git commit, a file) never
counts. Who signed is the principal that an ``allowed_signers`` file names for the key:
``find-principals`` says which, ``verify`` proves the signature over the current plan.
Every call is an argv list; the message goes on stdin, the signature through a private
temporary file.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

from releasegate import sshsig

NAMESPACE = "releasegate-approval"


def message(plan_hash: str) -> bytes:
    return (plan_hash + "\n").encode("ascii")


def sign(key: Path, plan_hash: str) -> str:
    """The armored signature of `plan_hash` by `key` (a private key file, or a public key
    whose private half is in ssh-agent)."""
    return sshsig.sign(key, message(plan_hash), NAMESPACE)


def fingerprint(signature: str) -> str:
    """`SHA256:...` of the public key inside an armored SSHSIG signature, as ssh-keygen -l
    prints it; "" when the text is not one."""
    body = "".join(
        line.strip() for line in signature.splitlines() if line.strip() and "-----" not in line
    )
    try:
        blob = base64.b64decode(body, validate=True)
        if blob[:6] != b"SSHSIG":
            return ""
        (size,) = struct.unpack(">I", blob[10:14])  # after the magic and the version
        key = blob[14 : 14 + size]
    except (ValueError, struct.error):
        return ""
    if not key or len(key) != size:
        return ""
    digest = base64.b64encode(hashlib.sha256(key).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


class Signers:
    """An allowed_signers file: who signed a plan hash, if anyone it names."""

    def __init__(self, allowed_signers: Path) -> None:
        self.path = allowed_signers
        self._seen: dict[tuple[str, str], str | None] = {}

    def signer(self, signature: str, plan_hash: str) -> str | None:
        """The principal whose key made `signature` over `plan_hash`, else None (another
        plan, another namespace, a key the file does not name, or not a signature)."""
        key = (signature, plan_hash)
        if key not in self._seen:
            self._seen[key] = self._check(signature, plan_hash)
        return self._seen[key]

    def _check(self, signature: str, plan_hash: str) -> str | None:
        return sshsig.signer(self.path, signature, message(plan_hash), NAMESPACE)
