"""``POST /build``: the classic builder's endpoint (the CLI without buildx, or with
``DOCKER_BUILDKIT=0``, docker-py and docker-compose use it), over ``engine.images.build``.

The body is a tar of the build context (plain or compressed); the answer is JSON
lines as moby's classic builder writes them: ``{"stream": "Step 1/3 : FROM …\\n"}``
per instruction, the instructions' output, ``{"aux": {"ID": "sha256:…"}}``, then
``Successfully built <short id>`` and ``Successfully tagged <name>`` per tag. Errors,
also a missing Dockerfile, are the last line, ``{"errorDetail": …, "error": …}``.

Query parameters used: ``t`` (repeatable), ``dockerfile``, ``buildargs`` (JSON
object), ``target``, ``labels`` (JSON object), ``q``, ``nocache``. ``rm``,
``forcerm`` and ``pull`` are accepted (the builder leaves no containers behind and
pulls only missing base images); ``remote`` (a URL context) is not implemented.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
from typing import Any

from aiohttp import web

from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import DockerError, boolean, not_implemented
from reconciler.dockerapi.events import emit as emit_event
from reconciler.dockerapi.images import Emit, familiar, spool_body, stream_lines, with_tag
from reconciler.model.reference import parse_reference

_STEP = re.compile(r"^STEP (\d+)/(\d+): (.*)$", re.DOTALL)
#: The stage ``labels`` are added in, when a target stage is named.
_LABEL_STAGE = "docker-api-labels"


def _json_object(request: web.Request, name: str) -> dict[str, Any]:
    raw = request.query.get(name, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise DockerError(400, f"{name}: not valid JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DockerError(400, f"{name}: not a JSON object")
    return value


def _build_args(request: web.Request) -> list[str]:
    """``buildargs={"K": "V"}`` as ``K=V``; a null value (an argument named without
    a value that the client could not resolve) is left out, as moby does."""
    return [f"{key}={value}" for key, value in _json_object(request, "buildargs").items() if value is not None]


def _tags(request: web.Request) -> list[str]:
    tags = []
    for raw in request.query.getall("t", []):
        tag = with_tag(familiar(raw))
        try:
            parse_reference(tag)
        except ValueError as exc:
            raise DockerError(400, f"invalid tag {raw!r}: {exc}") from None
        tags.append(tag)
    return tags


def _extract(archive: str, directory: str) -> str:
    """The context tar, unpacked with tarfile's ``data`` filter (no absolute paths,
    no ``..``, no links out, no devices)."""
    target = os.path.join(directory, "context")
    os.mkdir(target)
    if os.path.getsize(archive) == 0:
        return target  # an empty context (a Dockerfile-only build sends one with the file)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DockerError(400, f"the build context could not be read: {exc}") from None
    return target


def _dockerfile(context_dir: str, requested: str | None) -> str | None:
    """The Dockerfile's path in the context as the engine takes it; None lets the
    engine choose (Containerfile, else Dockerfile). DockerError (streamed as the
    error line) when the named one is not there."""
    name = requested or "Dockerfile"
    if os.path.isabs(name) or os.path.normpath(name).startswith(".."):
        raise DockerError(400, f"the Dockerfile ({name}) must be within the build context")
    if os.path.isfile(os.path.join(context_dir, name)):
        return name
    if requested is None and os.path.isfile(os.path.join(context_dir, "Containerfile")):
        return None
    raise DockerError(400, f"Cannot locate specified Dockerfile: {name}")


def _add_labels(context_dir: str, dockerfile: str | None, labels: dict[str, str], target: str | None) -> str:
    """A copy of the Dockerfile with ``labels`` added to the stage built: a LABEL at
    the end of the file (the last stage), or, with a target, in a new last stage
    made from it. The copy's name, relative to the context."""
    source = os.path.join(context_dir, dockerfile or "Containerfile")
    if dockerfile is None and not os.path.isfile(source):
        source = os.path.join(context_dir, "Dockerfile")
    with open(source) as handle:
        text = handle.read()
    pairs = " ".join(
        f"{json.dumps(str(k), ensure_ascii=False)}={json.dumps(str(v), ensure_ascii=False)}" for k, v in labels.items()
    )
    addition = f"\nFROM {target} AS {_LABEL_STAGE}\n" if target else "\n"
    name = ".dockerapi-labels.Dockerfile"
    with open(os.path.join(context_dir, name), "w") as handle:
        handle.write(text + addition + f"LABEL {pairs}\n")
    return name


def _docker_line(text: str) -> str | None:
    """One line of the builder's output as the classic builder writes it (None:
    not shown; the tags are announced at the end, as ``Successfully tagged``)."""
    match = _STEP.match(text)
    if match:
        return f"Step {match.group(1)}/{match.group(2)} : {match.group(3)}"
    if text.startswith("COMMIT "):
        return None
    if text.startswith("--> Using cache"):
        return " ---> Using cache"
    if text.startswith("--> sha256:"):
        return " ---> " + text.removeprefix("--> sha256:")[:12]
    return text


async def build(request: web.Request, context: DockerContext) -> web.StreamResponse:
    if request.query.get("remote"):
        raise not_implemented("builds from a remote context (send the context as a tar body)")
    tags = _tags(request)
    build_args = _build_args(request)
    labels = {str(k): str(v) for k, v in _json_object(request, "labels").items()}
    target = request.query.get("target") or None
    quiet = boolean(request, "q")
    no_cache = boolean(request, "nocache")
    requested = request.query.get("dockerfile") or None
    engine = context.engine
    scratch = tempfile.mkdtemp(prefix="docker-build-", dir=engine.config.root)
    try:
        archive = await spool_body(request, scratch, "context.tar")

        def work(emit: Emit) -> None:
            try:
                _build(emit, archive)
            finally:  # before the stream ends: a client that read it all finds nothing left
                shutil.rmtree(scratch, ignore_errors=True)

        def _build(emit: Emit, archive: str) -> None:
            context_dir = _extract(archive, scratch)
            os.unlink(archive)
            dockerfile = _dockerfile(context_dir, requested)
            build_target = target
            if labels:
                dockerfile = _add_labels(context_dir, dockerfile, labels, target)
                build_target = None

            def progress(event: dict[str, Any]) -> None:
                if not quiet and event.get("status") == "line":
                    line = _docker_line(str(event.get("text", "")))
                    if line is not None:
                        emit({"stream": line + "\n"})

            result = engine.images.build(
                context_dir,
                tags=tags,
                containerfile=dockerfile,
                build_args=build_args,
                target=build_target,
                no_cache=no_cache,
                progress=progress,
            )
            image_id = result["id"]
            for tag in tags:
                emit_event(context, "image", "tag", image_id, {"name": tag})
            emit({"aux": {"ID": image_id}})
            if quiet:
                emit({"stream": f"{image_id}\n"})
                return
            emit({"stream": f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n"})
            for tag in tags:
                emit({"stream": f"Successfully tagged {tag}\n"})

        return await stream_lines(request, context, work)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


ROUTES: Routes = [
    ("POST", "/build", build),
]
