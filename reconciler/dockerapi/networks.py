"""Docker's network endpoints over ``engine.networks``: ls, inspect, create, rm,
connect/disconnect, prune.

The engine's networks have names, not IDs; a network's Docker ID is derived from
its name and creation time (sha256), so it is stable for the network's life and a
network made again under the same name gets a new one, as Docker's do. IDs are
accepted as a full ID or a unique prefix wherever a name is.

Docker's predefined ``bridge``, ``host`` and ``none`` are always listed. ``bridge``
is the engine's default network, made on first use; until then it is shown with
no addressing. None of the three can be created or removed.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import DockerError, filters, json_body, json_response
from reconciler.dockerapi.events import emit as emit_event
from reconciler.dockerapi.ids import docker_id
from reconciler.dockerapi.ids import resolve as resolve_container
from reconciler.engine import errors
from reconciler.engine.models.networks import NetworkConnectRequest, NetworkCreateRequest, NetworkSummary
from reconciler.engine.networks import HOST_NETWORK_CONFLICT, NO_NETWORK_CONFLICT

if TYPE_CHECKING:
    from reconciler.engine.core import Engine

DEFAULT = "bridge"
PREDEFINED = ("bridge", "host", "none")
_DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}
MTU_OPTION = "com.docker.network.driver.mtu"
DEFAULT_MTU = 1500


def network_id(name: str, created: float) -> str:
    return hashlib.sha256(f"network\0{name}\0{created!r}".encode()).hexdigest()


def _time(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _base(name: str, ident: str, created: float, driver: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Id": ident,
        "Created": _time(created),
        "Scope": "local",
        "Driver": driver,
        "EnableIPv4": True,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {},
        "Labels": {},
    }


def document(summary: NetworkSummary, container_ids: dict[str, str]) -> dict[str, Any]:
    """One network in Docker's shape, from the engine's summary."""
    name = summary["name"]
    ident = network_id(name, summary["created"])
    doc = _base(name, ident, summary["created"], "bridge")
    ipam: dict[str, str] = {"Subnet": summary["subnet"], "Gateway": summary["gateway"]}
    if summary["ip_range"]:
        ipam["IPRange"] = summary["ip_range"]
    doc["IPAM"]["Config"] = [ipam]
    doc["Internal"] = summary["internal"]
    doc["Labels"] = dict(summary["labels"])
    if summary["mtu"] not in (None, DEFAULT_MTU):
        doc["Options"] = {MTU_OPTION: str(summary["mtu"])}
    for endpoint in summary["endpoints"]:
        container = endpoint["container"]
        cid = container_ids.get(container) or docker_id({"name": container})
        doc["Containers"][cid] = {
            "Name": container,
            "EndpointID": hashlib.sha256(f"endpoint\0{ident}\0{container}".encode()).hexdigest(),
            "MacAddress": endpoint["mac"],
            "IPv4Address": endpoint["address"],
            "IPv6Address": "",
        }
    return doc


def _predefined(name: str) -> dict[str, Any]:
    return _base(name, hashlib.sha256(f"network\0{name}".encode()).hexdigest(), 0.0, _DRIVERS[name])


def all_networks(engine: Engine) -> list[dict[str, Any]]:
    """Every network in Docker's shape, the predefined ones first."""
    container_ids = {entry["name"]: docker_id(entry) for entry in engine.containers.list(all=True)}
    made = {summary["name"]: document(summary, container_ids) for summary in engine.networks.list()}
    found = [made.pop(DEFAULT) if DEFAULT in made else _predefined(DEFAULT), _predefined("host"), _predefined("none")]
    return found + sorted(made.values(), key=lambda doc: doc["Name"])


