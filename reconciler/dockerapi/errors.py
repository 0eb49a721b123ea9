"""Docker's error bodies (``{"message": ...}`` with a meaningful status), and the
request helpers every handler shares: query booleans, ``filters``, JSON bodies.

The CLI branches on statuses (404 on create starts a pull, 304 on start/stop of a
container already there), so they matter as much as the text."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reconciler.engine import errors

log = logging.getLogger("reconcile.docker")

#: moby's ``httputils.BoolValue``: these (lowercased) are false, anything else true.
_FALSE = {"", "0", "no", "false", "none"}


class DockerError(Exception):
    """An answer with ``status`` and Docker's body ``{"message": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_implemented(what: str) -> DockerError:
    return DockerError(501, f"not implemented: {what}")


def json_response(body: Any, status: int = 200) -> web.Response:
    # exactly "application/json": the docker CLI compares the whole header (a charset
    # parameter makes it print the raw body instead of the message)
    return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status)


def status_of(exc: errors.EngineError) -> int:
    if isinstance(exc, errors.StartFailed):
        return 500  # moby answers a failed start with 500 (the CLI exits 125/126/127 from the text)
    return exc.status if exc.status >= 400 else 500


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _cli_wording(exc: errors.EngineError) -> str:
    """The docker CLI picks ``run``'s exit code from a failed start's text: 127 when
    it says "executable file not found", 126 for "permission denied" (ours does)."""
    if not isinstance(exc, errors.StartFailed) or "executable file not found" in exc.message:
        return exc.message
    if exc.exit_code == 127 or "executable not found" in exc.message:
        return f"{exc.message} (executable file not found in $PATH)"
    return exc.message


@web.middleware
async def docker_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DockerError as exc:
        return error_response(exc.status, exc.message)
    except errors.EngineError as exc:
        if isinstance(exc, errors.Internal):
            log.error("%s %s: %s", request.method, request.path, exc.message)
        return error_response(status_of(exc), _cli_wording(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status in (404, 405):
            return error_response(404, "page not found")
        if exc.status == 413:
            return error_response(413, "request body too large")
        return error_response(exc.status, exc.reason)
    except (ConnectionResetError, BrokenPipeError):
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal error; the agent's log has the details")


def boolean(request: web.Request, name: str, default: bool = False) -> bool:
    """A query boolean by moby's rule (the CLI sends 1, docker-py True/False)."""
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() not in _FALSE


def integer(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(float(value))
    except ValueError:
        raise DockerError(400, f"invalid value for {name}: {value!r}") from None


def filters(request: web.Request) -> dict[str, list[str]]:
    """``filters`` in either form: the CLI's map of bools, docker-py's lists."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise DockerError(400, f"invalid filter: {raw!r}") from None
    if not isinstance(parsed, dict):
        raise DockerError(400, f"invalid filter: {raw!r}")
    result: dict[str, list[str]] = {}
    for key, value in parsed.items():
        if isinstance(value, dict):
            result[str(key)] = [str(k) for k, on in value.items() if on]
        elif isinstance(value, list):
            result[str(key)] = [str(v) for v in value]
        else:
            result[str(key)] = [str(value)]
    return result


async def json_body(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty body unless ``required``)."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise DockerError(400, "request body is required")
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise DockerError(400, f"invalid JSON: {exc}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise DockerError(400, "invalid JSON: expected an object")
    return body
