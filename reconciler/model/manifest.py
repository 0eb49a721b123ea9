"""The set of manifest kinds and the desired state of one stack.

``KINDS`` is the registry the loader dispatches on; ``Manifest`` is the tagged
union the JSON Schema for "any document" is generated from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from reconciler.model.common import DNSLabel, Strict
from reconciler.model.container import Container
from reconciler.model.image import Image
from reconciler.model.network import Network
from reconciler.model.service import Service
from reconciler.model.volume import Volume

Manifest = Annotated[Image | Network | Volume | Container | Service, Field(discriminator="kind")]
ManifestObject = Image | Network | Volume | Container | Service

KINDS: dict[str, type[ManifestObject]] = {
    "Image": Image,
    "Network": Network,
    "Volume": Volume,
    "Container": Container,
    "Service": Service,
}


def object_key(kind: str, name: str) -> str:
    """The key objects are known by in plans and errors: ``container/web``."""
    return f"{kind.lower()}/{name}"


def canonical(obj: ManifestObject) -> dict[str, object]:
    """The canonical JSON-compatible form of a manifest: what diffs and hashes compare."""
    return obj.model_dump(mode="json", by_alias=True)


class StackFile(Strict):
    """``stack.yaml`` at the top of a manifests directory."""

    name: DNSLabel


@dataclass(frozen=True)
class Desired:
    """Everything one manifests directory asks for.

    ``sources`` maps an object key to ``path:line`` of its document, and
    ``image_digests`` the digest each Image resolved to, when the caller resolved
    them before planning (the planner never does I/O to find out).

    A dataclass, not a model: its objects were validated by the loader already, and
    a pydantic model here would compile the union of every kind's schema once more
    on each start (about 20 ms of ``reconcile plan``).
    """

    stack: str
    objects: list[ManifestObject] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    image_digests: dict[str, str] = field(default_factory=dict)
    #: Files outside the manifests the load read or checked (env files, tarballs,
    #: Containerfiles): what else, changed, may change the plan.
    inputs: list[str] = field(default_factory=list)
