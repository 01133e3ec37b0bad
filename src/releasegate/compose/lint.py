"""Production rules for a compose project: images are pulled, never built on the server,
and pinned by a version tag or a digest (seed 001's preflight gates).

Pure: a loaded ComposeProject in, a list of Findings out. The rule ids are stable; they
are what `releasegate lint --rule` and a stack's `compose_rules` name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from releasegate.errors import BadInput

if TYPE_CHECKING:
    from releasegate.compose.project import ComposeProject, Position, Service

# rule id -> one line, as `releasegate lint --help` shows it
RULES: dict[str, str] = {
    "no-build": "the service builds its image (build:); production only pulls",
    "no-latest": "the image is tagged :latest, which moves under you",
    "untagged-image": "the image has no tag and no digest, so it means :latest",
    "unresolved-variable": "the image uses an unset variable with no default",
    "invalid-image": "not a valid image reference, or neither image nor build",
}

_PIN_HINT = (
    "pin what CI built: a version or commit tag (e.g. :sha-19b9b98) or a digest (@sha256:...)"
)


@dataclass(frozen=True)
class Finding:
    rule: str
    service: str
    file: str
    line: int
    message: str
    hint: str
    evidence: dict[str, Any] = field(default_factory=dict)


# -- image references -----------------------------------------------------------------------
class ImageRefError(ValueError):
    """Text docker would refuse as an image reference."""


@dataclass(frozen=True)
class ImageRef:
    """`[domain/]path[:tag][@digest]`, as distribution/reference parses it. `domain` is
    None when the reference names none (Docker Hub)."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path


_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}


def parse_image_ref(text: str) -> ImageRef:
    """Parse an image reference (`nginx`, `nginx:1.27`, `127.0.0.1:5000/app/web`,
    `ghcr.io/o/r:sha-1@sha256:...`). Raises ImageRefError saying what is wrong."""
    if not text:
        raise ImageRefError("empty image reference")
    if any(c.isspace() for c in text):
        raise ImageRefError("contains whitespace")
    name, at, digest = text.partition("@")
    if at:
        if not _DIGEST.fullmatch(digest):
            raise ImageRefError(f"invalid digest {digest!r}")
        algorithm, _, encoded = digest.partition(":")
        size = _DIGEST_HEX.get(algorithm)
        if size and not re.fullmatch(rf"[a-f0-9]{{{size}}}", encoded):
            raise ImageRefError(f"a {algorithm} digest is {size} lowercase hex digits")
    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):  # a ':' after the last '/' starts the tag, else a port
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ImageRefError(f"invalid tag {tag!r}")
    if not name:
        raise ImageRefError("no repository name")
    if len(name) > 255:
        raise ImageRefError("repository name longer than 255 characters")
    domain, path = _split_domain(name)
    if domain is not None and not _DOMAIN.fullmatch(domain):
        raise ImageRefError(f"invalid registry host {domain!r}")
    for component in path.split("/"):
        if _COMPONENT.fullmatch(component):
            continue
        if _COMPONENT.fullmatch(component.lower()):
            raise ImageRefError("repository names are lowercase")
        raise ImageRefError(f"invalid repository name component {component!r}")
    return ImageRef(domain, path, tag, digest or None)


def _split_domain(name: str) -> tuple[str | None, str]:
    """The first component is a registry host if it looks like one (docker's rule)."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first, rest
    return None, name


# -- the rules ------------------------------------------------------------------------------
def lint_project(project: ComposeProject, rules: Iterable[str] | None = None) -> list[Finding]:
    """Findings for the project's selected services (all of them unless profiles were
    given), in the order the services were written. `rules`: ids from RULES (default all);
    an unknown id is BadInput."""
    wanted = check_rules(rules)
    findings: list[Finding] = []
    for service in project.selected:
        findings += _judge(service, wanted)
    return findings


def check_rules(rules: Iterable[str] | None) -> tuple[str, ...]:
    """The rule ids to run, validated, in RULES order."""
    if rules is None:
        return tuple(RULES)
    asked = list(rules)
    unknown = [r for r in asked if r not in RULES]
    if unknown:
        raise BadInput(
            f"unknown rule {', '.join(repr(r) for r in unknown)}",
            hint=f"rules: {', '.join(RULES)}",
        )
    return tuple(r for r in RULES if r in asked)


def _judge(service: Service, wanted: tuple[str, ...]) -> list[Finding]:
    out: list[Finding] = []
    extra: dict[str, Any] = {"profiles": list(service.profiles)} if service.profiles else {}

    def found(rule: str, where: Position | None, message: str, hint: str, **evidence: Any) -> None:
        if rule in wanted:
            position = where or service.position
            out.append(
                Finding(
                    rule,
                    service.name,
                    position.file,
                    position.line,
                    message,
                    hint,
                    {**evidence, **extra},
                )
            )

    if service.build:
        found(
            "no-build",
            service.build_position,
            f"builds its image on the server (build context {service.build_context})",
            "build and push the image in CI; here keep only image:, pinned to that tag or digest",
            build_context=service.build_context,
            image=service.image,
        )
    if service.image is None:
        if not service.build:
            found(
                "invalid-image",
                None,
                "has neither image: nor build:",
                "give the service the image it runs, e.g. image: ghcr.io/owner/app:sha-19b9b98",
                image=None,
            )
        return out
    where = service.image_position
    source = service.image_source or service.image
    if service.unresolved:
        names = ", ".join(service.unresolved)
        found(
            "unresolved-variable",
            where,
            f"image {source} depends on {names}, unset and without a default"
            f" (it reads {service.image!r})",
            f"set {names} in the environment or the .env file, or write a default: ${{VAR:-value}}",
            image=service.image,
            source=source,
            variables=list(service.unresolved),
        )
        return out
    try:
        ref = parse_image_ref(service.image)
    except ImageRefError as exc:
        found(
            "invalid-image",
            where,
            f"image {service.image!r} is not a valid reference: {exc}",
            "write [registry[:port]/]name[:tag][@sha256:digest], in lowercase",
            image=service.image,
            source=source,
        )
        return out
    evidence = {
        "image": service.image,
        "source": source,
        "registry": ref.domain,
        "repository": ref.path,
        "tag": ref.tag,
        "digest": ref.digest,
    }
    if ref.digest:
        return out  # pinned, whatever the tag says
    if ref.tag == "latest":
        found(
            "no-latest", where, f"image {service.image} uses the :latest tag", _PIN_HINT, **evidence
        )
    elif ref.tag is None:
        found(
            "untagged-image",
            where,
            f"image {service.image} has no tag, which means :latest",
            _PIN_HINT,
            **evidence,
        )
    return out
