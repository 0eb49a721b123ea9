"""``push``: a stored image to a registry.

Blobs first (config and layers, in parallel), the manifest last, so a registry
never holds a manifest whose blobs are missing. For each blob:

1. ``HEAD /v2/NAME/blobs/DIGEST``: there already, nothing to send;
2. when the image was pulled from another repository of the same registry (the
   ``source`` its tag records), ``POST …/blobs/uploads/?mount=DIGEST&from=REPO``:
   201 means the registry linked the blob without a byte sent; 202 means it could
   not, and the answer is an ordinary upload session to go on with;
3. otherwise ``POST …/blobs/uploads/`` opens an upload session, then a blob up to
   ``config.chunk_threshold`` goes in one ``PUT ?digest=``; a bigger one in
   ``PATCH`` chunks of ``config.chunk_size`` (``Content-Range: start-end``, each
   answer naming the next ``Location``) closed by an empty ``PUT ?digest=``.

The manifest is sent as the bytes the store holds, so its digest, and the
digest of anything that names it, stays the same.
"""

from __future__ import annotations

import functools
import os
import threading
import urllib.parse
from collections.abc import Iterator

import httpx

from reconciler.images import oci
from reconciler.images.content import BlobError
from reconciler.images.distribution.client import Cancelled, Session, describe, open_session, run_all
from reconciler.images.distribution.config import (
    Phase,
    ProgressCallback,
    ProgressEvent,
    RegistryConfig,
    RegistryError,
    Target,
    parse_target,
)
from reconciler.images.store import ImageError, ImageStore

_READ = 1 << 20
_OCTETS = "application/octet-stream"


def _report(progress: ProgressCallback | None, digest: str, total: int, done: int, phase: Phase) -> None:
    if progress is not None:
        progress(ProgressEvent(digest=digest, total=total, done=done, phase=phase))


def mount_source(store: ImageStore, manifest_digest: str, target: Target) -> str | None:
    """Another repository of ``target``'s registry this image was pulled from, if any."""
    for entry in store.refs().values():
        source = entry.get("source")
        if entry.get("manifest") != manifest_digest or not source:
            continue
        try:
            origin = parse_target(source)
        except RegistryError:
            continue
        if origin.registry == target.registry and origin.repository != target.repository:
            return origin.repository
    return None


def _location(response: httpx.Response, session: Session) -> str:
    location = response.headers.get("Location")
    if not location:
        raise session.error(f"{response.request.method} {response.request.url} answered without a Location")
    return str(response.url.join(location))


def _with_digest(location: str, digest: str) -> str:
    return str(httpx.URL(location).copy_merge_params({"digest": digest}))


