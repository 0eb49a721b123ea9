"""Images: pull, push, build, import, save/load, tag, remove, prune, list, inspect,
history and fsck, over the image store, the registry client, the archive module and
the builder (``engine.models.images`` says what each takes and gives).

Two kinds of lock:

* ``engine.locks.hold("image", reference)`` around a change to one name (a pull, a
  tag, a removal), so two requests for one name run one after the other;
* a shared/exclusive lock over the whole store: everything that adds content
  (pull, build, import, load, tag) holds it shared, garbage collection (after
  ``remove``, and ``prune``) exclusive. A collection run in the middle of a pull
  would otherwise delete the blobs the pull has committed but not yet tagged.

The per-name lock is always taken before the store lock, never the other way round,
so the two cannot deadlock.

The registry client (httpx), the archive module and the builder are imported by the
operations that use them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from reconciler.engine import errors
from reconciler.engine.models import images as models

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from reconciler.engine.core import Engine
    from reconciler.images.distribution import ProgressEvent, RegistryConfig, RegistryError
    from reconciler.images.store import Image, ImageStore

#: Docker's words for the phases of a blob in a pull and in a push.
PULL_STATUS = {
    "exists": "Already exists",
    "downloading": "Downloading",
    "done": "Download complete",
    "unpacking": "Extracting",
    "unpacked": "Pull complete",
}
PUSH_STATUS = {
    "exists": "Layer already exists",
    "uploading": "Pushing",
    "done": "Pushed",
    "mounted": "Mounted from another repository",
}
#: A blob's byte count is reported each time it moves by this fraction of its size
#: (and at every change of phase): a progress stream of about a hundred lines per
#: blob, whatever the chunk size of the transfer.
PROGRESS_STEP = 0.01
NONE = "<none>"


class _StoreLock:
    """Shared/exclusive: many writers of content at once, or one collector."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._condition:
                self._shared -= 1
                self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._exclusive and self._shared == 0)
            self._exclusive = True
        try:
            yield
        finally:
            with self._condition:
                self._exclusive = False
                self._condition.notify_all()


def check_reference(reference: str, what: str = "image reference") -> None:
    """InvalidRequest unless ``reference`` follows the Docker/OCI reference grammar."""
    from reconciler.model.reference import parse_reference

    try:
        parse_reference(reference)
    except ValueError as exc:
        raise errors.InvalidRequest(str(exc) if what == "image reference" else f"{what}: {exc}") from None


def registry_config() -> RegistryConfig:
    """The engine's registry settings: ``RECONCILE_INSECURE_REGISTRIES`` (comma
    separated) lists registries reached over plain HTTP, as Docker's
    ``insecure-registries``; loopback registries always are."""
    from reconciler.images.distribution import RegistryConfig

    insecure = tuple(r for r in os.environ.get("RECONCILE_INSECURE_REGISTRIES", "").split(",") if r)
    return RegistryConfig(insecure=insecure)


def registry_error(exc: RegistryError) -> errors.EngineError:
    """A registry failure as the engine's error: a reference that is not one, or
    credentials refused, is the request's fault; a manifest the registry does not
    have is NotFound; anything else (unreachable, 5xx after retries, content that
    does not match its digest) makes the registry Unavailable."""
    message = str(exc)
    cause = exc.cause
    if not exc.registry:
        return errors.InvalidRequest(message)
    if "authentication required" in cause or "wrong credentials" in cause:
        return errors.InvalidRequest(message)
    if cause.startswith("manifest unknown"):
        return errors.NotFound(message)
    return errors.Unavailable(message)


def _image_error(exc: Exception) -> errors.EngineError:
    message = str(exc)
    if message.startswith("no such image"):
        return errors.NotFound(message)
    return errors.InvalidRequest(message)


def _split(name: str) -> tuple[str, str]:
    """``repo:tag`` → (repo, tag), as ``images`` lists a tag."""
    repository, _, tag = name.rpartition(":")
    return repository, tag


class _BlobProgress:
    """Registry progress events as the engine's dicts, one caller at a time (the
    pull's worker threads report concurrently), thinned to ``PROGRESS_STEP``."""

    def __init__(self, progress: models.Progress, status: dict[str, str]) -> None:
        self.progress = progress
        self.status = status
        self.lock = threading.Lock()
        self.last: dict[str, tuple[str, int]] = {}

    def __call__(self, event: ProgressEvent) -> None:
        with self.lock:
            phase, done = self.last.get(event.digest, ("", -1))
            step = max(1, int(event.total * PROGRESS_STEP))
            if phase == event.phase and event.done != event.total and event.done - done < step:
                return
            self.last[event.digest] = (event.phase, event.done)
            self.progress(
                {
                    "id": event.digest.removeprefix("sha256:")[:12],
                    "digest": event.digest,
                    "phase": event.phase,
                    "status": self.status.get(event.phase, event.phase),
                    "current": event.done,
                    "total": event.total,
                }
            )


