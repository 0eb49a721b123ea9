"""The image store: tags, manifests, configs and unpacked layers under ``ROOT/images``.

Layout::

    blobs/sha256/<hex>        every manifest, index, config and layer (content.py)
    ingest/                   blobs being written
    snapshots/<diff-id hex>/  a layer unpacked once, shared by every image that has it;
                              an overlay lower dir for containers
    refs.json                 name:tag -> manifest digest (and where it came from)
    lock                      flock held while refs.json is read-modify-written

An image *is* its manifest; its ID is its config's digest, as in Docker. Tags
change atomically (write, fsync, rename under the lock), and a tag is written
only after every blob it needs is committed, so a failed import, build or pull
leaves no partial image or tag.

What ``reconcile run`` reads (``config``, ``layers``) costs three small file
reads and imports only the standard library; unpacking is imported only when a
snapshot is missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from reconciler.images import oci
from reconciler.images.content import BlobError, ContentStore, check_digest

#: Manifests are small; a larger blob is a layer and is never parsed as one.
MAX_MANIFEST = 4 << 20
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageError(Exception):
    pass


class ImageConfig(NamedTuple):
    """The parts of an image config (its ``config`` object) a container uses."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = [f"PATH={DEFAULT_PATH}"]
    working_dir: str = "/"
    user: str | None = None
    stop_signal: str | None = None
    labels: dict[str, str] = {}
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    healthcheck: dict[str, Any] | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> ImageConfig:
        raw = document.get("config") or {}
        return cls(
            entrypoint=raw.get("Entrypoint") or None,
            cmd=raw.get("Cmd") or None,
            env=list(raw.get("Env") or [f"PATH={DEFAULT_PATH}"]),
            working_dir=raw.get("WorkingDir") or "/",
            user=raw.get("User") or None,
            stop_signal=raw.get("StopSignal") or None,
            labels=dict(raw.get("Labels") or {}),
            exposed_ports=tuple(sorted(raw.get("ExposedPorts") or {})),
            volumes=tuple(sorted(raw.get("Volumes") or {})),
            healthcheck=raw.get("Healthcheck") or None,
        )


class Image(NamedTuple):
    """A stored image: its manifest, config and layers, resolved from a reference."""

    manifest_digest: str
    config_digest: str
    config: dict[str, Any]
    layers: tuple[oci.Descriptor, ...]
    diff_ids: tuple[str, ...]
    manifest_media_type: str

    @property
    def id(self) -> str:
        return self.config_digest

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)


def normalize(reference: str) -> str:
    """``busybox`` → ``busybox:latest``; a tag or digest is kept."""
    name = reference.rsplit("/", 1)[-1]
    return reference if (":" in name or "@" in reference) else f"{reference}:latest"


