"""Every error the API answers is JSON ``{"code", "message"}`` with its status:
the engine's errors with theirs, aiohttp's own (unknown route, wrong method, body
too large) translated, and anything else a 500 whose traceback goes to the log,
never to the client."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from reconciler.engine import errors

log = logging.getLogger("reconcile.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "invalid",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"code": code, "message": message, **extra}),
        content_type="application/json",
    )


def protocol_error(status: int, message: str | None) -> web.Response:
    """The answer to a request aiohttp could not parse (a request line or header too
    long, a malformed one), or one its handler failed outside the middleware: JSON,
    like every other error, and the connection closed after it."""
    if status >= 500:
        response = error_response(status, "internal", "internal error; the agent's log has the details")
    else:
        response = error_response(status, _HTTP_CODES.get(status, "http_error"), message or HTTPStatus(status).phrase)
    response.force_close()
    return response


def engine_error(exc: errors.EngineError) -> web.Response:
    return web.Response(status=exc.status, text=json.dumps(exc.to_wire()), content_type="application/json")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.EngineError as exc:
        if isinstance(exc, errors.Internal):
            log.error("%s %s: %s", request.method, request.path, exc.message)
        return engine_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            return error_response(413, "too_large", f"request body too large (limit {request.app['max_body']} bytes)")
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no route {request.method} {request.path}"
        return error_response(exc.status, code, message)
    except (ConnectionResetError, BrokenPipeError):
        raise  # the client went away: nothing to answer
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal", "internal error; the agent's log has the details")
