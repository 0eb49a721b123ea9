"""Route → handler: each route of the table calls the engine method it names, in a
worker thread (engine operations block: syscalls, SQLite, subprocesses), so a long
pull or build never blocks other requests.

Names in paths are checked here, once for every route: a DNS-label-like name, no
slashes, no ``..`` (a name is a directory under the engine's root).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from reconciler.api import models
from reconciler.api.coalesce import Coalescer
from reconciler.engine import errors
from reconciler.engine.core import Engine
from reconciler.wire.route import Route, parse_query

#: Names of objects in paths: Docker's container-name grammar.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

#: Integers in queries are 64-bit, as in the OpenAPI document: a larger one would
#: overflow where the engine hands it to C (a deque's length, a syscall).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

#: How long a stream's first item is awaited before its headers go out anyway: an
#: error at the start (no such container) still gets its status, and ``logs -f`` of
#: a quiet container still answers at once.
FIRST_ITEM_WAIT = 0.2

#: Uploads are read in pieces of this size.
CHUNK = 1 << 16

_END = object()


class Context:
    """What every handler needs: the engine, the thread pool, the limits."""

    def __init__(self, engine: Engine, executor: Executor, *, max_body: int, max_upload: int) -> None:
        self.engine = engine
        self.executor = executor
        self.max_body = max_body
        self.max_upload = max_upload
        #: identical concurrent reads (GET json routes) share a computation
        self.reads = Coalescer()

    async def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: function(*args, **kwargs))

    def method(self, op: str) -> Callable[..., Any]:
        group, name = op.split(".")
        return getattr(getattr(self.engine, group), name)  # type: ignore[no-any-return]


def check_name(name: str, what: str = "name") -> str:
    if not NAME.match(name):
        raise errors.InvalidRequest(f"invalid {what} {name!r}: use letters, digits, '_', '.', '-' (no slashes)")
    return name


def required_query(route: Route, function: Callable[..., Any]) -> frozenset[str]:
    """The query parameters of ``route`` its method cannot do without (no default):
    a request without one is refused (400) instead of failing in the call."""
    parameters = inspect.signature(function).parameters
    return frozenset(
        name for name, _ in route.query if name in parameters and parameters[name].default is inspect.Parameter.empty
    )


def _query(request: web.Request, route: Route, required: frozenset[str] = frozenset()) -> dict[str, Any]:
    found: dict[str, Any] = {}
    missing = sorted(required - set(request.query))
    if missing:
        raise errors.InvalidRequest(f"required query parameter missing: {', '.join(missing)}")
    for name, kind in route.query:
        if name not in request.query:
            continue
        if kind == "list":
            found[name] = list(request.query.getall(name))
            continue
        try:
            value = parse_query(request.query[name], kind)
            if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
                raise ValueError("out of range")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("not finite")
        except ValueError:
            raise errors.InvalidRequest(
                f"query parameter {name}: not a valid {kind}: {request.query[name]!r}"
            ) from None
        found[name] = value
    return found


async def json_body(request: web.Request, model: str) -> Any:
    if not request.can_read_body:
        raise errors.InvalidRequest(f"a JSON body ({model}) is required")
    raw = await request.read()
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise errors.InvalidRequest(f"malformed JSON: {exc}") from None
    try:
        return models.adapter(model).validate_python(document)
    except ValidationError as exc:
        raise errors.InvalidRequest(f"invalid {model.rpartition('.')[2]}: {models.error_text(exc.errors())}") from None


async def spool(request: web.Request, context: Context, directory: str) -> str:
    """The request body into a file under ``directory`` (at most ``max_upload``
    bytes); its path. A client that goes away mid-upload leaves nothing behind (the
    caller removes ``directory``)."""
    path = os.path.join(directory, "upload")
    size = 0
    with open(path, "wb") as handle:
        while chunk := await request.content.read(CHUNK):
            size += len(chunk)
            if size > context.max_upload:
                raise errors.TooLarge(f"upload larger than the limit of {context.max_upload} bytes")
            handle.write(chunk)
    return path


def extract(archive: str, directory: str) -> str:
    """A tar of a directory (a build context, a manifest set) unpacked safely: no
    absolute paths, no ``..``, no links out, no devices (tarfile's ``data`` filter)."""
    target = os.path.join(directory, "tree")
    os.mkdir(target)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise errors.InvalidRequest(f"the uploaded tar could not be read: {exc}") from None
    return target


def bind(route: Route, context: Context) -> Callable[[web.Request], Any]:
    """The aiohttp handler of ``route``."""
    function = context.method(route.op)
    required = required_query(route, function)
    # A GET of kind json only reads: identical ones in flight together share one
    # call, never one started before the request arrived (see coalesce.py).
    shared = route.method == "GET" and route.kind == "json" and route.body is None
    kept: dict[tuple[str, str], tuple[Any, str]] = {}  # request → (the result's cache_key, its JSON)

    async def handle(request: web.Request) -> web.StreamResponse:
        kwargs = {name: check_name(request.match_info[name], name) for name in route.placeholders()}
        kwargs.update(_query(request, route, required))
        scratch: str | None = None
        try:
            if route.body is not None:
                argument, model = route.body
                if "/" in model:  # a media type: spooled (and a tar of a directory, extracted)
                    scratch = tempfile.mkdtemp(prefix="upload-", dir=context.engine.config.root)
                    path = await spool(request, context, scratch)
                    if model == "application/x-tar" and argument in ("directory", "context"):
                        path = await context.call(extract, path, scratch)
                    kwargs[argument] = path
                else:
                    kwargs[argument] = await json_body(request, model)
            if shared:
                key = (route.op, json.dumps(kwargs, sort_keys=True))
                # serialized once per call, in the worker thread, not per request on the loop
                text = await context.reads.run(key, lambda: context.call(_dumped, function, kwargs, key, kept))
                return web.Response(text=text, status=route.status, content_type="application/json")
            if route.kind in ("json", "upload"):
                result = await context.call(function, **kwargs)
                return web.json_response(result, status=route.status)
            if route.kind == "lines":
                return await stream_lines(request, context, function, kwargs)
            if route.kind == "progress":
                return await stream_progress(request, context, function, kwargs)
            if route.kind == "download":
                return await download(request, context, function, kwargs)
            raise errors.Internal(f"route {route.op}: kind {route.kind} has no generic handler")
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    handle.__name__ = route.op.replace(".", "_")
    return handle


def _dumped(
    function: Callable[..., Any], kwargs: dict[str, Any], key: tuple[str, str], kept: dict[tuple[str, str], Any]
) -> str:
    """``function``'s result as the JSON ``web.json_response`` would send; a result
    with a ``cache_key`` (``engine.models.keyed``) equal to the last one's for this
    request is the same, and its JSON is reused (300 containers: 4 ms saved a request)."""
    result = function(**kwargs)
    cache_key = getattr(result, "cache_key", None)
    if cache_key is not None:
        last = kept.get(key)
        if last is not None and last[0] == cache_key:
            return str(last[1])
    text = json.dumps(result)
    if cache_key is not None:
        kept[key] = (cache_key, text)
    return text


def _line(item: Any) -> bytes:
    return json.dumps(item).encode() + b"\n"


async def stream_lines(
    request: web.Request, context: Context, function: Callable[..., Any], kwargs: dict[str, Any]
) -> web.StreamResponse:
    iterator: Iterator[Any] = await context.call(lambda: iter(function(**kwargs)))
    loop = asyncio.get_running_loop()
    pending = loop.run_in_executor(context.executor, next, iterator, _END)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(pending), FIRST_ITEM_WAIT)  # an early error gets its status
    if pending.done() and pending.exception() is not None:
        raise pending.exception()  # type: ignore[misc]
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        while True:
            try:
                item = await pending
            except errors.EngineError as exc:
                await response.write(_line({"error": exc.to_wire()}))
                break
            if item is _END:
                break
            await response.write(_line(item))
            pending = loop.run_in_executor(context.executor, next, iterator, _END)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the client went away mid-stream
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            # after the item being waited for: a generator cannot close while running
            pending.add_done_callback(lambda _: context.executor.submit(close))
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def stream_progress(
    request: web.Request, context: Context, function: Callable[..., Any], kwargs: dict[str, Any]
) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    batch = _Batch(loop, queue)

    def progress(event: dict[str, Any]) -> None:
        batch.add(_line({"progress": event}))

    def work() -> None:
        try:
            result = function(progress=progress, **kwargs)
            batch.flush()
            loop.call_soon_threadsafe(queue.put_nowait, _line({"result": result}))
        except errors.EngineError as exc:
            batch.flush()
            loop.call_soon_threadsafe(queue.put_nowait, _line({"error": exc.to_wire()}))
        except Exception as exc:
            import logging

            logging.getLogger("reconcile.api").exception("%s failed", request.path)
            failure = errors.Internal(f"internal error: {type(exc).__name__}")
            loop.call_soon_threadsafe(queue.put_nowait, _line({"error": failure.to_wire()}))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    job = loop.run_in_executor(context.executor, work)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    gone = False
    while (line := await queue.get()) is not None:
        if gone:
            continue  # the work goes on to its end (a pull half done is resumed next time)
        try:
            await response.write(line)
        except (ConnectionResetError, BrokenPipeError):
            gone = True
    await job
    if not gone:
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
    return response