class ImageStore:
    def __init__(self, root: str) -> None:
        self.directory = os.path.join(root, "images")
        self.content = ContentStore(self.directory)
        self.snapshot_dir = os.path.join(self.directory, "snapshots")
        self.refs_path = os.path.join(self.directory, "refs.json")

    # --- references -------------------------------------------------------

    def refs(self) -> dict[str, dict[str, str]]:
        try:
            with open(self.refs_path) as handle:
                return json.load(handle)  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}

    @contextlib.contextmanager
    def _locked_refs(self) -> Iterator[dict[str, dict[str, str]]]:
        """The refs, for changing: written back atomically when the block succeeds."""
        os.makedirs(self.directory, exist_ok=True)
        with open(os.path.join(self.directory, "lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            refs = self.refs()
            yield refs
            temporary = f"{self.refs_path}.{os.getpid()}.tmp"
            with open(temporary, "w") as handle:
                json.dump(refs, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.refs_path)

    def tag(self, reference: str, manifest_digest: str, *, source: str | None = None) -> None:
        """Point ``reference`` at a manifest that is already fully stored."""
        self.image_by_digest(manifest_digest)  # refuses a manifest with missing blobs
        entry = {"manifest": manifest_digest}
        if source:
            entry["source"] = source
        with self._locked_refs() as refs:
            refs[normalize(reference)] = entry

    def untag(self, reference: str) -> str:
        with self._locked_refs() as refs:
            entry = refs.pop(normalize(reference), None)
        if entry is None:
            raise ImageError(f"no such image: {reference}")
        return entry["manifest"]

    def resolve(self, reference: str) -> str:
        """The manifest digest ``reference`` names: a tag, ``name@digest``, a
        manifest digest, or an image ID (config digest, or a prefix of 12+ hex)."""
        entry = self.refs().get(normalize(reference))
        if entry is not None:
            return entry["manifest"]
        if "@" in reference:
            digest = reference.rsplit("@", 1)[1]
            with contextlib.suppress(BlobError):  # not a digest: names no image
                if self._is_manifest(check_digest(digest)):
                    return digest
        hex_part = reference.removeprefix("sha256:")
        if len(hex_part) >= 12 and all(c in "0123456789abcdef" for c in hex_part):
            if len(hex_part) == 64 and self._is_manifest("sha256:" + hex_part):
                return "sha256:" + hex_part
            for digest in self._manifests():  # an image ID (its config digest) or a prefix of one
                with contextlib.suppress(ImageError):
                    if self.image_by_digest(digest).id.removeprefix("sha256:").startswith(hex_part):
                        return digest
        raise ImageError(f"no such image: {reference}")

    def _is_manifest(self, digest: str) -> bool:
        """An image manifest (not a config, which also has a ``config`` key)."""
        if not self.content.has(digest) or self.content.size(digest) > MAX_MANIFEST:
            return False
        try:
            document = oci.load(self.content.read(digest))
        except (BlobError, oci.ManifestError):
            return False
        return isinstance(document.get("layers"), list) and isinstance(document.get("config"), dict)

    def _manifests(self) -> Iterator[str]:
        """Tagged manifests first, then every other manifest in the store."""
        tagged = list(dict.fromkeys(entry["manifest"] for entry in self.refs().values()))
        yield from tagged
        for digest in self.content.digests():
            if digest not in tagged and self._is_manifest(digest):
                yield digest

    # --- images -----------------------------------------------------------

    def image(self, reference: str, *, verify: bool = True) -> Image:
        return self.image_by_digest(self.resolve(reference), verify=verify)

    def image_by_digest(self, manifest_digest: str, *, verify: bool = True) -> Image:
        try:
            manifest = oci.load(self.content.read(manifest_digest, verify=verify))
            config_desc, layers = oci.manifest_parts(manifest)
            config = oci.load(self.content.read(config_desc.digest, verify=verify), "image config")
        except (BlobError, oci.ManifestError) as exc:
            raise ImageError(f"image {manifest_digest}: {exc}") from None
        diff_ids = tuple((config.get("rootfs") or {}).get("diff_ids") or ())
        if len(diff_ids) != len(layers):
            raise ImageError(f"image {manifest_digest}: config lists {len(diff_ids)} diff-ids for {len(layers)} layers")
        return Image(
            manifest_digest=manifest_digest,
            config_digest=config_desc.digest,
            config=config,
            layers=tuple(layers),
            diff_ids=diff_ids,
            manifest_media_type=oci.media_type_of(manifest),
        )

    def config(self, reference: str) -> ImageConfig:
        return ImageConfig.from_document(self.image(reference).config)

    def images(self) -> dict[str, str]:
        """Every tag and the manifest digest it points at."""
        return {name: entry["manifest"] for name, entry in sorted(self.refs().items())}

    # --- snapshots --------------------------------------------------------

    def snapshot_path(self, diff_id: str) -> str:
        return os.path.join(self.snapshot_dir, check_digest(diff_id).removeprefix("sha256:"))

    def layers(self, reference: str) -> tuple[str, ...]:
        """The image's unpacked layers as overlay lower dirs, topmost first."""
        return self.lower_dirs(self.image(reference))

    def lower_dirs(self, image: Image) -> tuple[str, ...]:
        """``image``'s unpacked layers as overlay lower dirs, topmost first."""
        pairs = zip(image.layers, image.diff_ids, strict=True)
        return tuple(reversed([self.snapshot(layer, diff_id) for layer, diff_id in pairs]))

    def snapshot(self, layer: oci.Descriptor, diff_id: str) -> str:
        """The layer unpacked; unpacked now if it is not yet (once per diff-id)."""
        target = self.snapshot_path(diff_id)
        if os.path.isdir(target):
            return target
        from reconciler.images import layerfs  # only when a layer is new to this host

        os.makedirs(self.snapshot_dir, exist_ok=True)
        try:
            found = layerfs.unpack(self.content.path(layer.digest), target, label=layer.digest)
        except layerfs.LayerError as exc:
            if os.path.isdir(target):  # another process unpacked it meanwhile
                return target
            raise ImageError(str(exc)) from None
        if found != diff_id:
            shutil.rmtree(target, ignore_errors=True)
            raise ImageError(f"layer {layer.digest} unpacks to {found}, but the image config says {diff_id}")
        return target

    # --- writing images ---------------------------------------------------

    def commit(
        self,
        config: dict[str, Any],
        layers: list[oci.Descriptor],
        references: Iterable[str] = (),
        *,
        source: str | None = None,
    ) -> Image:
        """Store config and manifest for ``layers`` (whose blobs are committed) and tag."""
        config_bytes = oci.canonical(config)
        config_digest = self.content.put(config_bytes)
        manifest = oci.new_manifest(oci.Descriptor(oci.OCI_CONFIG, config_digest, len(config_bytes)), layers)
        manifest_digest = self.content.put(manifest)
        image = self.image_by_digest(manifest_digest)
        for reference in references:
            self.tag(reference, manifest_digest, source=source)
        return image

    def import_tarball(self, tarball: str, reference: str | None, *, changes: dict[str, Any] | None = None) -> Image:
        """A root filesystem tarball as a one-layer image (``docker import``)."""
        from reconciler.images import layerfs

        scratch = os.path.join(self.snapshot_dir, f".import-{os.getpid()}")
        os.makedirs(self.snapshot_dir, exist_ok=True)
        try:  # unpack first: a tarball that is not a clean layer never enters the store
            diff_id = layerfs.unpack(tarball, scratch, label=tarball)
            with open(tarball, "rb") as handle:
                head = handle.read(4)
            layer_digest = self.content.put_file(tarball)
        except layerfs.LayerError as exc:
            raise ImageError(f"cannot import {tarball}: {exc}") from None
        except OSError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ImageError(f"cannot import {tarball}: {exc.strerror}") from None
        layer = oci.Descriptor(oci.layer_media_type(head), layer_digest, self.content.size(layer_digest))
        target = self.snapshot_path(diff_id)
        if os.path.isdir(target):
            shutil.rmtree(scratch)
        else:
            os.rename(scratch, target)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        config: dict[str, Any] = {
            **oci.host_platform(),
            "created": now,
            "config": {"Env": [f"PATH={DEFAULT_PATH}"], **(changes or {})},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": now, "created_by": f"reconcile image import {os.path.basename(tarball)}"}],
        }
        return self.commit(config, [layer], [reference] if reference else [])

    # --- removal and garbage collection -----------------------------------

    def remove(self, reference: str, *, in_use: Iterable[str] = ()) -> list[str]:
        """Untag ``reference`` (by ID: every tag of it); the tags removed. A manifest
        still used by a container (``in_use``) keeps its last tag."""
        digest = self.resolve(reference)
        tags = [name for name, entry in self.refs().items() if entry["manifest"] == digest]
        if normalize(reference) in tags:
            tags = [normalize(reference)]
        remaining = [n for n, e in self.refs().items() if e["manifest"] == digest and n not in tags]
        if digest in set(in_use) and not remaining:
            raise ImageError(f"image {reference} is used by a container: remove the container first")
        with self._locked_refs() as refs:
            for name in tags:
                refs.pop(name, None)
        return tags

    def prune(self, *, keep: Iterable[str] = ()) -> dict[str, int]:
        """Remove every blob and snapshot no tag and no ``keep`` manifest reaches;
        counts of what went. Stale ingests go too."""
        roots = {entry["manifest"] for entry in self.refs().values()} | set(keep)
        live_blobs: set[str] = set()
        live_snapshots: set[str] = set()
        for digest in roots:
            with contextlib.suppress(ImageError):
                image = self.image_by_digest(digest)
                live_blobs |= {digest, image.config_digest, *(layer.digest for layer in image.layers)}
                live_snapshots |= {d.removeprefix("sha256:") for d in image.diff_ids}
        blobs = 0
        for digest in list(self.content.digests()):
            if digest not in live_blobs:
                self.content.delete(digest)
                blobs += 1
        snapshots = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.snapshot_dir):
                if name not in live_snapshots:
                    shutil.rmtree(os.path.join(self.snapshot_dir, name), ignore_errors=True)
                    snapshots += 1
        return {"blobs": blobs, "snapshots": snapshots, "ingests": self.content.clean_ingests()}

    def fsck(self) -> list[str]:
        """Every problem found: corrupt blobs, tags naming missing content."""
        problems = [f"blob {d}: {p}" for d in self.content.digests() if (p := self.content.verify(d))]
        for name, entry in self.refs().items():
            try:
                image = self.image_by_digest(entry["manifest"])
            except ImageError as exc:
                problems.append(f"{name}: {exc}")
                continue
            problems += [
                f"{name}: layer {layer.digest} is missing"
                for layer in image.layers
                if not self.content.has(layer.digest)
            ]
        return problems
