"""``RemoteImages``: ``engine.models.images.ImagesAPI`` over HTTP to an agent.

Files travel as the route table says (``wire.routes.images``): a tarball or archive
to import or load is sent as it is; a build context directory is sent as a tar the
client writes to a temporary file first (the agent's builder applies
``.containerignore``/``.dockerignore``, so the whole directory goes); ``save``
downloads into a file next to its destination, renamed into place when complete.
Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from reconciler.engine import errors
from reconciler.engine.models import images as models

if TYPE_CHECKING:
    from reconciler.client.transport import Transport

#: Where a Containerfile from outside the context travels inside the context tar.
OUTSIDE_CONTAINERFILE = ".reconcile-containerfile"


def _arguments(**kwargs: Any) -> dict[str, Any]:
    """The arguments that were given (None is the route's default)."""
    return {key: value for key, value in kwargs.items() if value is not None}


@contextlib.contextmanager
def context_tar(context: str, containerfile: str | None) -> Iterator[tuple[str, str | None]]:
    """The directory ``context`` as a tar in a temporary file (removed afterwards),
    and the Containerfile's path as the agent will see it: relative to the context.
    A Containerfile outside the context is added to the tar under
    ``OUTSIDE_CONTAINERFILE``."""
    if not os.path.isdir(context):
        raise errors.InvalidRequest(f"build context {context} is not a directory")
    root = os.path.realpath(context)
    shipped = containerfile
    outside: str | None = None
    if containerfile is not None and os.path.isabs(containerfile):
        relative = os.path.relpath(os.path.realpath(containerfile), root)
        if relative.startswith(".."):
            outside, shipped = containerfile, OUTSIDE_CONTAINERFILE
        else:
            shipped = relative
    handle, path = tempfile.mkstemp(prefix="reconcile-context-", suffix=".tar")
    try:
        with os.fdopen(handle, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(os.listdir(root)):
                tar.add(os.path.join(root, name), arcname=name)
            if outside is not None:
                try:
                    tar.add(outside, arcname=OUTSIDE_CONTAINERFILE, recursive=False)
                except OSError as exc:
                    raise errors.InvalidRequest(f"cannot read {outside}: {exc.strerror}") from None
        yield path, shipped
    finally:
        os.unlink(path)


class RemoteImages:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def inspect(self, reference: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.transport.call("images.inspect", reference=reference))

    def history(self, reference: str) -> list[models.HistoryEntry]:
        return cast(list[models.HistoryEntry], self.transport.call("images.history", reference=reference))

    def fsck(self) -> models.FsckResult:
        return cast(models.FsckResult, self.transport.call("images.fsck"))

    def pull(
        self, reference: str, *, platform: str | None = None, progress: models.Progress | None = None
    ) -> models.ImageSummary:
        result = self.transport.progress(
            "images.pull", progress=progress, **_arguments(reference=reference, platform=platform)
        )
        return cast(models.ImageSummary, result)

    def push(self, reference: str, *, progress: models.Progress | None = None) -> models.PushResult:
        return cast(models.PushResult, self.transport.progress("images.push", progress=progress, reference=reference))

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
        with context_tar(context, containerfile) as (tar, shipped):
            try:
                result = self.transport.progress(
                    "images.build",
                    progress=progress,
                    context=tar,
                    **_arguments(
                        tags=tags or None,
                        containerfile=shipped,
                        build_args=build_args or None,
                        target=target,
                        no_cache=no_cache or None,
                    ),
                )
            except errors.EngineError as exc:
                if containerfile is None or shipped != OUTSIDE_CONTAINERFILE:
                    raise
                # errors name the Containerfile as the caller did, not as it travelled
                message = exc.message.replace(OUTSIDE_CONTAINERFILE, containerfile)
                raise type(exc)(message, exit_code=exc.exit_code) from None
        return cast(models.BuildResult, result)

    def import_tarball(self, tarball: str, reference: str | None = None) -> models.ImageSummary:
        self._readable(tarball)
        result = self.transport.call("images.import_tarball", tarball=tarball, **_arguments(reference=reference))
        return cast(models.ImageSummary, result)

    def save(
        self,
        references: list[str],
        *,
        format: models.ArchiveFormat = "oci-archive",
        destination: str | None = None,
    ) -> str:
        if destination is None:
            handle, destination = tempfile.mkstemp(prefix="reconcile-save-", suffix=".tar")
            os.close(handle)
        directory = os.path.dirname(os.path.abspath(destination))
        handle, partial = tempfile.mkstemp(prefix=".reconcile-save-", suffix=".tar", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                self.transport.download("images.save", out, references=list(references), format=format)
            os.replace(partial, destination)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        return destination

    def load(self, archive: str, *, tag: str | None = None) -> models.LoadResult:
        self._readable(archive)
        return cast(models.LoadResult, self.transport.call("images.load", archive=archive, **_arguments(tag=tag)))

    def tag(self, source: str, target: str) -> models.TagResult:
        return cast(models.TagResult, self.transport.call("images.tag", source=source, target=target))

    def remove(self, reference: str, *, force: bool = False) -> models.RemoveResult:
        return cast(models.RemoveResult, self.transport.call("images.remove", reference=reference, force=force))

    def prune(self, *, all: bool = False) -> models.PruneResult:
        return cast(models.PruneResult, self.transport.call("images.prune", all=all))

    @staticmethod
    def _readable(path: str) -> None:
        """A local file the transport can send (its errors are the caller's, not the agent's)."""
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise errors.InvalidRequest(f"cannot read {path}: {exc.strerror}") from None

    # last: a method named list makes ``list[...]`` below it a mypy error
    def list(self) -> list[models.ImageSummary]:
        return cast(list[models.ImageSummary], self.transport.call("images.list"))
