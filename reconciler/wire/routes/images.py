"""Images over HTTP (``engine.models.images``).

A reference contains slashes (``127.0.0.1:5000/tools/busybox:1``), which a ``{name}``
placeholder cannot hold, so single-image operations take it in the query
(``GET /v1/images/inspect?reference=busybox:1``).

Bodies that are files:

* ``build`` is a ``progress`` route whose request body is the build context as a tar
  (``application/x-tar``): the server spools it, extracts it to a temporary
  directory, passes that directory as ``context``, and removes it when the build
  ends. ``.containerignore``/``.dockerignore`` are applied by the builder, so the
  client sends the whole directory; a Containerfile outside the context travels
  inside the tar (see ``client.images``).
* ``import`` and ``load`` are ``upload`` routes: the tarball or archive is spooled to
  a file whose path is the ``tarball`` or ``archive`` argument.
* ``save`` is a ``download`` route: the server calls ``save(references, format=…)``
  without ``destination``, which writes a temporary file and returns its path; the
  server streams it back and deletes it.
"""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/images", "images.list", result="list[images.ImageSummary]", summary="list images, one row a tag"),
    Route(
        "GET",
        "/v1/images/inspect",
        "images.inspect",
        query=(("reference", "str"),),
        result="dict",
        summary="an image's configuration (Docker's inspect shape)",
    ),
    Route(
        "GET",
        "/v1/images/history",
        "images.history",
        query=(("reference", "str"),),
        result="list[images.HistoryEntry]",
        summary="how an image was made, newest step first",
    ),
    Route(
        "POST",
        "/v1/images/pull",
        "images.pull",
        kind="progress",
        query=(("reference", "str"), ("platform", "str")),
        result="images.ImageSummary",
        summary="pull an image from its registry; progress per blob",
    ),
    Route(
        "POST",
        "/v1/images/push",
        "images.push",
        kind="progress",
        query=(("reference", "str"),),
        result="images.PushResult",
        summary="push an image to the registry its name says; progress per blob",
    ),
    Route(
        "POST",
        "/v1/images/build",
        "images.build",
        kind="progress",
        query=(
            ("tags", "list"),
            ("containerfile", "str"),
            ("build_args", "list"),
            ("target", "str"),
            ("no_cache", "bool"),
        ),
        body=("context", "application/x-tar"),
        result="images.BuildResult",
        summary="build an image from a context tar; progress carries the build's output lines",
    ),
    Route(
        "POST",
        "/v1/images/import",
        "images.import_tarball",
        kind="upload",
        query=(("reference", "str"),),
        body=("tarball", "application/x-tar"),
        result="images.ImageSummary",
        status=201,
        summary="a root filesystem tarball as a one-layer image",
    ),
    Route(
        "POST",
        "/v1/images/load",
        "images.load",
        kind="upload",
        query=(("tag", "str"),),
        body=("archive", "application/x-tar"),
        result="images.LoadResult",
        summary="load the images of an oci-archive or docker-archive",
    ),
    Route(
        "GET",
        "/v1/images/save",
        "images.save",
        kind="download",
        query=(("references", "list"), ("format", "str")),
        summary="images as one archive (oci-archive or docker-archive)",
    ),
    Route(
        "POST",
        "/v1/images/tag",
        "images.tag",
        query=(("source", "str"), ("target", "str")),
        result="images.TagResult",
        status=201,
        summary="give an image another name",
    ),
    Route(
        "DELETE",
        "/v1/images",
        "images.remove",
        query=(("reference", "str"), ("force", "bool")),
        result="images.RemoveResult",
        summary="untag an image and remove what nothing else uses",
    ),
    Route(
        "POST",
        "/v1/images/prune",
        "images.prune",
        query=(("all", "bool"),),
        result="images.PruneResult",
        summary="remove blobs and layers no image or container uses (all: also unused images)",
    ),
    Route(
        "GET",
        "/v1/images/fsck",
        "images.fsck",
        result="images.FsckResult",
        summary="verify every blob against its digest and every tag's content",
    ),
)
