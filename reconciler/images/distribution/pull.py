"""``pull``: an image from a registry into the image store.

The order is what keeps a failed pull invisible:

1. resolve the reference to an image manifest: ``GET /v2/NAME/manifests/REF``
   with every manifest type in ``Accept``; an index (manifest list) is resolved
   to the wanted platform and that manifest fetched by digest. Each manifest's
   bytes must hash to the digest it was asked by, or that the registry claims
   (``Docker-Content-Digest``);
2. download the config, then the layers the store lacks, in parallel, each
   streamed into an ingest and committed only when its digest and size match
   the manifest's descriptor; any failure aborts every ingest in flight;
3. unpack each layer into its snapshot as soon as it is committed (while the
   others still download), so the image is ready to run;
4. store the manifest and only then write the tag (``source`` records where it
   came from, for cross-repository mounts on push).

A blob committed before a later one failed stays in the store: it is complete
and verified, so pulling again does not download it twice, and ``prune``
removes it if no image ever needs it.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

from reconciler.images import oci
from reconciler.images.content import BlobError, check_digest
from reconciler.images.distribution.client import Cancelled, Session, Transient, describe, open_session, run_all
from reconciler.images.distribution.config import (
    Phase,
    ProgressCallback,
    ProgressEvent,
    RegistryConfig,
    parse_target,
)
from reconciler.images.store import Image, ImageError, ImageStore
from reconciler.model.reference import is_digest

SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)


@dataclass(frozen=True)
class Manifest:
    digest: str
    data: bytes
    document: dict[str, Any]
    media_type: str


def _report(progress: ProgressCallback | None, digest: str, total: int, done: int, phase: Phase) -> None:
    if progress is not None:
        progress(ProgressEvent(digest=digest, total=total, done=done, phase=phase))


def fetch_manifest(session: Session, reference: str, *, expected_size: int | None = None) -> Manifest:
    """The manifest or index ``reference`` (a tag or digest) names, verified."""
    target = session.target
    path = f"/v2/{target.repository}/manifests/{reference}"

    def once() -> tuple[bytes, str, str]:
        with session.stream("GET", path, headers={"Accept": oci.ACCEPT}) as response:
            if response.status_code == 404:
                raise session.error(
                    f"manifest unknown: {reference} not found in {target.name} ({describe(response)})",
                    reference=reference,
                )
            if response.status_code != 200:
                raise session.error(f"GET manifest {reference}: {describe(response)}", reference=reference)
            data = bytearray()
            for chunk in session.iter_body(response):
                data += chunk
                if len(data) > session.config.max_manifest_size:
                    raise session.error(f"manifest {reference} is larger than {session.config.max_manifest_size} bytes")
            return (
                bytes(data),
                response.headers.get("Docker-Content-Digest", ""),
                response.headers.get("Content-Type", ""),
            )

    data, claimed, content_type = session.retry(once)
    digest = oci.sha256(data)
    if is_digest(reference) and digest != reference:
        raise session.error(f"manifest digest mismatch: asked for {reference}, got content hashing to {digest}")
    if claimed.startswith("sha256:") and claimed != digest:
        raise session.error(f"manifest digest mismatch: the registry says {claimed}, the content hashes to {digest}")
    if expected_size is not None and expected_size != len(data):
        raise session.error(f"manifest {digest} is {len(data)} bytes, the index says {expected_size}")
    try:
        document = oci.load(data)
    except oci.ManifestError as exc:
        raise session.error(str(exc)) from None
    return Manifest(digest, data, document, oci.media_type_of(document, content_type))


def resolve(session: Session, platform: dict[str, str] | None) -> Manifest:
    """The image manifest for ``platform``, through an index if there is one."""
    manifest = fetch_manifest(session, session.target.reference)
    if manifest.media_type in oci.INDEXES:
        try:
            chosen = oci.select_platform(manifest.document, platform)
            check_digest(chosen.digest)
        except (oci.ManifestError, BlobError) as exc:
            raise session.error(str(exc)) from None
        manifest = fetch_manifest(session, chosen.digest, expected_size=chosen.size)
    if manifest.media_type in SCHEMA1 or manifest.document.get("schemaVersion") == 1:
        raise session.error("Docker schema 1 manifests are not supported (push the image again with a current client)")
    if manifest.media_type not in oci.MANIFESTS:
        raise session.error(f"unsupported manifest type {manifest.media_type!r}")
    return manifest


def download(
    session: Session,
    store: ImageStore,
    blob: oci.Descriptor,
    progress: ProgressCallback | None,
    cancel: threading.Event,
) -> None:
    """One blob into the store, unless it is there already; retried afresh (new
    ingest) after a transient failure."""
    if store.content.has(blob.digest):
        _report(progress, blob.digest, blob.size, blob.size, "exists")
        return
    path = f"/v2/{session.target.repository}/blobs/{blob.digest}"

    def once() -> None:
        with (
            store.content.writer() as ingest,
            session.stream("GET", path, headers={"Accept-Encoding": "identity"}, follow_redirects=True) as response,
        ):
            if response.status_code != 200:
                raise session.error(f"GET blob {blob.digest}: {describe(response)}")
            _report(progress, blob.digest, blob.size, 0, "downloading")
            for chunk in session.iter_body(response):
                if cancel.is_set():
                    raise Cancelled
                ingest.write(chunk)
                if ingest.size > blob.size:
                    raise session.error(f"blob {blob.digest} is larger than the {blob.size} bytes the manifest says")
                _report(progress, blob.digest, blob.size, ingest.size, "downloading")
            if ingest.size < blob.size:
                raise Transient(f"blob {blob.digest} cut short: {ingest.size} of {blob.size} bytes")
            try:
                ingest.commit(blob.digest, blob.size)
            except BlobError as exc:
                raise session.error(str(exc)) from None

    session.retry(once)
    _report(progress, blob.digest, blob.size, blob.size, "done")


def diff_ids(
    session: Session, store: ImageStore, config_blob: oci.Descriptor, layers: list[oci.Descriptor]
) -> list[str]:
    """The layers' diff-ids from the (stored) image config: what each unpacks to."""
    try:
        document = oci.load(store.content.read(config_blob.digest), "image config")
    except (BlobError, oci.ManifestError) as exc:
        raise session.error(str(exc)) from None
    found = (document.get("rootfs") or {}).get("diff_ids")
    if not isinstance(found, list) or len(found) != len(layers):
        count = len(found) if isinstance(found, list) else 0
        raise session.error(f"the image config lists {count} diff-ids for {len(layers)} layers")
    malformed = [d for d in found if not is_digest(str(d))]
    if malformed:
        raise session.error(f"the image config has malformed diff-ids: {malformed}")
    return [str(d) for d in found]


