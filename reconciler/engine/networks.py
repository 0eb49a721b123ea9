"""Networks: the engine's use cases of bridge networks (``engine.models.networks``),
over the network manager the wiring shares (one per engine, never closed here).

Errors of the manager are translated: an unknown network is NotFound, a network in
use, an addressing clashing with another network's (or with the same name's as
recorded) is a Conflict, a bad name, subnet, gateway, range or MTU is an
InvalidRequest, checked before anything is touched. The state database busy or
unreadable is Unavailable.

``connect``/``disconnect`` join or leave one network of a container made on a
bridge network, running or not: its namespace handle (``NAME/netns``) exists from
its create, so it is wired at once, and a start or restart keeps what is wired.
The container's lock is held, and its recorded ``networks`` (what ``inspect`` and
``ps`` show) and ``/etc/hosts``/``resolv.conf`` are brought up to date. A container
on ``--network none`` or ``host`` has no namespace to wire: Conflict, with Docker's
words.
"""

from __future__ import annotations

import builtins
import contextlib
import ipaddress
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reconciler.engine import errors
from reconciler.engine.models import networks as models
from reconciler.network import ipam
from reconciler.network.manager import DEFAULT_NETWORK, NetworkError
from reconciler.state.db import Endpoint, NetworkRecord, StateError

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.network.manager import NetworkManager, PortMapping
    from reconciler.runtime.state import ContainerState, StateStore

#: Docker's rule for network names; no ``/``, so a name is one path segment of the API.
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
NAME_MAX = 128  # as the API takes names in paths
MTU_RANGE = (68, 65535)  # IPv4's minimum; the largest a link can say
#: Docker's refusals (runconfig.ErrConflictHostNetwork, ErrConflictNoNetwork).
HOST_NETWORK_CONFLICT = "container cannot be disconnected from host network or connected to host network"
NO_NETWORK_CONFLICT = (
    "container cannot be connected to multiple networks with one of the networks in private (none) mode"
)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > NAME_MAX:
        raise errors.InvalidRequest(
            f"invalid network name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most {NAME_MAX} characters)"
        )
    return name


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Driver errors as engine errors: the manager's own as Conflict (callers check
    first what would be NotFound or InvalidRequest), the state database's as
    Unavailable, the kernel's (links, nftables) as Internal."""
    try:
        yield
    except errors.EngineError:
        raise
    except NetworkError as exc:
        raise errors.Conflict(str(exc)) from None
    except StateError as exc:
        raise errors.Unavailable(str(exc)) from None
    except Exception as exc:
        # Imported on this error path only, so list and inspect never load pyroute2;
        # when a LinkError was raised, links is loaded already.
        from reconciler.network.firewall import FirewallError
        from reconciler.network.links import LinkError

        if isinstance(exc, LinkError | FirewallError | ipam.IPAMError | OSError):
            raise errors.Internal(f"{type(exc).__name__}: {exc}") from None
        raise