class Images:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._store_lock = _StoreLock()
        self._unpacking_guard = threading.Lock()
        self._unpacking: ThreadPoolExecutor | None = None

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold while adding content to the store outside these operations (the
        reconcile loop pulling or building an image): no collection runs meanwhile."""
        return self._store_lock.shared()

    def _store(self) -> ImageStore:
        return self.engine.wiring.image_store()

    def _hold(self, reference: str) -> contextlib.AbstractContextManager[None]:
        from reconciler.images.store import normalize

        return self.engine.locks.hold("image", normalize(reference))

    def _resolve(self, reference: str) -> str:
        from reconciler.images.store import ImageError

        try:
            return self._store().resolve(reference)
        except (ImageError, ValueError) as exc:
            raise errors.NotFound(f"no such image: {reference}" if isinstance(exc, ValueError) else str(exc)) from None

    def _image(self, reference: str) -> Image:
        from reconciler.images.store import ImageError

        digest = self._resolve(reference)
        try:
            return self._store().image_by_digest(digest)
        except ImageError as exc:
            raise errors.InvalidRequest(f"{reference}: {exc}") from None

    def _summary(self, name: str | None, image: Image) -> models.ImageSummary:
        repository, tag = _split(name) if name else (NONE, NONE)
        return {
            "repository": repository,
            "tag": tag,
            "id": image.id,
            "digest": image.manifest_digest,
            "created": str(image.config.get("created") or ""),
            "size": image.size,
        }

    def _in_use(self) -> set[str]:
        """Manifests containers (running or not) were made from: never collected."""
        states = self.engine.wiring.runtime().store
        used = set()
        for name in states.names():
            state = states.read(name)
            image = (state.spec.get("image") if state else None) or {}
            if isinstance(image, dict) and image.get("manifest"):
                used.add(image["manifest"])
        return used

    def _collect(self) -> dict[str, int]:
        """Garbage collection (hold the store lock exclusive): blobs and unpacked
        layers no tag and no container reaches, stale ingests; with the bytes of
        blobs freed (unpacked layers are not counted)."""
        store = self._store()
        sizes: dict[str, int] = {}
        for digest in store.content.digests():
            with contextlib.suppress(OSError):
                sizes[digest] = store.content.size(digest)
        counts = store.prune(keep=self._in_use())
        left = set(store.content.digests())
        counts["bytes_freed"] = sum(size for digest, size in sizes.items() if digest not in left)
        return counts

    # --- reading ------------------------------------------------------------

    def inspect(self, reference: str) -> dict[str, Any]:
        """Docker's ``image inspect`` shape, for one image."""
        image = self._image(reference)
        tags = sorted(name for name, digest in self._store().images().items() if digest == image.manifest_digest)
        return {
            "Id": image.id,
            "RepoTags": tags,
            "RepoDigests": [f"{name.rpartition(':')[0]}@{image.manifest_digest}" for name in tags],
            "Created": image.config.get("created"),
            "Architecture": image.config.get("architecture"),
            "Os": image.config.get("os"),
            "Config": image.config.get("config") or {},
            "Size": image.size,
            "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
            "Manifest": {"Digest": image.manifest_digest, "MediaType": image.manifest_media_type},
        }

    def history(self, reference: str) -> list[models.HistoryEntry]:
        """The image config's history, newest step first."""
        image = self._image(reference)
        entries = image.config.get("history") or []
        return cast(list[models.HistoryEntry], [entry for entry in reversed(entries) if isinstance(entry, dict)])

    def fsck(self) -> models.FsckResult:
        return {"problems": self._store().fsck()}

    # --- registries -----------------------------------------------------------

    def pull(
        self, reference: str, *, platform: str | None = None, progress: models.Progress | None = None
    ) -> models.ImageSummary:
        from reconciler.images import distribution, oci
        from reconciler.images.store import ImageError, normalize

        check_reference(reference)
        try:
            wanted = oci.parse_platform(platform) if platform else None
        except oci.ManifestError as exc:
            raise errors.InvalidRequest(str(exc)) from None
        shown = _BlobProgress(progress, PULL_STATUS) if progress else None
        downloaded: dict[str, int] = {}
        guard = threading.Lock()

        def callback(event: ProgressEvent) -> None:
            if event.phase == "downloading" or event.phase == "done":
                with guard:
                    downloaded[event.digest] = max(downloaded.get(event.digest, 0), event.done)
            if shown is not None:
                shown(event)

        later = self.engine.config.unpack_after_pull
        with self._hold(reference), self._store_lock.shared():
            try:
                image = distribution.pull(
                    self._store(),
                    reference,
                    platform=wanted,
                    progress=callback,
                    config=registry_config(),
                    unpack=not later,
                )
            except distribution.RegistryError as exc:
                raise registry_error(exc) from None
            except (ImageError, oci.ManifestError) as exc:
                raise errors.InvalidRequest(f"pull {reference}: {exc}") from None
            finally:
                self.engine.notify("pulled", bytes=sum(downloaded.values()))
        if later:
            self._unpack_soon(image)
        return self._summary(normalize(reference), image)

    def _unpack_soon(self, image: Image) -> None:
        """Unpack ``image``'s layers in the background, one image at a time, holding
        the store shared (a prune waits for it). A container made meanwhile unpacks
        what it needs itself (``ImageStore.snapshot``; two unpacks of one layer end
        in one snapshot). A layer that cannot be unpacked is logged here and is the
        error of the first ``run`` of the image, naming the layer and the cause."""
        with self._unpacking_guard:
            if self._unpacking is None:
                from concurrent.futures import ThreadPoolExecutor

                self._unpacking = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unpack")
            self._unpacking.submit(self._unpack, image)

    def _unpack(self, image: Image) -> None:
        import logging

        from reconciler.images.store import ImageError

        try:
            with self._store_lock.shared():
                self._store().lower_dirs(image)
        except (ImageError, OSError) as exc:
            logging.getLogger("reconcile.images").warning("image %s: unpacking its layers failed: %s", image.id, exc)

    def close(self) -> None:
        """Let background unpacks finish (an unpack cut short leaves a temporary
        directory, which the next unpack of that layer replaces)."""
        with self._unpacking_guard:
            unpacking, self._unpacking = self._unpacking, None
        if unpacking is not None:
            unpacking.shutdown(wait=True)

    def push(self, reference: str, *, progress: models.Progress | None = None) -> models.PushResult:
        from reconciler.images import distribution
        from reconciler.images.store import normalize

        check_reference(reference)
        callback = _BlobProgress(progress, PUSH_STATUS) if progress else None
        with self._hold(reference), self._store_lock.shared():
            self._resolve(reference)
            try:
                digest = distribution.push(self._store(), reference, progress=callback, config=registry_config())
            except distribution.RegistryError as exc:
                raise registry_error(exc) from None
        return {"reference": normalize(reference), "digest": digest}

    # --- making images ----------------------------------------------------------

    def build(
        self,
        context: str,
        *,
        tags: list[str] | None = None,
        containerfile: str | None = None,
        build_args: list[str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        progress: models.Progress | None = None,
    ) -> models.BuildResult:
        from reconciler.images.build import builder
        from reconciler.images.build.containerfile import ContainerfileError
        from reconciler.images.store import ImageError, normalize

        tags = list(tags or [])
        for tag in tags:
            check_reference(tag, "tag")
        arguments: dict[str, str] = {}
        for item in build_args or []:
            key, sep, value = item.partition("=")
            if not key or not sep:
                raise errors.InvalidRequest(f"build argument {item!r}: use KEY=VALUE")
            arguments[key] = value
        path = None
        if containerfile is not None:
            if not os.path.isabs(containerfile) and os.path.normpath(containerfile).startswith(".."):
                raise errors.InvalidRequest(f"the Containerfile {containerfile} is outside the build context")
            path = os.path.join(context, containerfile)
        store = self._store()

        def fetch(reference: str) -> Image:
            from reconciler.images import distribution

            try:
                return distribution.pull(store, reference, config=registry_config())
            except distribution.RegistryError as exc:
                raise registry_error(exc) from None

        def line(text: str) -> None:
            if progress is not None:
                progress({"status": "line", "text": text})

        held = self._hold(tags[0]) if tags else contextlib.nullcontext()
        with held, self._store_lock.shared():
            try:
                image = builder.build(
                    store,
                    context,
                    containerfile=path,
                    tags=tags,
                    build_args=arguments,
                    target=target,
                    cgroup_parent=self.engine.config.cgroup_parent,
                    progress=line,
                    no_cache=no_cache,
                    pull=fetch,
                )
            except builder.BuildError as exc:
                if containerfile is not None and exc.path == path:
                    exc.path = containerfile  # as the caller named it, not the server's copy
                raise errors.InvalidRequest(str(exc)) from None
            except (ContainerfileError, ImageError) as exc:
                raise errors.InvalidRequest(str(exc)) from None
        return {"id": image.id, "digest": image.manifest_digest, "tags": [normalize(tag) for tag in tags]}

    def import_tarball(self, tarball: str, reference: str | None = None) -> models.ImageSummary:
        from reconciler.images.store import ImageError, normalize

        if reference is not None:
            check_reference(reference)
        held = self._hold(reference) if reference else contextlib.nullcontext()
        with held, self._store_lock.shared():
            try:
                image = self._store().import_tarball(tarball, reference)
            except ImageError as exc:
                raise errors.InvalidRequest(str(exc)) from None
        return self._summary(normalize(reference) if reference else None, image)

    def tag(self, source: str, target: str) -> models.TagResult:
        from reconciler.images.store import ImageError, normalize

        check_reference(target, "target")
        with self._hold(target), self._store_lock.shared():
            digest = self._resolve(source)
            try:
                self._store().tag(target, digest)
                image = self._store().image_by_digest(digest, verify=False)
            except ImageError as exc:
                raise _image_error(exc) from None
        return {"reference": normalize(target), "id": image.id, "digest": digest}

    # --- archives ---------------------------------------------------------------

    def save(
        self,
        references: list[str],
        *,
        format: models.ArchiveFormat = "oci-archive",
        destination: str | None = None,
    ) -> str:
        from reconciler.images import archive

        if format not in archive.FORMATS:
            raise errors.InvalidRequest(f"unknown archive format {format!r} (use {' or '.join(archive.FORMATS)})")
        if not references:
            raise errors.InvalidRequest("no image to save")
        with self._store_lock.shared():
            for reference in references:
                self._resolve(reference)
            owned = destination is None
            if destination is None:
                handle, destination = tempfile.mkstemp(prefix="reconcile-save-", suffix=".tar")
                os.close(handle)
            try:
                archive.save(self._store(), list(references), destination, format=format)
            except archive.ArchiveError as exc:
                if owned:
                    os.unlink(destination)
                raise errors.InvalidRequest(str(exc)) from None
        return destination

    def load(self, archive: str, *, tag: str | None = None) -> models.LoadResult:
        from reconciler.images import archive as archives

        with self._store_lock.shared():
            try:
                loaded = archives.load(self._store(), archive, tag=tag)
            except archives.ArchiveError as exc:
                raise errors.InvalidRequest(str(exc)) from None
        return {"loaded": loaded}

    # --- removing -----------------------------------------------------------------

    def remove(self, reference: str, *, force: bool = False) -> models.RemoveResult:
        """Untag ``reference`` (an image ID: every tag of it), then collect what
        nothing reaches any more. Conflict when it is the last tag of an image a
        container uses, unless ``force`` (the content stays while the container does)."""
        from reconciler.images.store import ImageError

        with self._hold(reference), self._store_lock.exclusive():
            self._resolve(reference)
            try:
                untagged = self._store().remove(reference, in_use=() if force else self._in_use())
            except ImageError as exc:
                if "used by a container" in str(exc):
                    raise errors.Conflict(str(exc)) from None
                raise _image_error(exc) from None
            counts = self._collect()
        return {
            "untagged": untagged,
            "blobs": counts["blobs"],
            "snapshots": counts["snapshots"],
            "bytes_freed": counts["bytes_freed"],
        }

    def prune(self, *, all: bool = False) -> models.PruneResult:
        """Collect what no tag and no container reaches; with ``all``, first untag
        every image no container uses (``docker image prune -a``)."""
        untagged: list[str] = []
        with self._store_lock.exclusive():
            store = self._store()
            if all:
                in_use = self._in_use()
                for name, digest in store.images().items():
                    if digest not in in_use:
                        untagged += store.remove(name)
            counts = self._collect()
        return {
            "untagged": untagged,
            "blobs": counts["blobs"],
            "snapshots": counts["snapshots"],
            "ingests": counts["ingests"],
            "bytes_freed": counts["bytes_freed"],
        }

    # last: a method named list makes ``list[...]`` below it a mypy error
    def list(self) -> list[models.ImageSummary]:
        """Every tag, by name. A tag whose image cannot be read is listed with ``error``."""
        from reconciler.images.store import ImageError

        store = self._store()
        rows: list[models.ImageSummary] = []
        for name, digest in store.images().items():
            try:
                image = store.image_by_digest(digest, verify=False)
            except ImageError as exc:
                repository, tag = _split(name)
                rows.append(
                    {
                        "repository": repository,
                        "tag": tag,
                        "id": "",
                        "digest": digest,
                        "created": "",
                        "size": 0,
                        "error": str(exc),
                    }
                )
                continue
            rows.append(self._summary(name, image))
        return rows
