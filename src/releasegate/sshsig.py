"""OpenSSH signatures (`ssh-keygen -Y`): sign bytes in a namespace, and say which principal
of an allowed_signers file signed them. Shared by signed approvals and audit anchors.

Every call is an argv list; the message goes on stdin, a signature to check through a
private temporary file. A namespace keeps a signature made for one purpose (an approval,
an anchor, a git commit) from counting for another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from releasegate.errors import BadInput

TIMEOUT_S = 60.0  # one ssh-keygen (signing may wait for an agent or a passphrase)
ARMOR = "-----BEGIN SSH SIGNATURE-----"


def ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise BadInput(
            "ssh-keygen is not installed: SSH signatures need OpenSSH 8.2 or newer",
            hint="install openssh-client",
        )
    return found


def run(argv: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            argv, input=stdin, capture_output=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BadInput(f"ssh-keygen -Y {argv[2]} did not finish in {TIMEOUT_S:.0f}s") from None


def sign(key: Path, data: bytes, namespace: str) -> str:
    """The armored signature of `data` by `key` (a private key file, or a public key whose
    private half is in ssh-agent)."""
    path = Path(os.path.abspath(key.expanduser()))  # absolute: never read as an option
    if not path.is_file():
        raise BadInput(f"no key file {path}")
    proc = run([ssh_keygen(), "-Y", "sign", "-f", str(path), "-n", namespace], data)
    text = proc.stdout.decode("ascii", "replace")
    if proc.returncode != 0 or ARMOR not in text:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BadInput(
            f"ssh-keygen could not sign with {path}" + (f": {reason[-1]}" if reason else ""),
            hint="a private key file, or its .pub with the key loaded in ssh-agent",
        )
    return text.strip() + "\n"


def signer(allowed_signers: Path, signature: str, data: bytes, namespace: str) -> str | None:
    """The principal of `allowed_signers` whose key made `signature` over `data` in
    `namespace`, else None (other data, another namespace, a key it does not name, or not
    a signature)."""
    if not allowed_signers.is_file():
        raise BadInput(
            f"allowed_signers file {allowed_signers} does not exist",
            hint="one line per signer: `alice@example.org ssh-ed25519 AAAA...`",
        )
    if ARMOR not in signature:
        return None
    tool = ssh_keygen()
    allowed = str(Path(os.path.abspath(allowed_signers)))
    with tempfile.TemporaryDirectory(prefix="releasegate-sig-") as folder:
        sig = Path(folder) / "message.sig"
        sig.write_text(signature, encoding="ascii")
        found = run([tool, "-Y", "find-principals", "-s", str(sig), "-f", allowed], b"")
        if found.returncode != 0:
            return None
        for principal in found.stdout.decode("utf-8", "replace").split():
            argv = [tool, "-Y", "verify", "-f", allowed, "-I", principal]
            argv += ["-n", namespace, "-s", str(sig)]
            if run(argv, data).returncode == 0:
                return principal
    return None