class Networks:
    """``models.NetworksAPI`` in-process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _manager(self) -> NetworkManager:
        with _translated():
            return self._engine.wiring.network_manager()

    # -- operations --

    def create(self, request: models.NetworkCreateRequest) -> models.NetworkSummary:
        name = check_name(request.get("name"))
        subnet, gateway, ip_range = request.get("subnet"), request.get("gateway"), request.get("ip_range")
        for what, value in (("subnet", subnet), ("gateway", gateway), ("ip_range", ip_range)):
            if value is not None and not isinstance(value, str):
                raise errors.InvalidRequest(f"network {name}: {what} must be a string, not {value!r}")
        problems = ipam.validate_plan([(name, subnet, gateway, ip_range)], [])
        if problems:
            raise errors.InvalidRequest("; ".join(problems))
        mtu = request.get("mtu")
        valid_mtu = isinstance(mtu, int) and not isinstance(mtu, bool) and MTU_RANGE[0] <= mtu <= MTU_RANGE[1]
        if mtu is not None and not valid_mtu:
            raise errors.InvalidRequest(f"network {name}: invalid MTU {mtu!r}: use {MTU_RANGE[0]}-{MTU_RANGE[1]}")
        labels = request.get("labels") or {}
        if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in labels.items()):
            raise errors.InvalidRequest(f"network {name}: labels are non-empty string keys with string values")
        manager = self._manager()
        with self._engine.locks.hold("network", name), _translated():
            record = manager.create(
                name,
                subnet=subnet,
                gateway=gateway,
                ip_range=ip_range,
                internal=bool(request.get("internal", False)),
                mtu=mtu or 1500,
                labels=dict(labels),
            )
            return _summary(record, manager.db.list_endpoints(network=name))

    def list(self) -> builtins.list[models.NetworkSummary]:
        manager = self._manager()
        with _translated():
            endpoints: dict[str, builtins.list[Endpoint]] = {}
            for endpoint in manager.db.list_endpoints():
                endpoints.setdefault(endpoint.network, []).append(endpoint)
            return [_summary(record, endpoints.get(record.name, [])) for record in manager.networks()]

    def inspect(self, name: str) -> dict[str, Any]:
        manager = self._manager()
        with _translated():
            record = self._get(manager, name)
            return models.inspect_document(_summary(record, manager.db.list_endpoints(network=name)))

    def remove(self, name: str) -> models.NetworkRef:
        manager = self._manager()
        self._forget_gone_containers(manager)
        with self._engine.locks.hold("network", name), _translated():
            self._get(manager, name)
            manager.remove(name)  # in use: NetworkError, a Conflict
        return {"name": name}

    def prune(self) -> models.NetworkPruneResult:
        """Every network no container uses goes, except the default ``bridge``
        (which ``run --network bridge`` makes again when it is needed)."""
        manager = self._manager()
        self._forget_gone_containers(manager)
        removed = []
        with _translated():
            names = [record.name for record in manager.networks() if record.name != DEFAULT_NETWORK]
        for name in names:
            with self._engine.locks.hold("network", name), _translated():
                if manager.db.get_network(name) is None or manager.users(name):
                    continue  # removed meanwhile, or in use
                manager.remove(name)
                removed.append(name)
        return {"removed": removed}

    def connect(self, name: str, request: models.NetworkConnectRequest) -> models.NetworkEndpoint:
        check_name(name)
        container, aliases, ip = _connect_arguments(request)
        container = self._engine.containers.resolve(container)  # a name, an ID or a unique ID prefix
        manager = self._manager()
        store = self._engine.wiring.runtime().store
        with self._engine.locks.hold("container", container), self._engine.locks.hold("network", name):
            with _translated():
                if name != DEFAULT_NETWORK:
                    self._get(manager, name)
                state = _wirable(store, container)
                if name == DEFAULT_NETWORK:
                    manager.ensure_default()  # made on first use, as ``run --network bridge`` does
                record = self._get(manager, name)
                if ip is not None and ipaddress.IPv4Address(ip) not in record.subnet:
                    raise errors.InvalidRequest(f"invalid address {ip}: not in network {name}'s subnet {record.subnet}")
                from reconciler.network.manager import Attachment

                endpoint = manager.connect(
                    container, state.spec["config"]["netns"], Attachment(name, aliases, ip), _ports(state.spec)
                )
            try:
                with _translated():
                    self._record(manager, store, container)
            except BaseException:
                with contextlib.suppress(Exception):
                    manager.disconnect(container, name, state.spec["config"]["netns"], _ports(state.spec))
                raise
            return _endpoint(endpoint, record.subnet.prefixlen)

    def disconnect(self, name: str, request: models.NetworkDisconnectRequest) -> models.NetworkEndpoint:
        check_name(name)
        container = request.get("container")
        if not isinstance(container, str) or not container:
            raise errors.InvalidRequest("network disconnect: the container is required")
        container = self._engine.containers.resolve(container)
        manager = self._manager()
        store = self._engine.wiring.runtime().store
        with self._engine.locks.hold("container", container), self._engine.locks.hold("network", name):
            with _translated():
                record = self._get(manager, name)
                state = _wirable(store, container)
                if manager.db.get_endpoint(container, name) is None:
                    raise errors.Conflict(f"container {container} is not connected to network {name}")
                endpoint = manager.disconnect(container, name, state.spec["config"]["netns"], _ports(state.spec))
                self._record(manager, store, container)
            return _endpoint(endpoint, record.subnet.prefixlen)

    def _record(self, manager: NetworkManager, store: StateStore, container: str) -> None:
        """The container's endpoints as its state records them (in interface order,
        as ``create`` records them), and its /etc/hosts and resolv.conf for them."""
        state = store.read(container)
        if state is None:
            raise errors.NotFound(f"no such container: {container}")
        endpoints = sorted(manager.db.list_endpoints(container=container), key=lambda e: (len(e.ifname), e.ifname))
        state.spec["networks"] = [
            {"network": e.network, "ifname": e.ifname, "address": str(e.address), "mac": e.mac} for e in endpoints
        ]
        store.write(state)
        directory = store.path(container, "etc")
        if os.path.isdir(directory):
            from reconciler.runtime import etcfiles

            hostname = (state.spec.get("config") or {}).get("hostname") or container[:63]
            etcfiles.write(
                directory,
                hostname,
                nameservers=manager.nameservers(container),
                address=str(endpoints[0].address) if endpoints else None,
            )

    # -- internals --

    def _get(self, manager: NetworkManager, name: str) -> NetworkRecord:
        record = manager.db.get_network(name)
        if record is None:
            raise errors.NotFound(f"network {name!r} not found")
        return record

    def _forget_gone_containers(self, manager: NetworkManager) -> None:
        """Endpoints of containers that no longer exist (an engine killed between
        removing a container and detaching it) are detached, so they never hold a
        network. Endpoints are read before the containers: a container reserves its
        name (its state file) before it attaches, so one attaching now is never
        taken for gone."""
        with _translated():
            attached = {endpoint.container for endpoint in manager.db.list_endpoints()}
            if not attached:
                return
            store = self._engine.wiring.runtime().store
            for container in sorted(attached - set(store.names())):
                with self._engine.locks.hold("container", container):
                    if store.read(container) is None:
                        manager.detach(container)


def _connect_arguments(request: models.NetworkConnectRequest) -> tuple[str, tuple[str, ...], str | None]:
    """The container, aliases and address of a connect request, checked."""
    container = request.get("container")
    if not isinstance(container, str) or not container:
        raise errors.InvalidRequest("network connect: the container is required")
    aliases = request.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise errors.InvalidRequest("network connect: aliases are non-empty strings")
    ip = request.get("ip") or None
    if ip is not None:
        try:
            ip = str(ipaddress.IPv4Address(ip))
        except (ValueError, TypeError):
            raise errors.InvalidRequest(f"invalid IPv4 address {ip!r}") from None
    return container, tuple(dict.fromkeys(aliases)), ip


def _wirable(store: StateStore, container: str) -> ContainerState:
    """The container's state, when it has a network namespace of its own to wire."""
    state = store.read(container)
    if state is None:
        raise errors.NotFound(f"no such container: {container}")
    if not state.spec:
        raise errors.Conflict(f"container {container!r} is still being created")
    config = state.spec.get("config") or {}
    if "net" in (config.get("host_namespaces") or []):
        raise errors.Conflict(HOST_NETWORK_CONFLICT)
    if not config.get("netns"):
        raise errors.Conflict(NO_NETWORK_CONFLICT)
    return state


