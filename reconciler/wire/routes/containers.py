"""Containers over HTTP (``engine.models.containers``)."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES = (
    Route(
        "GET",
        "/v1/containers",
        "containers.list",
        query=(("all", "bool"),),
        result="list[containers.ContainerSummary]",
        summary="list containers",
    ),
    Route(
        "POST",
        "/v1/containers",
        "containers.create",
        body=("request", "containers.RunRequest"),
        result="containers.ContainerRef",
        status=201,
        summary="create a container",
    ),
    Route(
        "POST",
        "/v1/containers/run",
        "containers.run",
        kind="upgrade",
        body=("request", "containers.RunRequest"),
        query=(("detach", "bool"),),
        result="containers.WaitResult",
        summary="create and start a container; attached (Upgrade: tcp), its stdio streams until its exit code",
    ),
    Route(
        "GET",
        "/v1/containers/stats",
        "containers.stats",
        query=(("names", "list"),),
        result="list[containers.ContainerStats]",
        summary="usage of running containers",
    ),
    Route(
        "GET",
        "/v1/containers/{name}",
        "containers.inspect",
        result="dict",
        summary="a container's state and configuration (Docker's inspect shape)",
    ),
    Route(
        "DELETE",
        "/v1/containers/{name}",
        "containers.remove",
        query=(("force", "bool"),),
        result="containers.ContainerRef",
        summary="remove a container",
    ),
    Route("POST", "/v1/containers/{name}/start", "containers.start", result="containers.ContainerRef"),
    Route(
        "POST",
        "/v1/containers/{name}/stop",
        "containers.stop",
        query=(("grace", "float"),),
        result="containers.ContainerRef",
    ),
    Route(
        "POST",
        "/v1/containers/{name}/kill",
        "containers.kill",
        query=(("signal", "str"),),
        result="containers.ContainerRef",
    ),
    Route("POST", "/v1/containers/{name}/pause", "containers.pause", result="containers.ContainerRef"),
    Route("POST", "/v1/containers/{name}/unpause", "containers.unpause", result="containers.ContainerRef"),
    Route(
        "POST",
        "/v1/containers/{name}/wait",
        "containers.wait",
        result="containers.WaitResult",
        summary="wait until it exits",
    ),
    Route(
        "GET",
        "/v1/containers/{name}/logs",
        "containers.logs",
        kind="lines",
        query=(("follow", "bool"), ("tail", "int"), ("since_ns", "int")),
        result="containers.LogEntry",
    ),
    Route(
        "POST",
        "/v1/containers/{name}/exec",
        "containers.exec",
        kind="upgrade",
        body=("request", "containers.ExecRequest"),
        result="containers.WaitResult",
        summary="run a command in a running container, its stdio over the upgraded connection",
    ),
)
