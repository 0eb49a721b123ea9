"""``GET /events``: Docker's event stream (JSON lines in a chunked 200).

Three sources, merged in time order:

* what the Docker API itself did: handlers call ``emit(context, type, action, id,
  attributes)`` (an image pulled, pushed, built and tagged, untagged, deleted,
  loaded, imported; a network or volume created or destroyed; the container modules
  may add what the level below cannot see: ``kill``, ``exec_*``, ``attach``, but
  not ``create``/``start``/``die``/``destroy``, which it gives). These are kept in an
  in-memory ring (``RING`` events), as dockerd keeps its own, so ``since`` replays
  them; they do not survive the agent.
* the engine's event log (``engine.events``, ``ROOT/events.jsonl``): every network,
  volume and image a reconcile pass created, changed or deleted (``object`` records)
  as a Docker event of its kind (``network/front`` created → network ``create``), and
  the containers it deleted (``destroy``);
* the containers themselves, by level: each container's recorded times are its
  ``create``, last ``start`` and last ``die`` (with ``exitCode``), and a stream that
  follows compares the engine's containers every ``POLL`` seconds (new: ``create``,
  a new start or exit, paused or unpaused, gone: ``destroy``). So every container is
  covered, whoever made it (the Docker API, the native CLI, a reconcile pass), and
  an exit nobody waited for is a ``die`` all the same; a restart between two looks
  shows as its last start and exit only.

``since`` replays past events from all three; ``until`` ends the stream at that time
(at once when it is past); without it the stream stays open until the client goes.
Filters, applied here (the CLI does no filtering of its own): ``type``, ``event``
(the action), ``container``, ``image``, ``network``, ``volume``, ``label``, ``scope``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import DockerError, filters
from reconciler.dockerapi.ids import docker_id
from reconciler.engine import errors

if TYPE_CHECKING:
    from reconciler.engine.core import Engine

log = logging.getLogger("reconcile.docker")

#: Events of the Docker API kept for ``since``.
RING = 1024
#: Seconds between looks at the engine's log, and at whether the client is still there.
POLL = 0.5
_STATE_KEY = "events"
_ACTIONS = {"created": ["create"], "updated": ["update"], "recreated": ["destroy", "create"], "deleted": ["destroy"]}
_KINDS = {"container", "image", "network", "volume"}
_FILTERS = {"type", "event", "container", "image", "network", "volume", "label", "scope"}


class Broker:
    """The ring of past events and the queues of the streams following them;
    ``publish`` may be called from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ring: collections.deque[dict[str, Any]] = collections.deque(maxlen=RING)
        self.listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = []
        self.sequence = itertools.count(1)

    def publish(self, event: dict[str, Any]) -> None:
        with self.lock:
            event["_seq"] = next(self.sequence)
            self.ring.append(event)
            listeners = list(self.listeners)
        for loop, queue in listeners:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(queue.put_nowait, event)

    def subscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
        """Start feeding ``queue``; the events so far (none is both in the answer and fed)."""
        with self.lock:
            self.listeners.append((asyncio.get_running_loop(), queue))
            return list(self.ring)

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with self.lock:
            self.listeners = [(loop, q) for loop, q in self.listeners if q is not queue]


def broker(context: DockerContext) -> Broker:
    found = context.state.get(_STATE_KEY)
    if found is None:
        found = context.state.setdefault(_STATE_KEY, Broker())
    assert isinstance(found, Broker)
    return found


def make_event(
    kind: str, action: str, actor: str, attributes: dict[str, str] | None = None, *, at_ns: int | None = None
) -> dict[str, Any]:
    """One event in Docker's shape (with the legacy ``status``/``id``/``from`` of
    container and image events, for old clients)."""
    nanos = at_ns if at_ns is not None else time.time_ns()
    event: dict[str, Any] = {
        "Type": kind,
        "Action": action,
        "Actor": {"ID": actor, "Attributes": dict(attributes or {})},
        "scope": "local",
        "time": nanos // 1_000_000_000,
        "timeNano": nanos,
    }
    if kind in ("container", "image"):
        event["status"] = action
        event["id"] = actor
        if kind == "container" and attributes and "image" in attributes:
            event["from"] = attributes["image"]
    return event


