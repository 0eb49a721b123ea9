"""``GET/HEAD/PUT /containers/{id}/archive``: ``docker cp`` both ways.

The tar is made or unpacked by ``archive_child.py``, chrooted in the container's
root: ``/proc/PID/root`` while it runs (its volumes and binds included), else its
overlay (image layers under its upper directory) mounted in a mount namespace of the
child's own, so nothing is mounted on the host and an exited or created container
reads and takes files as its next start will see them (its volumes are not mounted
then: a path inside one reads the image's content)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shlex
import sys
import tempfile
from typing import Any

from aiohttp import web

from reconciler.dockerapi import store
from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import DockerError

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "archive_child.py")
STAT_HEADER = "X-Docker-Container-Path-Stat"
CHUNK = 1 << 16


def _command(state: Any, verb: str, path: str, scratch: str) -> list[str]:
    """The child's command line: chrooted in the running container's root, or in its
    overlay mounted on ``scratch`` in a private mount namespace."""
    python = [sys.executable, "-S", "-I", CHILD]
    if state.status in ("running", "paused") and state.pid:
        return [*python, f"/proc/{state.pid}/root", verb, path]
    config = state.spec.get("config") or {}
    overlay = config.get("overlay")
    if not overlay:
        return [*python, str(config.get("rootfs") or "/nonexistent"), verb, path]
    layers, upper, work = list(overlay["layers"]), str(overlay["upper"]), str(overlay["work"])
    for part in (*layers, upper, work, scratch):
        if any(c in part for c in ",:\\") or not os.path.isabs(part):
            raise DockerError(500, f"unusable overlay path {part!r}")
    options = f"lowerdir={':'.join(layers)},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off"
    script = f'mount -t overlay overlay -o {shlex.quote(options)} {shlex.quote(scratch)} && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *python, scratch, verb, path]


def _path(request: web.Request) -> str:
    path = request.query.get("path")
    if not path:
        raise DockerError(400, "path is required")
    return path


async def _failed(process: asyncio.subprocess.Process, path: str) -> DockerError:
    stderr = (await process.stderr.read()).decode(errors="replace").strip() if process.stderr else ""
    code = await process.wait()
    if code == 2:
        return DockerError(404, stderr or f"Could not find the file {path} in container")
    if code == 3:
        return DockerError(400, stderr or f"extraction point is not a directory: {path}")
    return DockerError(500, stderr or f"archive failed with status {code}")


def _stat_header(line: bytes) -> str:
    return base64.b64encode(json.dumps(json.loads(line)).encode()).decode()


async def get(request: web.Request, context: DockerContext) -> web.StreamResponse:
    path = _path(request)
    state = await context.call(store.find, context.engine, request.match_info["id"])
    verb = "stat" if request.method == "HEAD" else "get"
    with tempfile.TemporaryDirectory(prefix="docker-cp-") as scratch:
        process = await asyncio.create_subprocess_exec(
            *_command(state, verb, path, scratch),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            line = await process.stdout.readline()
            if not line:
                raise await _failed(process, path)
            headers = {STAT_HEADER: _stat_header(line)}
            if verb == "stat":
                await process.wait()
                return web.Response(status=200, headers=headers)
            response = web.StreamResponse(status=200, headers={**headers, "Content-Type": "application/x-tar"})
            await response.prepare(request)
            while chunk := await process.stdout.read(CHUNK):
                await response.write(chunk)
            await process.wait()
            await response.write_eof()
            return response
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


async def put(request: web.Request, context: DockerContext) -> web.StreamResponse:
    path = _path(request)
    state = await context.call(store.find, context.engine, request.match_info["id"])
    with tempfile.TemporaryDirectory(prefix="docker-cp-") as scratch:
        process = await asyncio.create_subprocess_exec(
            *_command(state, "put", path, scratch),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the child failed: its status says why
                while chunk := await request.content.read(CHUNK):
                    process.stdin.write(chunk)
                    await process.stdin.drain()
            process.stdin.close()
            if await process.wait() != 0:
                raise await _failed(process, path)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
    return web.Response(status=200)


ROUTES: Routes = [
    ("GET", "/containers/{id}/archive", get),
    ("HEAD", "/containers/{id}/archive", get),
    ("PUT", "/containers/{id}/archive", put),
]