def _ports(spec: dict[str, Any]) -> builtins.list[PortMapping]:
    """The published ports the container's state records (``[IP:]HOST:CONTAINER/PROTO``)."""
    texts = spec.get("ports") or []
    if not texts:
        return []
    from reconciler.network.manager import parse_ports

    return [port for text in texts for port in parse_ports(text)]


def _endpoint(endpoint: Endpoint, prefix: int) -> models.NetworkEndpoint:
    return {
        "container": endpoint.container,
        "ifname": endpoint.ifname,
        "address": f"{endpoint.address}/{prefix}",
        "mac": endpoint.mac,
        "aliases": builtins.list(endpoint.aliases),
    }


def _summary(record: NetworkRecord, endpoints: builtins.list[Endpoint]) -> models.NetworkSummary:
    prefix = record.subnet.prefixlen
    return {
        "name": record.name,
        "driver": record.driver,
        "subnet": str(record.subnet),
        "gateway": str(record.gateway),
        "ip_range": str(record.ip_range) if record.ip_range else None,
        "bridge": record.bridge,
        "internal": record.internal,
        "mtu": record.mtu,
        "labels": dict(record.labels),
        "created": record.created_at,
        "endpoints": [
            {
                "container": endpoint.container,
                "ifname": endpoint.ifname,
                "address": f"{endpoint.address}/{prefix}",
                "mac": endpoint.mac,
                "aliases": builtins.list(endpoint.aliases),
            }
            for endpoint in endpoints  # sorted by container by the state database
        ],
    }