class _Upload:
    """One blob's way into the registry; ``run`` is one attempt, retried whole."""

    def __init__(
        self,
        session: Session,
        store: ImageStore,
        blob: oci.Descriptor,
        *,
        mount_from: str | None,
        progress: ProgressCallback | None,
        cancel: threading.Event,
    ) -> None:
        self.session = session
        self.store = store
        self.blob = blob
        self.mount_from = mount_from
        self.progress = progress
        self.cancel = cancel
        self.uploads = f"/v2/{session.target.repository}/blobs/uploads/"

    def run(self) -> Phase:
        if self._exists():
            return "exists"
        location = self._start()
        if location is None:
            return "mounted"
        if self.blob.size <= self.session.config.chunk_threshold:
            self._monolithic(location)
        else:
            self._chunked(location)
        return "done"

    def _exists(self) -> bool:
        path = f"/v2/{self.session.target.repository}/blobs/{self.blob.digest}"
        response = self.session.request("HEAD", path, follow_redirects=True)
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise self.session.error(f"HEAD blob {self.blob.digest}: {describe(response)}")

    def _start(self) -> str | None:
        """An upload session's location, or None when the blob was mounted."""
        path = self.uploads
        scopes: tuple[str, ...] = ()
        if self.mount_from:
            query = urllib.parse.urlencode({"mount": self.blob.digest, "from": self.mount_from})
            path, scopes = f"{self.uploads}?{query}", (f"repository:{self.mount_from}:pull",)
        response = self.session.request("POST", path, scopes=scopes, headers={"Content-Length": "0"})
        if response.status_code == 201 and self.mount_from:
            return None
        if response.status_code != 202:
            raise self.session.error(f"POST {path}: {describe(response)}")
        return _location(response, self.session)

    def _chunks(self, fd: int, offset: int, length: int) -> Iterator[bytes]:
        """``length`` bytes of the blob from ``offset``, reporting as they go."""
        end = offset + length
        while offset < end:
            if self.cancel.is_set():
                raise Cancelled
            chunk = os.pread(fd, min(_READ, end - offset), offset)
            if not chunk:
                raise self.session.error(f"blob {self.blob.digest} in the store is shorter than {self.blob.size} bytes")
            offset += len(chunk)
            yield chunk
            _report(self.progress, self.blob.digest, self.blob.size, offset, "uploading")

    def _finish(self, response: httpx.Response) -> None:
        if response.status_code != 201:
            raise self.session.error(f"PUT blob {self.blob.digest}: {describe(response)}")
        claimed = response.headers.get("Docker-Content-Digest", "")
        if claimed.startswith("sha256:") and claimed != self.blob.digest:
            raise self.session.error(f"the registry stored blob {self.blob.digest} as {claimed}")

    def _monolithic(self, location: str) -> None:
        with self.store.content.open(self.blob.digest) as handle:
            fd = handle.fileno()
            response = self.session.request(
                "PUT",
                _with_digest(location, self.blob.digest),
                headers={"Content-Type": _OCTETS, "Content-Length": str(self.blob.size)},
                body=lambda: self._chunks(fd, 0, self.blob.size),
            )
        self._finish(response)

    def _chunked(self, location: str) -> None:
        size, step = self.blob.size, max(1, self.session.config.chunk_size)
        with self.store.content.open(self.blob.digest) as handle:
            fd = handle.fileno()
            for offset in range(0, size, step):
                length = min(step, size - offset)
                response = self.session.request(
                    "PATCH",
                    location,
                    headers={
                        "Content-Type": _OCTETS,
                        "Content-Length": str(length),
                        "Content-Range": f"{offset}-{offset + length - 1}",
                    },
                    body=functools.partial(self._chunks, fd, offset, length),
                )
                if response.status_code != 202:
                    raise self.session.error(f"PATCH blob {self.blob.digest} at {offset}: {describe(response)}")
                location = _location(response, self.session)
        response = self.session.request(
            "PUT", _with_digest(location, self.blob.digest), headers={"Content-Length": "0"}
        )
        self._finish(response)


def upload(
    session: Session,
    store: ImageStore,
    blob: oci.Descriptor,
    mount_from: str | None,
    progress: ProgressCallback | None,
    cancel: threading.Event,
) -> None:
    job = _Upload(session, store, blob, mount_from=mount_from, progress=progress, cancel=cancel)
    phase = session.retry(job.run)
    _report(progress, blob.digest, blob.size, blob.size, phase)


def put_manifest(session: Session, reference: str, data: bytes, media_type: str) -> str:
    """``PUT /v2/NAME/manifests/REF`` with the exact bytes; their digest."""
    digest = oci.sha256(data)
    path = f"/v2/{session.target.repository}/manifests/{reference}"

    def once() -> httpx.Response:
        return session.request("PUT", path, headers={"Content-Type": media_type}, body=data)

    response = session.retry(once)
    if response.status_code != 201:
        raise session.error(f"PUT manifest {reference}: {describe(response)}")
    claimed = response.headers.get("Docker-Content-Digest", "")
    if claimed.startswith("sha256:") and claimed != digest:
        raise session.error(f"the registry stored manifest {digest} as {claimed}")
    return digest


def push(
    store: ImageStore,
    reference: str,
    *,
    progress: ProgressCallback | None = None,
    config: RegistryConfig | None = None,
) -> str:
    """Push the image ``reference`` names in ``store`` to the registry and
    repository the reference names; the manifest digest."""
    config = config or RegistryConfig()
    target = parse_target(reference)
    try:
        image = store.image(reference)
        data = store.content.read(image.manifest_digest)
        config_blob, layers = oci.manifest_parts(oci.load(data))
    except (ImageError, BlobError, oci.ManifestError) as exc:
        raise RegistryError(f"push {target}: {exc}", registry=target.registry, repository=target.repository) from None
    blobs = list({blob.digest: blob for blob in (config_blob, *layers)}.values())
    missing = [blob.digest for blob in blobs if not store.content.has(blob.digest)]
    if missing:
        raise RegistryError(f"push {target}: blobs missing from the store: {', '.join(missing)}")
    if target.digest and target.digest != image.manifest_digest:
        raise RegistryError(f"push {target}: the stored manifest is {image.manifest_digest}")
    mount_from = mount_source(store, image.manifest_digest, target)
    root = os.path.dirname(store.directory)
    with open_session(target, config, root=root, operation="push", actions="pull,push") as session:
        jobs = [functools.partial(upload, session, store, blob, mount_from, progress) for blob in blobs]
        run_all(jobs, workers=config.parallel)
        return put_manifest(session, target.reference, data, image.manifest_media_type)
