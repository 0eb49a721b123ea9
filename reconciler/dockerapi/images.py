"""Docker's image endpoints: list, pull (``POST /images/create``), inspect, history,
tag, remove, push, save (``/images/get``), load and prune, over ``engine.images``.

Names: clients send references as users typed them (docker-py) or fully qualified
(the CLI's ``pull``, ``tag`` and ``push``: ``docker.io/library/busybox``); the store
keys them the short way (``busybox:latest``), so every name is made ``familiar``
first. Image IDs (``sha256:<hex>``, or 12 or more of its hex digits) pass as they are.

Streams (pull, push, load) are JSON lines in a chunked 200, one object per line, as
moby writes them; an error once the stream has started is a last line
``{"errorDetail": {"message": m}, "error": m}``, which the CLI prints before exiting 1.
The helpers for them (``stream_lines``, ``error_line``) serve ``build`` too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime
import fnmatch
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.api.dispatch import send_file
from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import DockerError, boolean, filters, json_response, not_implemented
from reconciler.dockerapi.events import emit as emit_event
from reconciler.engine import errors
from reconciler.model.reference import Reference, parse_reference

if TYPE_CHECKING:
    from reconciler.engine.core import Engine

log = logging.getLogger("reconcile.docker")

Emit = Callable[[dict[str, Any]], None]

#: Docker Hub's names for itself: references on it are written without it.
HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")
_STEP_BAR = 50
#: Uploads (``load``) are read in pieces of this size.
CHUNK = 1 << 16
NONE = "<none>"


# --- names ------------------------------------------------------------------------


def familiar(reference: str) -> str:
    """``docker.io/library/busybox:1`` → ``busybox:1``; anything that does not parse
    is returned as it is (the engine then answers what is wrong with it)."""
    try:
        parsed = parse_reference(reference)
    except ValueError:
        return reference
    registry, repository = parsed.registry, parsed.repository
    if registry in HUB:
        registry = None
        if repository.startswith("library/") and repository.count("/") == 1:
            repository = repository.removeprefix("library/")
    return str(Reference(registry, repository, parsed.tag, parsed.digest))


def image_ref(name: str) -> str:
    """A name from a path or query, as the engine takes it."""
    if _IMAGE_ID.match(name):
        return name
    return familiar(name)


_HEX = re.compile(r"^(sha256:)?[0-9a-f]{1,64}$")


def resolve(engine: Engine, name: str) -> str:
    """``name`` as the engine takes it, an image ID prefix shorter than the engine
    accepts (Docker takes any unique prefix) made the full ID; NotFound as Docker
    says it. Runs in the thread pool."""
    reference = image_ref(name)
    try:
        engine.images.inspect(reference)
        return reference
    except errors.NotFound:
        if not _HEX.match(name):
            raise no_such_image(name) from None
    prefix = name.removeprefix("sha256:")
    found = {row["id"] for row in engine.images.list() if row["id"].removeprefix("sha256:").startswith(prefix)}
    if len(found) == 1:
        return found.pop()
    raise no_such_image(name)


def with_tag(reference: str) -> str:
    """``busybox`` → ``busybox:latest`` (a reference with a tag or digest is kept)."""
    last = reference.rsplit("/", 1)[-1]
    return reference if (":" in last or "@" in reference) else f"{reference}:latest"


def no_such_image(name: str) -> DockerError:
    return DockerError(404, f"No such image: {name}")


def unix_time(text: Any) -> int:
    """An RFC 3339 time (as image configs write it) in unix seconds; 0 when absent."""
    if not isinstance(text, str) or not text:
        return 0
    try:
        return int(datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text)).timestamp())
    except ValueError:
        return 0


def decode_auth(request: web.Request) -> dict[str, Any] | None:
    """``X-Registry-Auth``: base64url JSON (``{"username", "password", "serveraddress"}``
    or ``{"identitytoken"}``), padding optional; 400 when it is not that. The engine
    takes registry credentials from ``ROOT/auth.json`` and the Docker config, not per
    request, so the decoded value is only checked."""
    raw = request.headers.get("X-Registry-Auth", "").strip()
    if not raw:
        return None
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        document = json.loads(decoded) if decoded.strip() else {}
    except (binascii.Error, ValueError):
        raise DockerError(400, "X-Registry-Auth: not base64-encoded JSON") from None
    if not isinstance(document, dict):
        raise DockerError(400, "X-Registry-Auth: not a JSON object")
    return document


# --- JSON-line streams -----------------------------------------------------------------


def error_line(message: str) -> dict[str, Any]:
    return {"errorDetail": {"message": message}, "error": message}


def _encoded(item: dict[str, Any]) -> bytes:
    return json.dumps(item).encode() + b"\r\n"


async def stream_lines(
    request: web.Request, context: DockerContext, work: Callable[[Emit], None]
) -> web.StreamResponse:
    """Answer 200 at once and stream what ``work(emit)`` (run in the thread pool)
    emits, one JSON object per line, flushed as it comes; an error it raises is the
    last line. A client that goes away does not stop the work (a pull half done would
    only be done again)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def emit(item: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, _encoded(item))

    def job() -> None:
        try:
            work(emit)
        except (errors.EngineError, DockerError) as exc:
            emit(error_line(exc.message))
        except Exception as exc:
            log.exception("%s %s failed", request.method, request.path)
            emit(error_line(f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    running = loop.run_in_executor(context.executor, job)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    gone = False
    while (line := await queue.get()) is not None:
        if gone:
            continue
        try:
            await response.write(line)
        except (ConnectionResetError, BrokenPipeError):
            gone = True
    await running
    if not gone:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await response.write_eof()
    return response


def progress_bar(current: int, total: int) -> str:
    """Docker's display string: ``[=====>     ]  1.05MB/2.1MB``."""
    if total <= 0:
        return f"{_size(current)}"
    filled = min(_STEP_BAR, int(_STEP_BAR * current / total))
    bar = "=" * filled + (">" if filled < _STEP_BAR else "") + " " * max(0, _STEP_BAR - filled - 1)
    return f"[{bar}]  {_size(current)}/{_size(total)}"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{value:.3g}GB"  # pragma: no cover - the loop always returns


class BlobLines:
    """The engine's blob progress events as Docker's per-layer lines (``id`` = the
    first 12 hex digits of the blob). Blobs in ``hidden`` (the config) are not shown;
    with ``hide_first`` neither is the first blob reported (a pull fetches the config
    first, before any layer). Called from the transfer's worker threads."""

    def __init__(
        self,
        emit: Emit,
        words: dict[str, str],
        *,
        first_line: str,
        hidden: set[str] | None = None,
        hide_first: bool = False,
    ) -> None:
        self.emit = emit
        self.words = words
        self.first_line = first_line
        self.hidden = set(hidden or ())
        self.hide_first = hide_first
        self.seen: set[str] = set()
        self.downloaded: dict[str, str] = {}  # digest → id shown
        self.finished: set[str] = set()
        self.lock = threading.Lock()

    def complete(self, word: str) -> None:
        """``word`` for each layer downloaded but given no final line: the agent
        answers a pull before it unpacks (``EngineConfig.unpack_after_pull``), so no
        ``unpacked`` phase comes, and Docker's clients expect "Pull complete"."""
        with self.lock:
            for digest, ident in sorted(self.downloaded.items()):
                if digest not in self.finished:
                    self.emit({"status": word, "progressDetail": {}, "id": ident})

    def __call__(self, event: dict[str, Any]) -> None:
        digest = str(event.get("digest", ""))
        phase = str(event.get("phase", ""))
        with self.lock:
            if self.hide_first and not self.seen and not self.hidden:
                self.hidden.add(digest)
            if digest in self.hidden:
                return
            ident = str(event.get("id") or digest.removeprefix("sha256:")[:12])
            if digest not in self.seen:
                self.seen.add(digest)
                if phase != "exists":
                    self.emit({"status": self.first_line, "progressDetail": {}, "id": ident})
            if phase == "done":
                self.downloaded[digest] = ident
            elif phase == "unpacked":
                self.finished.add(digest)
            word = self.words.get(phase)
            if word is None:
                return
            current, total = int(event.get("current") or 0), int(event.get("total") or 0)
            line: dict[str, Any] = {"status": word, "progressDetail": {}, "id": ident}
            if phase in ("downloading", "uploading", "unpacking"):
                line["progressDetail"] = {"current": current, "total": total}
                line["progress"] = progress_bar(current, total)
            self.emit(line)


PULL_WORDS = {
    "exists": "Already exists",
    "downloading": "Downloading",
    "done": "Download complete",
    "unpacking": "Extracting",
    "unpacked": "Pull complete",
}
PUSH_WORDS = {
    "exists": "Layer already exists",
    "uploading": "Pushing",
    "done": "Pushed",
    "mounted": "Mounted from another repository",
}


# --- documents ------------------------------------------------------------------------


def _config_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """An image config's ``config`` with the keys Docker always writes."""
    document: dict[str, Any] = {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "ExposedPorts": None,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": None,
        "Cmd": None,
        "Image": "",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
    }
    document.update(config)
    return document


def inspect_document(engine_doc: dict[str, Any], request: web.Request | None = None) -> dict[str, Any]:
    """``GET /images/{name}/json``'s body from the engine's inspect."""
    config = _config_defaults(dict(engine_doc.get("Config") or {}))
    tags = [familiar(tag) for tag in engine_doc.get("RepoTags") or []]
    digests = sorted({familiar(d) for d in engine_doc.get("RepoDigests") or []})
    created = engine_doc.get("Created") or "1970-01-01T00:00:00Z"
    document: dict[str, Any] = {
        "Id": engine_doc["Id"],
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": "",
        "Created": created,
        "Container": "",
        "ContainerConfig": dict(config),
        "DockerVersion": "",
        "Author": "",
        "Config": config,
        "Architecture": engine_doc.get("Architecture") or "",
        "Os": engine_doc.get("Os") or "linux",
        "Size": int(engine_doc.get("Size") or 0),
        "VirtualSize": int(engine_doc.get("Size") or 0),
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "RootFS": engine_doc.get("RootFS") or {"Type": "layers", "Layers": []},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }
    return document


def _summaries(engine: Engine) -> list[dict[str, Any]]:
    """``GET /images/json``'s items, one per image ID (all its tags in ``RepoTags``)."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in engine.images.list():
        if row.get("error") or not row["id"]:
            continue  # an image that cannot be read: ``reconcile image fsck`` says why
        item = by_id.get(row["id"])
        if item is None:
            item = by_id[row["id"]] = {
                "Id": row["id"],
                "ParentId": "",
                "RepoTags": [],
                "RepoDigests": [],
                "Created": unix_time(row["created"]),
                "Size": row["size"],
                "VirtualSize": row["size"],
                "SharedSize": -1,
                "Labels": {},
                "Containers": -1,
            }
        if row["repository"] != NONE:
            name = familiar(f"{row['repository']}:{row['tag']}")
            item["RepoTags"].append(name)
            repository = name.rpartition(":")[0]
            digest = f"{repository}@{row['digest']}"
            if digest not in item["RepoDigests"]:
                item["RepoDigests"].append(digest)
    for ident, item in by_id.items():
        with contextlib.suppress(errors.EngineError):
            item["Labels"] = (engine.images.inspect(ident).get("Config") or {}).get("Labels") or {}
        item["RepoTags"].sort()
    return sorted(by_id.values(), key=lambda item: (-item["Created"], item["Id"]))


def _matches_reference(pattern: str, tag: str) -> bool:
    repository = tag.rpartition(":")[0]
    return fnmatch.fnmatchcase(tag, pattern) or fnmatch.fnmatchcase(repository, pattern)


def _label_matches(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _created_of(items: list[dict[str, Any]], name: str) -> int:
    """The creation time of the image ``name`` (a tag, an ID or a unique ID prefix) among ``items``."""
    wanted = familiar(name)
    prefix = name.removeprefix("sha256:")
    for item in items:
        if wanted in item["RepoTags"] or with_tag(wanted) in item["RepoTags"] or item["Id"] == name:
            return int(item["Created"])
    found = [item for item in items if _HEX.match(name) and item["Id"].removeprefix("sha256:").startswith(prefix)]
    if len(found) == 1:
        return int(found[0]["Created"])
    raise no_such_image(name)


def filter_images(items: list[dict[str, Any]], wanted: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Docker's ``reference``, ``dangling``, ``label``, ``before`` and ``since`` filters."""
    unknown = set(wanted) - {"reference", "dangling", "label", "before", "since"}
    if unknown:
        raise DockerError(400, f"invalid filter '{sorted(unknown)[0]}'")
    before = min((_created_of(items, name) for name in wanted.get("before", [])), default=None)
    since = max((_created_of(items, name) for name in wanted.get("since", [])), default=None)
    patterns = [familiar(pattern) for pattern in wanted.get("reference", [])]
    kept = []
    for item in items:
        if (before is not None and item["Created"] >= before) or (since is not None and item["Created"] <= since):
            continue
        if "dangling" in wanted:
            dangling = [v.lower() in ("true", "1") for v in wanted["dangling"]]
            if dangling and dangling[0] != (not item["RepoTags"]):
                continue
        if patterns:
            tags = [t for t in item["RepoTags"] if any(_matches_reference(p, t) for p in patterns)]
            if not tags:
                continue
            repositories = {tag.rpartition(":")[0] for tag in tags}
            digests = [d for d in item["RepoDigests"] if d.partition("@")[0] in repositories]
            item = {**item, "RepoTags": tags, "RepoDigests": digests}
        if wanted.get("label") and not _label_matches(item["Labels"] or {}, wanted["label"]):
            continue
        kept.append(item)
    return kept


# --- handlers --------------------------------------------------------------------------


async def list_images(request: web.Request, context: DockerContext) -> web.StreamResponse:
    wanted = filters(request)
    items = await context.call(_summaries, context.engine)
    return json_response(filter_images(items, wanted))


async def _inspect(context: DockerContext, name: str) -> dict[str, Any]:
    try:
        reference = await context.call(resolve, context.engine, name)
        return await context.call(context.engine.images.inspect, reference)
    except errors.NotFound:
        raise no_such_image(name) from None


async def inspect_image(request: web.Request, context: DockerContext) -> web.StreamResponse:
    name = request.match_info["name"]
    return json_response(inspect_document(await _inspect(context, name)))


async def history(request: web.Request, context: DockerContext) -> web.StreamResponse:
    name = request.match_info["name"]
    document = await _inspect(context, name)
    entries = await context.call(context.engine.images.history, document["Id"])
    layered = [entry for entry in entries if not entry.get("empty_layer")]
    rows = []
    for index, entry in enumerate(entries):
        size = 0
        if not entry.get("empty_layer") and len(layered) == 1:
            size = int(document.get("Size") or 0)  # the one layer is the whole image
        rows.append(
            {
                "Id": document["Id"] if index == 0 else "<missing>",
                "Created": unix_time(entry.get("created")),
                "CreatedBy": entry.get("created_by", ""),
                "Tags": [familiar(tag) for tag in document.get("RepoTags") or []] if index == 0 else None,
                "Size": size,
                "Comment": entry.get("comment", ""),
            }
        )
    if not rows:  # an image without history (imported): one row for its one layer
        rows.append(
            {
                "Id": document["Id"],
                "Created": unix_time(document.get("Created")),
                "CreatedBy": "",
                "Tags": [familiar(tag) for tag in document.get("RepoTags") or []],
                "Size": int(document.get("Size") or 0),
                "Comment": "",
            }
        )
    return json_response(rows)


async def tag_image(request: web.Request, context: DockerContext) -> web.StreamResponse:
    name = request.match_info["name"]
    repository = request.query.get("repo", "")
    if not repository:
        raise DockerError(400, "repository name (repo) is required")
    tag = request.query.get("tag") or "latest"
    target = familiar(f"{repository}:{tag}")
    try:
        parse_reference(target)
    except ValueError as exc:
        raise DockerError(400, str(exc)) from None
    try:
        reference = await context.call(resolve, context.engine, name)
        result = await context.call(context.engine.images.tag, reference, target)
    except errors.NotFound:
        raise no_such_image(name) from None
    emit_event(context, "image", "tag", result["id"], {"name": familiar(result["reference"])})
    return web.Response(status=201)


def _remove(context: DockerContext, name: str, force: bool) -> list[dict[str, str]]:
    engine = context.engine
    reference = resolve(engine, name)
    try:
        before = engine.images.inspect(reference)
    except errors.NotFound:
        raise no_such_image(name) from None
    result = engine.images.remove(reference, force=force)
    answer: list[dict[str, str]] = [{"Untagged": familiar(tag)} for tag in result["untagged"]]
    for tag in result["untagged"]:
        emit_event(context, "image", "untag", before["Id"], {"name": familiar(tag)})
    try:
        engine.images.inspect(before["Id"])
    except errors.NotFound:
        answer.append({"Deleted": before["Id"]})
        emit_event(context, "image", "delete", before["Id"], {"name": before["Id"]})
    return answer


async def remove_image(request: web.Request, context: DockerContext) -> web.StreamResponse:
    name = request.match_info["name"]
    answer = await context.call(_remove, context, name, boolean(request, "force"))
    return json_response(answer)


def _repository_path(reference: str) -> str:
    """``127.0.0.1:5000/tools/busybox:1`` → ``tools/busybox`` (``busybox`` → ``library/busybox``)."""
    parsed = parse_reference(reference)
    if parsed.registry is None and "/" not in parsed.repository:
        return f"library/{parsed.repository}"
    return parsed.repository


def _full_repository(reference: str) -> str:
    parsed = parse_reference(reference)
    registry = parsed.registry or "docker.io"
    repository = parsed.repository if parsed.registry or "/" in parsed.repository else f"library/{parsed.repository}"
    return f"{registry}/{repository}"


async def create_image(request: web.Request, context: DockerContext) -> web.StreamResponse:
    """``POST /images/create``: a pull (``fromImage``, ``tag``), or an import of a
    root filesystem tarball (``fromSrc=-`` with the tar as the body, ``repo``, ``tag``)."""
    decode_auth(request)
    if request.query.get("fromSrc"):
        return await _import(request, context)
    source = request.query.get("fromImage", "")
    if not source:
        raise DockerError(400, "fromImage or fromSrc is required")
    tag = request.query.get("tag", "")
    base = source
    if tag:
        parsed = _parse(source)
        base = str(Reference(parsed.registry, parsed.repository, None, None))
        base = f"{base}@{tag}" if tag.startswith("sha256:") else f"{base}:{tag}"
    reference = with_tag(familiar(base))
    parsed = _parse(reference)
    shown_tag = parsed.digest or parsed.tag or "latest"
    platform = request.query.get("platform") or None
    engine = context.engine

    def work(emit: Emit) -> None:
        try:
            previous = engine.images.inspect(reference)["Manifest"]["Digest"]
        except (errors.NotFound, errors.InvalidRequest, KeyError):
            previous = None
        emit({"status": f"Pulling from {_repository_path(reference)}", "id": shown_tag})
        lines = BlobLines(emit, PULL_WORDS, first_line="Pulling fs layer", hide_first=True)
        summary = engine.images.pull(reference, platform=platform, progress=lines)
        lines.complete("Pull complete")
        emit({"status": f"Digest: {summary['digest']}"})
        verdict = "Image is up to date for" if previous == summary["digest"] else "Downloaded newer image for"
        emit({"status": f"Status: {verdict} {reference}"})
        emit_event(context, "image", "pull", reference, {"name": reference})

    return await stream_lines(request, context, work)


def _parse(reference: str) -> Reference:
    try:
        return parse_reference(reference)
    except ValueError as exc:
        raise DockerError(400, str(exc)) from None


async def spool_body(request: web.Request, directory: str, name: str = "upload.tar") -> str:
    """The request body into ``directory/name``; its path."""
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        while chunk := await request.content.read(CHUNK):
            handle.write(chunk)
    return path


async def _import(request: web.Request, context: DockerContext) -> web.StreamResponse:
    if request.query["fromSrc"] != "-":
        raise DockerError(501, "not implemented: importing from a URL (send the tarball as the body, fromSrc=-)")
    repository = request.query.get("repo", "")
    reference = None
    if repository:
        reference = with_tag(
            familiar(f"{repository}:{request.query['tag']}" if request.query.get("tag") else repository)
        )
        _parse(reference)
    scratch = tempfile.mkdtemp(prefix="docker-import-", dir=context.engine.config.root)
    try:
        path = await spool_body(request, scratch)
        summary = await context.call(context.engine.images.import_tarball, path, reference)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    emit_event(context, "image", "import", summary["id"], {"name": reference or summary["id"]})
    return json_response({"status": summary["id"]})


async def push_image(request: web.Request, context: DockerContext) -> web.StreamResponse:
    decode_auth(request)
    name = request.match_info["name"]
    tag = request.query.get("tag", "")
    reference = familiar(f"{name}:{tag}" if tag else name)
    reference = with_tag(reference)
    parsed = _parse(reference)
    try:
        document = await context.call(context.engine.images.inspect, reference)
    except errors.NotFound:
        raise DockerError(404, f"An image does not exist locally with the tag: {familiar(name)}") from None
    engine = context.engine
    shown_tag = parsed.tag or "latest"

    def work(emit: Emit) -> None:
        emit({"status": f"The push refers to repository [{_full_repository(reference)}]"})
        lines = BlobLines(emit, PUSH_WORDS, first_line="Preparing", hidden={document["Id"]})
        result = engine.images.push(reference, progress=lines)
        emit({"status": f"{shown_tag}: digest: {result['digest']}"})
        emit({"progressDetail": {}, "aux": {"Tag": shown_tag, "Digest": result["digest"], "Size": 0}})
        emit_event(context, "image", "push", reference, {"name": reference})

    return await stream_lines(request, context, work)


async def _send_file(request: web.Request, context: DockerContext, path: str) -> web.StreamResponse:
    return await send_file(request, context.call, path)


async def _save(request: web.Request, context: DockerContext, names: list[str]) -> web.StreamResponse:
    if not names:
        raise DockerError(400, "no image to save (names=)")
    references = [await context.call(resolve, context.engine, name) for name in names]  # 404 before writing
    path = await context.call(context.engine.images.save, references, format="docker-archive")
    return await _send_file(request, context, path)


async def save_images(request: web.Request, context: DockerContext) -> web.StreamResponse:
    return await _save(request, context, list(request.query.getall("names", [])))


async def save_image(request: web.Request, context: DockerContext) -> web.StreamResponse:
    return await _save(request, context, [request.match_info["name"]])


async def load_images(request: web.Request, context: DockerContext) -> web.StreamResponse:
    """``POST /images/load``: a ``docker save`` (or OCI) archive as the body. Loading
    is all or nothing (the engine checks every blob before it tags), so a bad archive
    is a 400 before any output, as moby answers an error it has not streamed."""
    quiet = boolean(request, "quiet")
    scratch = tempfile.mkdtemp(prefix="docker-load-", dir=context.engine.config.root)
    try:
        path = await spool_body(request, scratch)
        if os.path.getsize(path) == 0:
            raise DockerError(400, "no archive in the request body")
        try:
            result = await context.call(context.engine.images.load, path)
        except errors.InvalidRequest as exc:
            raise DockerError(400, exc.message.replace(path, "the uploaded archive")) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = []
    for name in result["loaded"]:
        emit_event(context, "image", "load", name, {"name": familiar(name)})
        text = f"Loaded image ID: {name}" if name.startswith("sha256:") else f"Loaded image: {familiar(name)}"
        lines.append(_encoded({"stream": text + "\n"}))
    body = b"" if quiet and not lines else b"".join(lines)
    return web.Response(body=body, content_type="application/json")


_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def until_filter(values: list[str]) -> float | None:
    """Prune's ``until``: a Go duration before now (``24h``, ``1h30m``), unix seconds
    or an RFC 3339 time; the earliest of several. None without one."""
    found = []
    for value in values:
        if _DURATION.match(value):
            found.append(time.time() - sum(float(n) * _UNIT[unit] for n, unit in _DURATION_PART.findall(value)))
            continue
        try:
            found.append(float(value))
            continue
        except ValueError:
            pass
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise DockerError(
                400, f"invalid until filter {value!r}: a duration (24h), unix seconds or a time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        found.append(moment.timestamp())
    return min(found) if found else None


def _prune(engine: Engine, wanted: dict[str, list[str]]) -> dict[str, Any]:
    """Collect what no tag reaches; with ``dangling=false`` (``-a``) first untag every
    image no container uses, those created before ``until`` and with the ``label``s
    only, when given."""
    unsupported = set(wanted) - {"dangling", "until", "label"}
    if unsupported:
        raise DockerError(400, f"image prune: filter {sorted(unsupported)[0]!r} is not supported")
    dangling = wanted.get("dangling", ["true"])
    everything = bool(dangling) and dangling[0].lower() in ("false", "0")
    until = until_filter(wanted.get("until", []))
    labels = wanted.get("label", [])
    summaries = _summaries(engine)
    before = {item["Id"] for item in summaries}
    untagged: list[str] = []
    freed = 0
    if everything and (until is not None or labels):
        used = {str(row.get("image_id") or "") for row in engine.containers.list(all=True)}
        for item in summaries:
            if item["Id"] in used or (until is not None and item["Created"] >= until):
                continue
            if labels and not _label_matches(item["Labels"] or {}, labels):
                continue
            for tag in item["RepoTags"]:
                with contextlib.suppress(errors.NotFound, errors.Conflict):  # gone, or used meanwhile
                    removed = engine.images.remove(tag)
                    untagged += removed["untagged"]
                    freed += removed["bytes_freed"]
        everything = False
    result = engine.images.prune(all=everything)
    after = {item["Id"] for item in _summaries(engine)}
    deleted: list[dict[str, str]] = [{"Untagged": familiar(tag)} for tag in untagged + result["untagged"]]
    deleted += [{"Deleted": ident} for ident in sorted(before - after)]
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": freed + result["bytes_freed"]}


async def prune_images(request: web.Request, context: DockerContext) -> web.StreamResponse:
    wanted = filters(request)
    return json_response(await context.call(_prune, context.engine, wanted))


async def search(request: web.Request, context: DockerContext) -> web.StreamResponse:
    raise not_implemented("searching a registry (docker search)")


async def distribution(request: web.Request, context: DockerContext) -> web.StreamResponse:
    raise not_implemented("registry manifest lookups (GET /distribution/{name}/json)")


ROUTES: Routes = [
    ("GET", "/images/json", list_images),
    ("GET", "/images/search", search),
    ("GET", "/distribution/{name:.+}/json", distribution),
    ("POST", "/images/create", create_image),
    ("GET", "/images/get", save_images),
    ("POST", "/images/load", load_images),
    ("POST", "/images/prune", prune_images),
    ("GET", "/images/{name:.+}/json", inspect_image),
    ("GET", "/images/{name:.+}/history", history),
    ("GET", "/images/{name:.+}/get", save_image),
    ("POST", "/images/{name:.+}/tag", tag_image),
    ("POST", "/images/{name:.+}/push", push_image),
    ("DELETE", "/images/{name:.+}", remove_image),
]
