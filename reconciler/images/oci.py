"""OCI and Docker image documents: media types, descriptors, platform choice.

The store keeps manifests as the registry sent them (their digest is over those
exact bytes), so this module only reads them and writes the ones we make
(imports, builds) in one canonical JSON form, which keeps our own digests
reproducible. Standard library only: ``reconcile run`` reads a manifest and a
config on its hot path.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
#: What a pull asks for, in the order a registry should prefer.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

#: Go's GOARCH names for Python's machine names.
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x"}


class ManifestError(Exception):
    pass


def sha256(data: bytes) -> str:
    import hashlib  # not on the path of `run`, which only reads

    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict[str, Any]) -> bytes:
    """Our own documents' bytes: sorted keys, no spaces. Same content, same digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Descriptor(NamedTuple):
    media_type: str
    digest: str
    size: int
    platform: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Descriptor:
        try:
            return cls(
                media_type=str(raw.get("mediaType", "")),
                digest=str(raw["digest"]),
                size=int(raw["size"]),
                platform=raw.get("platform"),
                annotations=raw.get("annotations"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"malformed descriptor {raw!r}: {exc}") from None


def host_platform() -> dict[str, str]:
    machine = os.uname().machine
    out = {"os": "linux", "architecture": _ARCH.get(machine, machine)}
    if machine == "armv7l":
        out["variant"] = "v7"
    elif machine == "aarch64":
        out["variant"] = "v8"
    return out


def parse_platform(text: str) -> dict[str, str]:
    """``linux/amd64`` or ``linux/arm64/v8``."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ManifestError(f"invalid platform {text!r}: use os/arch[/variant]")
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out


def load(data: bytes, what: str = "manifest") -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return document


def media_type_of(document: dict[str, Any], declared: str = "") -> str:
    """A manifest's type: its own ``mediaType``, else what the registry declared,
    else guessed from its shape (OCI allows omitting ``mediaType``)."""
    own = document.get("mediaType")
    if isinstance(own, str) and own:
        return own
    if declared and declared.split(";")[0].strip() in (*MANIFESTS, *INDEXES):
        return declared.split(";")[0].strip()
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST


def select_platform(index: dict[str, Any], wanted: dict[str, str] | None = None) -> Descriptor:
    """The manifest of ``index`` for ``wanted`` (default: this host), as containerd
    matches: os and architecture must agree; a variant, when both name one, too."""
    wanted = wanted or host_platform()
    candidates = [Descriptor.from_json(m) for m in index.get("manifests", [])]
    for entry in candidates:
        found = entry.platform or {}
        if found.get("os") != wanted["os"] or found.get("architecture") != wanted["architecture"]:
            continue
        if "variant" in found and "variant" in wanted and found["variant"] != wanted["variant"]:
            continue
        return entry
    available = ", ".join(
        "/".join(filter(None, (p.get("os"), p.get("architecture"), p.get("variant"))))
        for p in (c.platform or {} for c in candidates)
    )
    want = "/".join(filter(None, (wanted["os"], wanted["architecture"], wanted.get("variant"))))
    raise ManifestError(f"no manifest for platform {want} (the index has: {available or 'none'})")


def manifest_parts(manifest: dict[str, Any]) -> tuple[Descriptor, list[Descriptor]]:
    """The config and layer descriptors of an image manifest."""
    try:
        config = Descriptor.from_json(manifest["config"])
        layers = [Descriptor.from_json(layer) for layer in manifest.get("layers", [])]
    except (KeyError, TypeError) as exc:
        raise ManifestError(f"malformed image manifest: missing {exc}") from None
    return config, layers


def new_manifest(config: Descriptor, layers: list[Descriptor], annotations: dict[str, str] | None = None) -> bytes:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        document["annotations"] = annotations
    return canonical(document)


def layer_media_type(head: bytes) -> str:
    """The OCI layer type from a blob's first bytes."""
    if head.startswith(b"\x1f\x8b"):
        return OCI_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return OCI_LAYER_ZSTD
    return OCI_LAYER
