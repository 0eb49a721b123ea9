"""The Docker API's aiohttp application: the version prefix, Docker's headers and
error bodies, swarm's 503s, and every group module's ``ROUTES`` (see the package
docstring for the interface)."""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from aiohttp import web

from reconciler import __version__
from reconciler.dockerapi.context import DockerContext, Handler
from reconciler.dockerapi.errors import docker_errors, error_response

if TYPE_CHECKING:
    from reconciler.engine.core import Engine

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
_MAX = (1, 50)
_MIN = (1, 24)

#: The group modules, in registration order; one not written yet is skipped.
MODULES = (
    "system",
    "system_extra",
    "containers",
    "execs",
    "archive",
    "images",
    "networks",
    "volumes",
    "events",
)

#: Swarm's endpoints: 503 until the swarm issue lands.
SWARM = ("swarm", "services", "nodes", "tasks", "secrets", "configs")

#: Largest JSON body (a create is a few KiB); uploads (archive, load, build) read the stream themselves.
MAX_BODY = 4 * 1024 * 1024

CONTEXT = web.AppKey("docker_context", DockerContext)

_VERSION = re.compile(r"^(\d+)\.(\d+)$")

RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: On every response, as moby's middleware sets them.
_HEADERS = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Server": f"Docker/{__version__} (linux) reconcile",
}


@web.middleware
async def _versioned(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    """``/v1.NN/...`` within 1.24..1.50 (moby's messages otherwise); no prefix means 1.50."""
    raw = request.match_info.get("docker_version")
    version = _MAX
    if raw is not None:
        match = _VERSION.match(raw)
        if not match:
            return error_response(400, f"invalid API version {raw!r}")
        version = (int(match.group(1)), int(match.group(2)))
        if version > _MAX:
            return error_response(
                400, f"client version {raw} is too new. Maximum supported API version is {API_VERSION}"
            )
        if version < _MIN:
            return error_response(
                400,
                f"client version {raw} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                "please upgrade your client to a newer version",
            )
    request["docker_version"] = version
    return await handler(request)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for key, value in _HEADERS.items():
        response.headers[key] = value


def _bound(handler: Handler, context: DockerContext) -> RequestHandler:
    @functools.wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(request, context)

    return handle


async def _swarm(request: web.Request) -> web.StreamResponse:
    return error_response(
        503,
        'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this '
        "node to swarm and try again.",
    )


def load_routes() -> list[tuple[str, str, Handler]]:
    """Every present group module's routes."""
    routes: list[tuple[str, str, Handler]] = []
    for name in MODULES:
        qualified = f"reconciler.dockerapi.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:
                continue  # not written yet
            raise
        routes.extend(module.ROUTES)
    return routes


def build_docker_app(engine: Engine, executor: Executor) -> web.Application:
    """The Docker API over ``engine``, calling it in ``executor`` (the native API's)."""
    context = DockerContext(engine, executor)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[docker_errors, _versioned])
    app[CONTEXT] = context
    app.on_response_prepare.append(_add_headers)
    from reconciler.dockerapi.health import checking
    from reconciler.dockerapi.restarts import supervising

    app.cleanup_ctx.append(supervising)  # restart policies, while the app serves
    app.cleanup_ctx.append(checking)  # healthchecks
    for method, path, handler in load_routes():
        bound = _bound(handler, context)
        for prefix in ("", "/v{docker_version}"):
            app.router.add_route(method, prefix + path, bound)
    for prefix in ("", "/v{docker_version}"):
        for group in SWARM:
            app.router.add_route("*", f"{prefix}/{group}", _swarm)
            app.router.add_route("*", f"{prefix}/{group}/{{tail:.*}}", _swarm)
    return app
