"""The Docker/OCI image reference grammar: ``[registry[:port]/]path[:tag][@digest]``.

A transcription of the grammar of distribution's ``reference`` package into Python
regular expressions, so a manifest with an invalid reference is rejected at
validation time, long before a pull would fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_IMAGE_ID = re.compile(r"^[a-f0-9]{64}$")

DEFAULT_REGISTRY = "docker.io"
NAME_TOTAL_LENGTH_MAX = 255


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. ``registry`` is None when the name has no domain."""

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        name = f"{self.registry}/{self.repository}" if self.registry else self.repository
        return name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str) -> Reference:
    """Parse ``text`` or raise ValueError saying what is wrong with it."""
    if not text:
        raise ValueError("an image reference cannot be empty")
    match = _REFERENCE.match(text)
    if not match:
        if text != text.lower() and _REFERENCE.match(text.lower()):
            raise ValueError(f"invalid image reference {text!r}: repository names must be lowercase")
        raise ValueError(f"invalid image reference {text!r}")
    name = match.group("name")
    if _IMAGE_ID.match(name):
        raise ValueError(f"invalid image reference {text!r}: 64 hex digits are an image ID, not a repository name")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ValueError(f"invalid image reference {text!r}: name longer than 255 characters")
    digest = match.group("digest")
    if digest and digest.startswith("sha256:") and not _SHA256.match(digest):
        raise ValueError(f"invalid image reference {text!r}: a sha256 digest has 64 lowercase hex digits")
    registry: str | None = None
    repository = name
    first, sep, rest = name.partition("/")
    # distribution's splitDockerDomain: a first component with '.', ':' or an
    # uppercase letter (never valid in a path) is a domain, as is localhost
    is_domain = "." in first or ":" in first or first == "localhost" or first.startswith("[")
    if sep and (is_domain or first != first.lower()):
        registry, repository = first, rest
    return Reference(registry=registry, repository=repository, tag=match.group("tag"), digest=digest)


def is_digest(text: str) -> bool:
    """True for a full ``sha256:<64 hex>`` digest."""
    return bool(_SHA256.match(text))