def unpack_layer(store: ImageStore, layer: oci.Descriptor, diff_id: str, progress: ProgressCallback | None) -> None:
    """The layer as a snapshot, unless it is one already."""
    if os.path.isdir(store.snapshot_path(diff_id)):
        return
    _report(progress, layer.digest, layer.size, 0, "unpacking")
    store.snapshot(layer, diff_id)
    _report(progress, layer.digest, layer.size, layer.size, "unpacked")


def fetch_layer(
    session: Session,
    store: ImageStore,
    layer: oci.Descriptor,
    diff_id: str | None,
    progress: ProgressCallback | None,
    cancel: threading.Event,
) -> None:
    """Download, then (with a ``diff_id``) unpack at once, while other layers are
    still arriving: a pull costs about its slowest layer, not the sum."""
    download(session, store, layer, progress, cancel)
    if diff_id is not None and not cancel.is_set():
        unpack_layer(store, layer, diff_id, progress)


def pull(
    store: ImageStore,
    reference: str,
    *,
    platform: dict[str, str] | None = None,
    progress: ProgressCallback | None = None,
    config: RegistryConfig | None = None,
    unpack: bool = True,
) -> Image:
    """Pull ``reference`` into ``store`` and tag it as written (``busybox`` →
    ``busybox:latest``); the stored image. Credentials come from the store's
    ``ROOT/auth.json`` or the Docker config. ``unpack=False`` stores the blobs
    only (layers are then unpacked on first use).

    The config comes first (it names each layer's diff-id); then the layers,
    ``config.parallel`` at a time, each unpacked as soon as it is committed.
    Only when all are in is the manifest stored and the tag written, so an
    image that cannot be fetched or unpacked is never tagged.

    Raises ``RegistryError`` for anything the registry or the network did;
    ``ImageError`` if a layer cannot be unpacked.
    """
    config = config or RegistryConfig()
    target = parse_target(reference)
    root = os.path.dirname(store.directory)
    with open_session(target, config, root=root, operation="pull") as session:
        try:
            manifest = resolve(session, platform)
            config_blob, layers = oci.manifest_parts(manifest.document)
            for blob in (config_blob, *layers):  # they become file names and URLs
                check_digest(blob.digest)
        except (oci.ManifestError, BlobError) as exc:
            raise session.error(str(exc)) from None
        download(session, store, config_blob, progress, threading.Event())
        ids = diff_ids(session, store, config_blob, layers)
        jobs = {
            layer.digest: functools.partial(fetch_layer, session, store, layer, diff_id if unpack else None, progress)
            for layer, diff_id in zip(layers, ids, strict=True)
        }
        run_all(list(jobs.values()), workers=config.parallel)
        try:
            store.content.put(manifest.data, manifest.digest)
            image = store.image_by_digest(manifest.digest)
        except (BlobError, ImageError) as exc:
            raise session.error(str(exc)) from None
    store.tag(reference, manifest.digest, source=f"{target.name}@{manifest.digest}")
    return image
