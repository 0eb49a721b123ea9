"""Images: what ``images``, ``pull``, ``build``, ``save``/``load`` and friends give.

References are written as users type them (``busybox``, ``busybox:1``,
``127.0.0.1:5000/tools/busybox:1``, ``busybox@sha256:…``); a source reference may
also be an image ID (``sha256:…``, or 12 or more of its hex digits).

Progress events (the ``progress`` callback of ``pull``, ``push`` and ``build``) are
dicts shaped like Docker's JSON messages:

* a blob moving: ``{"id": "3f4a5b6c7d8e", "digest": "sha256:…", "phase":
  "downloading", "status": "Downloading", "current": 1048576, "total": 2097152}``;
  ``phase`` is one of exists, downloading, done, unpacking, unpacked, mounted,
  uploading; ``status`` is its label as Docker writes it;
* a line of a build's output: ``{"status": "line", "text": "STEP 2/5: RUN …"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NotRequired, Protocol, TypedDict

ArchiveFormat = Literal["oci-archive", "docker-archive"]
Progress = Callable[[dict[str, Any]], None]


class ImageSummary(TypedDict):
    """One row of ``images``: one tag. An image left without a tag (``import``
    without a name) has repository and tag ``<none>``. A tag whose image cannot be
    read (a blob missing or corrupt) is listed with ``error`` set, ``id`` and
    ``digest`` as far as known, and size 0."""

    repository: str
    tag: str
    id: str  # the config digest, as Docker's image ID
    digest: str  # the manifest digest
    created: str  # RFC 3339, as the image config says ("" when it does not)
    size: int  # bytes of its (compressed) layers
    error: NotRequired[str]


class PushResult(TypedDict):
    reference: str  # as stored: busybox → busybox:latest
    digest: str  # the manifest digest the registry stored


class BuildResult(TypedDict):
    id: str
    digest: str
    tags: list[str]


class HistoryEntry(TypedDict, total=False):
    """One step of how an image was made, newest first (the image config's history)."""

    created: str
    created_by: str
    author: str
    comment: str
    empty_layer: bool


class TagResult(TypedDict):
    reference: str  # the new name, as stored
    id: str
    digest: str


class RemoveResult(TypedDict):
    untagged: list[str]
    blobs: int  # blobs deleted because nothing reaches them any more
    snapshots: int  # unpacked layers deleted
    bytes_freed: int


class PruneResult(TypedDict):
    untagged: list[str]  # with all=True: tags of images no container uses
    blobs: int
    snapshots: int
    ingests: int  # stale half-written blobs
    bytes_freed: int


class LoadResult(TypedDict):
    loaded: list[str]  # the names tagged, then the IDs of images left unnamed


class FsckResult(TypedDict):
    problems: list[str]  # empty: every blob matches its digest and every tag is complete


class ImagesAPI(Protocol):
    """What every front end may do to images.

    Lifecycle: an image enters the store by ``pull``, ``build``, ``import_tarball``
    or ``load``, and is named by tags (``tag``); ``remove`` drops a tag, and with the
    last tag of an image whose content nothing else uses, that content; ``prune``
    collects what no tag and no container reaches. An image a container was made
    from keeps its last tag and its content until the container is removed
    (``remove(force=True)`` drops the tag anyway; the content stays).

    Errors: an unknown image is ``NotFound``; removing one a container uses,
    ``Conflict``; a malformed reference or a corrupt tarball or archive,
    ``InvalidRequest``; a registry that cannot be reached, ``Unavailable``; one
    that refuses the credentials, ``InvalidRequest``."""

    def inspect(self, reference: str) -> dict[str, Any]: ...

    def history(self, reference: str) -> list[HistoryEntry]: ...

    def pull(self, reference: str, *, platform: str | None = None, progress: Progress | None = None) -> ImageSummary:
        """Fetch ``reference`` from its registry and tag it; ``platform`` is
        ``os/arch[/variant]`` (default: this host's)."""
        ...

    def push(self, reference: str, *, progress: Progress | None = None) -> PushResult: ...

    def build(
        self,
        context: str,
        *,
        tags: list[str] | None = None,
        containerfile: str | None = None,
        build_args: list[str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        progress: Progress | None = None,
    ) -> BuildResult:
        """Build the Containerfile in the directory ``context``. ``containerfile``
        is relative to the context (default: its Containerfile, else Dockerfile);
        an absolute path is the caller's own file (a remote client ships it with
        the context). ``build_args`` are ``KEY=VALUE`` (the caller resolves a bare
        ``KEY`` from its environment, as docker's CLI does). Base images missing
        from the store are pulled."""
        ...

    def import_tarball(self, tarball: str, reference: str | None = None) -> ImageSummary:
        """A root filesystem tarball (plain, gzip or zstd) as a one-layer image."""
        ...

    def save(
        self, references: list[str], *, format: ArchiveFormat = "oci-archive", destination: str | None = None
    ) -> str:
        """Write the images to one archive at ``destination`` (default: a new
        temporary file, which the caller then owns and deletes); its path."""
        ...

    def load(self, archive: str, *, tag: str | None = None) -> LoadResult:
        """Load every image of an oci-archive or docker-archive; ``tag`` names
        what the archive leaves unnamed (a repository, or ``repo:tag``)."""
        ...

    def tag(self, source: str, target: str) -> TagResult: ...

    def remove(self, reference: str, *, force: bool = False) -> RemoveResult: ...

    def prune(self, *, all: bool = False) -> PruneResult: ...

    def fsck(self) -> FsckResult: ...

    # last: a method named list makes ``list[...]`` below it a mypy error
    def list(self) -> list[ImageSummary]: ...
