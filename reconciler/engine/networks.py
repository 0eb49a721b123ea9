"""Networks: the engine's use cases of bridge networks (``engine.models.networks``),
over the network manager the wiring shares (one per engine, never closed here).

Errors of the manager are translated: an unknown network is NotFound, a network in
use, an addressing clashing with another network's (or with the same name's as
recorded) is a Conflict, a bad name, subnet, gateway, range or MTU is an
InvalidRequest, checked before anything is touched. The state database busy or
unreadable is Unavailable.

``connect``/``disconnect`` of a running container are not offered: the manager
wires all of a container's networks in one ``attach`` (``eth0``, ``eth1``, ... by
position) and ``detach`` undoes all of them, so joining or leaving one network
while others stay needs new calls in the manager, not just this layer.
"""

from __future__ import annotations

import builtins
import contextlib
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
    from reconciler.network.manager import NetworkManager

#: Docker's rule for network names; no ``/``, so a name is one path segment of the API.
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
NAME_MAX = 128  # as the API takes names in paths
MTU_RANGE = (68, 65535)  # IPv4's minimum; the largest a link can say


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
