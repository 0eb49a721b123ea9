"""One-layer images imported from root filesystem tarballs (``docker import``).

``ROOT/images/layers/<sha256 of the tarball>/`` holds the unpacked tree;
``ROOT/images/index.json`` maps ``name:tag`` to it, written atomically. Unpacking
keeps modes, ownership, device nodes and links, but refuses members that would land
outside the layer (absolute names, ``..``, links pointing out), via tarfile's
extraction filter checks; a corrupt tarball leaves no layer behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field

from reconciler.runtime.process import DEFAULT_PATH


class ImageError(Exception):
    pass


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image config the runtime reads."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = field(default_factory=lambda: ["/bin/sh"])
    env: list[str] = field(default_factory=lambda: [f"PATH={DEFAULT_PATH}"])
    working_dir: str = "/"
    user: str | None = None


def normalize(reference: str) -> str:
    """``busybox`` → ``busybox:latest``; a tag or digest is kept."""
    name = reference.rsplit("/", 1)[-1]
    return reference if (":" in name or "@" in reference) else f"{reference}:latest"


def _safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
    """tarfile's own escape checks, without its changes to modes and owners."""
    tarfile.tar_filter(member, path)  # raises tarfile.FilterError for unsafe members
    return member


class LocalImages:
    def __init__(self, root: str) -> None:
        self.directory = os.path.join(root, "images")
        self.index_path = os.path.join(self.directory, "index.json")

    def _index(self) -> dict[str, dict[str, str]]:
        try:
            with open(self.index_path) as handle:
                return json.load(handle)  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}

    def _write_index(self, index: dict[str, dict[str, str]]) -> None:
        os.makedirs(self.directory, exist_ok=True)
        temporary = f"{self.index_path}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            json.dump(index, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.index_path)

    def import_tarball(self, tarball: str, reference: str) -> str:
        """Unpack ``tarball`` as a layer (once per content) and tag it; its digest."""
        reference = normalize(reference)
        digest = hashlib.sha256()
        try:
            with open(tarball, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise ImageError(f"cannot read {tarball}: {exc.strerror}") from None
        layer_id = "sha256:" + digest.hexdigest()
        layer = os.path.join(self.directory, "layers", digest.hexdigest())
        if not os.path.isdir(layer):
            os.makedirs(os.path.dirname(layer), exist_ok=True)
            scratch = tempfile.mkdtemp(dir=os.path.dirname(layer), prefix=".ingest-")
            try:
                with tarfile.open(tarball) as archive:
                    archive.extractall(scratch, filter=_safe)
                os.chmod(scratch, 0o755)
                os.rename(scratch, layer)  # a half-unpacked layer is never visible
            except (tarfile.TarError, OSError, EOFError) as exc:
                shutil.rmtree(scratch, ignore_errors=True)
                raise ImageError(f"cannot import {tarball}: {exc}") from None
        index = self._index()
        index[reference] = {"layer": layer_id}
        self._write_index(index)
        return layer_id

    def layers(self, reference: str) -> tuple[str, ...]:
        entry = self._index().get(normalize(reference))
        if entry is None:
            raise ImageError(f"no such image: {reference}")
        return (os.path.join(self.directory, "layers", entry["layer"].removeprefix("sha256:")),)

    def config(self, reference: str) -> ImageConfig:
        self.layers(reference)
        return ImageConfig()

    def images(self) -> dict[str, str]:
        return {name: entry["layer"] for name, entry in sorted(self._index().items())}