def find(networks: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """The network ``ref`` names: an exact name, a full ID, else a unique ID prefix."""
    for doc in networks:
        if doc["Name"] == ref or doc["Id"] == ref:
            return doc
    matches = [doc for doc in networks if ref and doc["Id"].startswith(ref.lower())]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise DockerError(404, f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
    raise DockerError(404, f"network {ref} not found")


def _matches(doc: dict[str, Any], wanted: dict[str, list[str]]) -> bool:
    if wanted.get("name") and not any(value in doc["Name"] for value in wanted["name"]):
        return False
    if wanted.get("id") and not any(doc["Id"].startswith(value) for value in wanted["id"]):
        return False
    if wanted.get("driver") and doc["Driver"] not in wanted["driver"]:
        return False
    if wanted.get("scope") and "local" not in wanted["scope"]:
        return False
    if wanted.get("type"):
        kind = "builtin" if doc["Name"] in PREDEFINED else "custom"
        if kind not in wanted["type"]:
            return False
    if wanted.get("dangling"):
        unused = not doc["Containers"] and doc["Name"] not in PREDEFINED
        if (wanted["dangling"][0].lower() in ("true", "1")) != unused:
            return False
    for item in wanted.get("label", []):
        key, sep, value = item.partition("=")
        if key not in doc["Labels"] or (sep and doc["Labels"][key] != value):
            return False
    return True


_FILTERS = {"name", "id", "driver", "scope", "type", "dangling", "label"}


async def list_networks(request: web.Request, context: DockerContext) -> web.StreamResponse:
    wanted = filters(request)
    unknown = set(wanted) - _FILTERS
    if unknown:
        raise DockerError(400, f"invalid filter '{sorted(unknown)[0]}'")
    networks = await context.call(all_networks, context.engine)
    return json_response([doc for doc in networks if _matches(doc, wanted)])


async def inspect_network(request: web.Request, context: DockerContext) -> web.StreamResponse:
    networks = await context.call(all_networks, context.engine)
    return json_response(find(networks, request.match_info["id"]))


def create_request(body: dict[str, Any]) -> NetworkCreateRequest:
    """The engine's request from Docker's create body; what the engine cannot do
    (other drivers, IPv6, several subnets, driver options but the MTU) is a 400."""
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise DockerError(400, "network name (Name) is required")
    driver = body.get("Driver") or "bridge"
    if driver != "bridge":
        raise DockerError(400, f"network driver {driver!r} is not supported: only bridge networks")
    if body.get("EnableIPv6"):
        raise DockerError(400, "IPv6 networks are not supported")
    if body.get("Ingress") or body.get("Scope") == "swarm":
        raise DockerError(
            400, "swarm networks (ingress, scope swarm) are not supported: this node is not a swarm manager"
        )
    config_from = body.get("ConfigFrom")
    if body.get("ConfigOnly") or (isinstance(config_from, dict) and config_from.get("Network")):
        raise DockerError(400, "configuration-only networks (ConfigOnly, ConfigFrom) are not supported")
    request: NetworkCreateRequest = {"name": name, "internal": bool(body.get("Internal"))}
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise DockerError(400, "IPAM: a JSON object")
    if (ipam.get("Driver") or "default") != "default":
        raise DockerError(400, f"IPAM driver {ipam.get('Driver')!r} is not supported")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or not all(isinstance(c, dict | None) for c in configs):
        raise DockerError(400, "IPAM.Config: a list of objects")
    if len(configs) > 1:
        raise DockerError(400, "only one IPAM config (one IPv4 subnet) per network is supported")
    if configs:
        config = configs[0] or {}
        if config.get("AuxiliaryAddresses") or config.get("AuxAddress"):
            raise DockerError(400, "auxiliary addresses are not supported")
        request["subnet"] = config.get("Subnet") or None
        request["gateway"] = config.get("Gateway") or None
        request["ip_range"] = config.get("IPRange") or None
    if not isinstance(body.get("Options") or {}, dict):
        raise DockerError(400, "Options: a JSON object")
    options = dict(body.get("Options") or {})
    mtu = options.pop(MTU_OPTION, None)
    if mtu is not None:
        try:
            request["mtu"] = int(mtu)
        except (TypeError, ValueError):
            raise DockerError(400, f"invalid MTU {mtu!r}") from None
    if options:
        raise DockerError(400, f"network options not supported: {', '.join(sorted(options))}")
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise DockerError(400, "Labels: a JSON object of strings")
    request["labels"] = {str(k): str(v) for k, v in labels.items()}
    return request


def _create(engine: Engine, request: NetworkCreateRequest) -> str:
    name = request["name"]
    if name in PREDEFINED:
        if name == DEFAULT:
            raise DockerError(409, f"network with name {name} already exists")
        raise DockerError(403, f"operation is not permitted on predefined {name} network")
    try:
        engine.networks.inspect(name)
    except errors.NotFound:
        pass
    else:
        raise DockerError(409, f"network with name {name} already exists")
    summary = engine.networks.create(request)
    return network_id(summary["name"], summary["created"])


async def create_network(request: web.Request, context: DockerContext) -> web.StreamResponse:
    body = await json_body(request, required=True)
    wanted = create_request(body)
    ident = await context.call(_create, context.engine, wanted)
    emit_event(context, "network", "create", ident, {"name": wanted["name"], "type": "bridge"})
    return json_response({"Id": ident, "Warning": ""}, status=201)


def _remove(engine: Engine, ref: str) -> dict[str, Any]:
    doc = find(all_networks(engine), ref)
    name = doc["Name"]
    if name in PREDEFINED:
        raise DockerError(403, f"{name} is a pre-defined network and cannot be removed")
    try:
        engine.networks.remove(name)
    except errors.Conflict as exc:
        raise DockerError(403, f"error while removing network: {exc.message}") from None
    except errors.NotFound:
        raise DockerError(404, f"network {ref} not found") from None
    return doc


async def remove_network(request: web.Request, context: DockerContext) -> web.StreamResponse:
    doc = await context.call(_remove, context.engine, request.match_info["id"])
    emit_event(context, "network", "destroy", doc["Id"], {"name": doc["Name"], "type": "bridge"})
    return web.Response(status=204)


def _container_and_network(engine: Engine, network_ref: str, container_ref: str) -> tuple[dict[str, Any], str, str]:
    """(the network's document, the container's engine name, its Docker ID): the
    container may be given by name, full ID or unique ID prefix."""
    doc = find(all_networks(engine), network_ref)
    containers = engine.containers.list(all=True)
    name = resolve_container(container_ref, containers)
    ident = next((docker_id(info) for info in containers if info.get("name") == name), docker_id({"name": name}))
    return doc, name, ident


def _refuse_predefined(network: str) -> None:
    """Docker's words for the networks that are not bridges: a container's namespace
    is the host's or its own loopback-only one for its whole life."""
    if network == "host":
        raise DockerError(409, HOST_NETWORK_CONFLICT)
    if network == "none":
        raise DockerError(409, NO_NETWORK_CONFLICT)


def connect_request(body: dict[str, Any]) -> tuple[str, NetworkConnectRequest]:
    """The container reference and the engine's request from Docker's connect body
    (``EndpointConfig``: ``Aliases`` and ``IPAMConfig.IPv4Address``; links, IPv6 and
    driver options are not supported and are ignored when empty)."""
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise DockerError(400, "Container is required")
    endpoint = body.get("EndpointConfig") or {}
    if not isinstance(endpoint, dict):
        raise DockerError(400, "EndpointConfig: a JSON object")
    aliases = endpoint.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise DockerError(400, "EndpointConfig.Aliases: a list of strings")
    ipam = endpoint.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise DockerError(400, "EndpointConfig.IPAMConfig: a JSON object")
    if ipam.get("IPv6Address"):
        raise DockerError(400, "IPv6 addresses are not supported")
    request: NetworkConnectRequest = {"container": container, "aliases": [a for a in aliases if a]}
    if ipam.get("IPv4Address"):
        request["ip"] = str(ipam["IPv4Address"])
    return container, request


def _connect(
    engine: Engine, network_ref: str, container_ref: str, request: NetworkConnectRequest
) -> tuple[str, str, str]:
    doc, name, ident = _container_and_network(engine, network_ref, container_ref)
    _refuse_predefined(doc["Name"])
    engine.networks.connect(doc["Name"], {**request, "container": name})
    return doc["Name"], find(all_networks(engine), doc["Name"])["Id"], ident


async def connect(request: web.Request, context: DockerContext) -> web.StreamResponse:
    """``docker network connect``: the container (running or not) gets the next free
    ``ethN`` on the network, its other networks as they are."""
    body = await json_body(request, required=True)
    container, wanted = connect_request(body)
    network, network_ident, ident = await context.call(
        _connect, context.engine, request.match_info["id"], container, wanted
    )
    emit_event(context, "network", "connect", network_ident, {"container": ident, "name": network, "type": "bridge"})
    return web.Response(status=200)


def _disconnect(engine: Engine, network_ref: str, container_ref: str, force: bool) -> tuple[str, str, str]:
    doc, name, ident = _container_and_network(engine, network_ref, container_ref)
    _refuse_predefined(doc["Name"])
    engine.networks.disconnect(doc["Name"], {"container": name, "force": force})
    return doc["Name"], doc["Id"], ident


async def disconnect(request: web.Request, context: DockerContext) -> web.StreamResponse:
    """``docker network disconnect [-f]``: the container leaves the network (its
    interface, address and DNS names), its other networks as they are."""
    body = await json_body(request, required=True)
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise DockerError(400, "Container is required")
    force = bool(body.get("Force"))
    network, network_ident, ident = await context.call(
        _disconnect, context.engine, request.match_info["id"], container, force
    )
    emit_event(context, "network", "disconnect", network_ident, {"container": ident, "name": network, "type": "bridge"})
    return web.Response(status=200)


def _prune(context: DockerContext, wanted: dict[str, list[str]]) -> dict[str, Any]:
    """Every network no container is attached to (``until``: made before then; ``label``: with those)."""
    from reconciler.dockerapi.images import until_filter

    engine = context.engine
    unsupported = set(wanted) - {"label", "until"}
    if unsupported:
        raise DockerError(400, f"network prune: filter {sorted(unsupported)[0]!r} is not supported")
    until = until_filter(wanted.get("until", []))
    created = {summary["name"]: summary["created"] for summary in engine.networks.list()}
    removed = []
    for doc in all_networks(engine):
        if doc["Name"] in PREDEFINED or doc["Containers"] or not _matches(doc, {"label": wanted.get("label", [])}):
            continue
        if until is not None and created.get(doc["Name"], 0.0) >= until:
            continue
        try:
            engine.networks.remove(doc["Name"])
        except (errors.Conflict, errors.NotFound):
            continue  # in use (a container attached meanwhile), or gone
        removed.append(doc["Name"])
        emit_event(context, "network", "destroy", doc["Id"], {"name": doc["Name"], "type": "bridge"})
    return {"NetworksDeleted": removed or None}


async def prune_networks(request: web.Request, context: DockerContext) -> web.StreamResponse:
    wanted = filters(request)
    return json_response(await context.call(_prune, context, wanted))


ROUTES: Routes = [
    ("GET", "/networks", list_networks),
    ("POST", "/networks/create", create_network),
    ("POST", "/networks/prune", prune_networks),
    ("GET", "/networks/{id}", inspect_network),
    ("DELETE", "/networks/{id}", remove_network),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
]
