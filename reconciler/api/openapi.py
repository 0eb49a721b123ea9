"""The OpenAPI 3.1 document of the native API, generated from the route table and the
engine's models; checked in as ``schemas/openapi.json`` (``reconcile schema
--check`` and a test fail when it is stale) and served at ``/openapi.json``."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import TypeAdapter

from reconciler import __version__
from reconciler.api import models
from reconciler.api.dispatch import INT_MAX, INT_MIN, NAME, required_query
from reconciler.wire.route import Route
from reconciler.wire.routes import ROUTES

REF = "#/components/schemas/{model}"

ERROR = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "exit_code": {"type": "integer"},
    },
    "required": ["code", "message"],
}

_QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int64", "minimum": INT_MIN, "maximum": INT_MAX},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array", "items": {"type": "string"}},
}


def _model_names() -> list[str]:
    names: set[str] = set()
    for route in ROUTES:
        if route.body is not None and "/" not in route.body[1]:
            names.add(route.body[1])
        if route.result:
            names.add(route.result)
    return sorted(names)


def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """Each model name's schema (a ``$ref`` or inline), and the shared definitions."""
    names = _model_names()
    inputs = [(name, "serialization", models.adapter(name)) for name in names]
    mapping, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF)  # type: ignore[arg-type]
    return {name: mapping[(name, "serialization")] for name in names}, definitions.get("$defs", {})


def _responses(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    result = schemas.get(route.result or "", {})
    ndjson = {"application/x-ndjson": {"schema": {"type": "string"}}}
    if route.kind in ("json", "upload"):
        ok: dict[str, Any] = {"description": "OK", "content": {"application/json": {"schema": result}}}
    elif route.kind in ("lines", "progress"):
        ok = {"description": "a stream of JSON lines", "content": ndjson}
    elif route.kind == "download":
        ok = {"description": "the file", "content": {"application/x-tar": {"schema": {"type": "string"}}}}
    else:  # upgrade
        ok = {"description": "detached: the result", "content": {"application/json": {"schema": result}}}
    responses: dict[str, Any] = {str(route.status if route.kind != "upgrade" else 201): ok}
    if route.kind == "upgrade":
        responses["101"] = {"description": "switched to framed stdio (reconciler.wire.framing)"}
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    for status, text in (
        ("400", "invalid request"),
        ("404", "no such object or route"),
        ("409", "conflict"),
        ("413", "too large"),
        ("500", "a bug in the agent"),
        ("503", "a dependency is unavailable"),
    ):
        responses[status] = {"description": text, **error}
    return responses


def _required_query(route: Route) -> frozenset[str]:
    """The query parameters the operation cannot do without, read from the
    signature in its resource's Protocol (``ImagesAPI.inspect(reference)``), as the
    server reads them from the engine's method."""
    group, name = route.op.split(".")
    module = importlib.import_module(f"{models.MODELS_PACKAGE}.{group}")
    method = getattr(getattr(module, f"{group.capitalize()}API", None), name, None)
    return frozenset() if method is None else required_query(route, method)


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": NAME.pattern}}
        for name in route.placeholders()
    ]
    required = _required_query(route)
    parameters += [
        {"name": name, "in": "query", "required": name in required, "schema": _QUERY_SCHEMAS[kind]}
        for name, kind in route.query
    ]
    operation: dict[str, Any] = {
        "operationId": route.op,
        "summary": route.summary or route.op.replace(".", " "),
        "tags": [route.op.split(".")[0]],
        "parameters": parameters,
        "responses": _responses(route, schemas),
    }
    if route.body is not None:
        model = route.body[1]
        if "/" in model:
            content = {model: {"schema": {"type": "string", "format": "binary"}}}
        else:
            content = {"application/json": {"schema": schemas[model]}}
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def document() -> dict[str, Any]:
    schemas, definitions = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    text = {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}
    paths["/_ping"] = {"get": {"operationId": "system.ping", "summary": "liveness", "responses": text}}
    paths["/v1/health"] = {"get": {"operationId": "system.health", "summary": "liveness", "responses": text}}
    paths["/metrics"] = {"get": {"operationId": "system.metrics", "summary": "Prometheus metrics", "responses": text}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "reconcile engine API", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {"Error": ERROR, **dict(sorted(definitions.items()))}},
    }
