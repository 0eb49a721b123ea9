"""The agent's aiohttp application: every route of the table bound to the engine,
attach and exec, ``/_ping`` (health), ``/metrics`` and ``/openapi.json``.

Long operations run in a thread pool of their own (``MAX_WORKERS``): aiohttp's
default executor has ``cpu + 4`` threads, which 50 clients following logs would use
up, stalling every other request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from reconciler import __version__
from reconciler.api import attach, dispatch, errors, metrics
from reconciler.engine.core import Engine
from reconciler.wire.routes import ROUTES

MAX_WORKERS = 256
#: Default limit of a JSON request body.
MAX_BODY = 4 * 1024 * 1024
#: Default limit of an upload (a build context, an archive, a manifest set).
MAX_UPLOAD = 16 * 1024**3

CONTEXT = web.AppKey("context", dispatch.Context)
METRICS = web.AppKey("metrics", metrics.Metrics)


def build_app(
    engine: Engine,
    *,
    max_body: int = MAX_BODY,
    max_upload: int = MAX_UPLOAD,
    executor: ThreadPoolExecutor | None = None,
) -> web.Application:
    executor = executor or ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="api")
    context = dispatch.Context(engine, executor, max_body=max_body, max_upload=max_upload)
    meter = metrics.Metrics(engine)
    app = web.Application(client_max_size=max_body, middlewares=[meter.middleware, errors.json_errors])
    app[CONTEXT] = context
    app[METRICS] = meter
    app["max_body"] = max_body

    for route in ROUTES:
        if route.op == "containers.run":
            app.router.add_route(route.method, route.path, _bound(attach.run, context))
        elif route.op == "containers.exec":
            app.router.add_route(route.method, route.path, _bound(attach.exec_, context))
        else:
            app.router.add_route(route.method, route.path, dispatch.bind(route, context))
    app.router.add_get("/_ping", _ping)
    app.router.add_get("/v1/health", _ping)
    app.router.add_get("/metrics", meter.handler)
    app.router.add_get("/openapi.json", _openapi)

    async def shutdown(_app: web.Application) -> None:
        executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown)
    return app


def _bound(
    handler: Callable[[web.Request, dispatch.Context], Awaitable[web.StreamResponse]], context: dispatch.Context
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(request, context)

    return handle


async def _ping(_request: web.Request) -> web.Response:
    return web.Response(text="OK", headers={"Api-Version": "1", "Server": f"reconcile/{__version__}"})


async def _openapi(_request: web.Request) -> web.Response:
    from reconciler.api import openapi

    return web.Response(text=json.dumps(openapi.document(), indent=2), content_type="application/json")