def emit(context: DockerContext, kind: str, action: str, actor: str, attributes: dict[str, str] | None = None) -> None:
    """Record what a Docker API handler did (any thread)."""
    broker(context).publish(make_event(kind, action, actor, attributes))


# --- the engine's log --------------------------------------------------------------


def from_log(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The Docker events of one engine log record (none for most records)."""
    if record.get("event") != "object":
        return []
    kind, _, name = str(record.get("key", "")).partition("/")
    actions = _ACTIONS.get(str(record.get("outcome", "")))
    if kind not in _KINDS or not actions or not name:
        return []
    attributes = {"name": name}
    if record.get("stack"):
        attributes["com.docker.stack.namespace"] = str(record["stack"])
    actor = docker_id({"name": name}) if kind == "container" else name
    nanos = int(float(record.get("time", 0)) * 1_000_000_000)
    events = []
    for action in actions:
        if kind == "container" and action != "destroy":
            continue  # what exists is told by the containers themselves
        if kind == "image" and action == "destroy":
            action = "delete"
        events.append(make_event(kind, action, actor, attributes, at_ns=nanos))
    return events


# --- containers, by level ---------------------------------------------------------------


def _nanos(seconds: Any) -> int | None:
    if not isinstance(seconds, int | float) or seconds <= 0:
        return None
    return int(seconds * 1_000_000_000)


def _container_attributes(row: dict[str, Any]) -> dict[str, str]:
    attributes = {str(k): str(v) for k, v in (row.get("labels") or {}).items()}
    attributes.update({"name": str(row["name"]), "image": str(row.get("image") or "")})
    return attributes


def snapshot(engine: Engine) -> dict[str, dict[str, Any]]:
    """The engine's containers by name (runs in the thread pool)."""
    return {row["name"]: dict(row) for row in engine.containers.list(all=True)}


def container_history(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """What each container's recorded times say happened to it."""
    found = []
    for row in rows.values():
        ident, attributes = docker_id(row), _container_attributes(row)
        created = _nanos(row.get("created"))
        if created is not None:
            found.append(make_event("container", "create", ident, attributes, at_ns=created))
        found += _runs(row, ident, attributes)
    return found


def _runs(row: dict[str, Any], ident: str, attributes: dict[str, str]) -> list[dict[str, Any]]:
    """The last start and, when it has exited since, the last exit."""
    found = []
    started = _nanos(row.get("started"))
    if started is not None:
        found.append(make_event("container", "start", ident, attributes, at_ns=started))
    finished = _nanos(row.get("finished"))
    if finished is not None and row.get("status") == "exited" and (started is None or finished >= started):
        died = {**attributes, "exitCode": str(row.get("exit_code") or 0)}
        found.append(make_event("container", "die", ident, died, at_ns=finished))
    return found


def container_changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The events between two looks at the containers."""
    found = []
    for name, row in after.items():
        ident, attributes = docker_id(row), _container_attributes(row)
        previous = before.get(name)
        if previous is None:
            found += container_history({name: row})
            continue
        for event in _runs(row, ident, attributes):
            key = "started" if event["Action"] == "start" else "finished"
            if row.get(key) != previous.get(key):
                found.append(event)
        if previous.get("status") != row.get("status") and "paused" in (previous.get("status"), row.get("status")):
            action = "pause" if row.get("status") == "paused" else "unpause"
            found.append(make_event("container", action, ident, attributes))
    for name in before.keys() - after.keys():
        row = before[name]
        found.append(make_event("container", "destroy", docker_id(row), _container_attributes(row)))
    return sorted(found, key=lambda event: event["timeNano"])


def _read_log(path: str, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete records appended to the engine's log from ``offset`` on, and the
    offset after them."""
    import json

    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return [], offset
    complete = chunk[: chunk.rfind(b"\n") + 1]
    records = []
    for line in complete.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records, offset + len(complete)


# --- filters and times ----------------------------------------------------------------


def parse_time(text: str | None, name: str) -> float | None:
    """Unix seconds (possibly fractional, as the CLI sends them) or RFC 3339."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise DockerError(400, f"{name}: not a time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def matches(event: dict[str, Any], wanted: dict[str, list[str]]) -> bool:
    kind = event["Type"]
    actor = event["Actor"]["ID"]
    attributes = event["Actor"]["Attributes"]
    name = attributes.get("name", "")
    if wanted.get("type") and kind not in wanted["type"]:
        return False
    if wanted.get("event") and event["Action"] not in wanted["event"]:
        return False
    if wanted.get("scope") and "local" not in wanted["scope"]:
        return False

    def names(kinds: tuple[str, ...], values: list[str]) -> bool:
        if kind not in kinds:
            return False
        return any(value in (actor, name) or (len(value) >= 4 and actor.startswith(value)) for value in values)

    for key in ("container", "network", "volume"):
        if wanted.get(key) and not names((key,), wanted[key]):
            return False
    if wanted.get("image"):
        image = attributes.get("image", "")
        if not (names(("image",), wanted["image"]) or (kind == "container" and image in wanted["image"])):
            return False
    for item in wanted.get("label", []):
        key, sep, value = item.partition("=")
        if key not in attributes or (sep and attributes[key] != value):
            return False
    return True


def _line(event: dict[str, Any]) -> bytes:
    import json

    return json.dumps({k: v for k, v in event.items() if k != "_seq"}).encode() + b"\n"


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def events(request: web.Request, context: DockerContext) -> web.StreamResponse:
    from reconciler.control.events import path as log_path

    wanted = filters(request)
    unknown = set(wanted) - _FILTERS
    if unknown:
        raise DockerError(400, f"invalid filter '{sorted(unknown)[0]}'")
    since = parse_time(request.query.get("since"), "since")
    until = parse_time(request.query.get("until"), "until")
    now = time.time()
    if since is not None and until is not None and since > until:
        raise DockerError(400, "since is after until")

    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    hub = broker(context)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    past = hub.subscribe(queue)
    try:
        path = log_path(context.engine.config.root)
        records, offset = await context.call(_read_log, path, 0)
        # containers are looked at only when the filters can let one of their events through
        watch = not wanted.get("type") or "container" in wanted["type"]
        containers = await context.call(snapshot, context.engine) if watch else {}
        history: list[dict[str, Any]] = list(past) + container_history(containers)
        for record in records:
            history.extend(from_log(record))
        history.sort(key=lambda event: event["timeNano"])
        await response.prepare(request)

        def wanted_at(event: dict[str, Any]) -> bool:
            seconds = event["timeNano"] / 1e9
            if since is not None and seconds < since:
                return False
            if until is not None and seconds > until:
                return False
            return matches(event, wanted)

        if since is not None:
            for event in history:
                if wanted_at(event):
                    await response.write(_line(event))
        if until is not None and until <= now:
            await response.write_eof()
            return response
        last_poll = time.monotonic()
        while not _gone(request):
            timeout = POLL
            if until is not None:
                left = until - time.time()
                if left <= 0:
                    break
                timeout = min(timeout, left)
            with contextlib.suppress(TimeoutError):
                event = await asyncio.wait_for(queue.get(), timeout)
                if wanted_at(event):
                    await response.write(_line(event))
            if time.monotonic() - last_poll >= POLL:
                last_poll = time.monotonic()
                records, offset = await context.call(_read_log, path, offset)
                found = []
                if watch:
                    try:
                        now_containers = await context.call(snapshot, context.engine)
                    except errors.EngineError as exc:  # the state unreadable a moment: the next look tells
                        log.warning("events: containers not read: %s", exc.message)
                    else:
                        found = container_changes(containers, now_containers)
                        containers = now_containers
                for record in records:
                    found.extend(from_log(record))
                for event in found:
                    if wanted_at(event):
                        await response.write(_line(event))
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await response.write_eof()
        return response
    except (ConnectionResetError, BrokenPipeError):
        return response  # the client went away
    finally:
        hub.unsubscribe(queue)


ROUTES: Routes = [
    ("GET", "/events", events),
]