class _Batch:
    """Progress lines from worker threads, handed to the event loop in batches: one
    wake-up of the loop per batch, not per line. A pull's four download threads
    report hundreds of times a second; a wake-up each (``call_soon_threadsafe``)
    cost the loop thread the GIL as often, slowing the very transfer it reports."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]) -> None:
        self._loop, self._queue = loop, queue
        self._lines: list[bytes] = []
        self._lock = threading.Lock()

    def add(self, line: bytes) -> None:
        with self._lock:
            self._lines.append(line)
            if len(self._lines) > 1:
                return  # a hand-over is already scheduled
        self._loop.call_soon_threadsafe(self._hand_over)

    def flush(self) -> None:
        """Schedule what is pending now (before the final line), in order."""
        self._loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            self._queue.put_nowait(b"".join(lines))


async def download(
    request: web.Request, context: Context, function: Callable[..., Any], kwargs: dict[str, Any]
) -> web.StreamResponse:
    path: str = await context.call(function, **kwargs)
    return await send_file(request, context.call, path)


async def send_file(request: web.Request, call: Callable[..., Awaitable[Any]], path: str) -> web.StreamResponse:
    """The tar at ``path`` as the response body, read in the worker pool (``call``);
    the file is removed afterwards, sent or not. Shared with the Docker API."""
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        response.content_length = os.path.getsize(path)
        await response.prepare(request)
        with open(path, "rb") as handle:
            while chunk := await call(handle.read, CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
