"""Networks over HTTP (``engine.models.networks``)."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/networks",
        "networks.list",
        result="list[networks.NetworkSummary]",
        summary="list networks, each with its endpoints",
    ),
    Route(
        "POST",
        "/v1/networks",
        "networks.create",
        body=("request", "networks.NetworkCreateRequest"),
        result="networks.NetworkSummary",
        status=201,
        summary="create a bridge network (the existing one when its addressing is the same)",
    ),
    Route(
        "POST",
        "/v1/networks/prune",
        "networks.prune",
        result="networks.NetworkPruneResult",
        summary="remove every network no container uses, except the default bridge",
    ),
    Route(
        "GET",
        "/v1/networks/{name}",
        "networks.inspect",
        result="dict",
        summary="a network and its containers (Docker's inspect shape)",
    ),
    Route(
        "POST",
        "/v1/networks/{name}/connect",
        "networks.connect",
        body=("request", "networks.NetworkConnectRequest"),
        result="networks.NetworkEndpoint",
        summary="connect a container to the network (its next ethN), its other networks as they are",
    ),
    Route(
        "POST",
        "/v1/networks/{name}/disconnect",
        "networks.disconnect",
        body=("request", "networks.NetworkDisconnectRequest"),
        result="networks.NetworkEndpoint",
        summary="disconnect a container from the network; the endpoint removed",
    ),
    Route(
        "DELETE",
        "/v1/networks/{name}",
        "networks.remove",
        result="networks.NetworkRef",
        summary="remove a network no container uses",
    ),
)
