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
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from releasegate.errors import BadInput

NAMESPACE = "releasegate-approval"
_TIMEOUT = 60.0  # seconds for one ssh-keygen (signing may wait for an agent or a passphrase)
_ARMOR = "-----BEGIN SSH SIGNATURE-----"


def message(plan_hash: str) -> bytes:
    return (plan_hash + "\n").encode("ascii")


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise BadInput(
            "ssh-keygen is not installed: signed approvals need OpenSSH 8.2 or newer",
            hint="install openssh-client",
        )
    return found


def _run(argv: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise BadInput(f"ssh-keygen -Y {argv[2]} did not finish in {_TIMEOUT:.0f}s") from None


def sign(key: Path, plan_hash: str) -> str:
    """The armored signature of `plan_hash` by `key` (a private key file, or a public key
    whose private half is in ssh-agent)."""
    path = Path(os.path.abspath(key.expanduser()))  # absolute: never read as an option
    if not path.is_file():
        raise BadInput(f"no key file {path}")
    argv = [_ssh_keygen(), "-Y", "sign", "-f", str(path), "-n", NAMESPACE]
    proc = _run(argv, message(plan_hash))
    text = proc.stdout.decode("ascii", "replace")
    if proc.returncode != 0 or _ARMOR not in text:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BadInput(
            f"ssh-keygen could not sign with {path}" + (f": {reason[-1]}" if reason else ""),
            hint="a private key file, or its .pub with the key loaded in ssh-agent",
        )
    return text.strip() + "\n"


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
        if not self.path.is_file():
            raise BadInput(
                f"allowed_signers file {self.path} does not exist",
                hint="one line per approver: `alice@example.org ssh-ed25519 AAAA...`",
            )
        if _ARMOR not in signature:
            return None
        tool = _ssh_keygen()
        allowed = str(Path(os.path.abspath(self.path)))
        with tempfile.TemporaryDirectory(prefix="releasegate-sig-") as folder:
            sig = Path(folder) / "approval.sig"
            sig.write_text(signature, encoding="ascii")
            found = _run([tool, "-Y", "find-principals", "-s", str(sig), "-f", allowed], b"")
            if found.returncode != 0:
                return None
            for principal in found.stdout.decode("utf-8", "replace").split():
                argv = [tool, "-Y", "verify", "-f", allowed, "-I", principal]
                argv += ["-n", NAMESPACE, "-s", str(sig)]
                if _run(argv, message(plan_hash)).returncode == 0:
                    return principal
        return None
