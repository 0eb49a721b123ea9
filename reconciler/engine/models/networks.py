"""Networks: what ``network create`` takes, what ``network ls``/``inspect``/``prune`` give."""

from __future__ import annotations

import builtins
from typing import Any, Protocol, Required, TypedDict


class NetworkCreateRequest(TypedDict, total=False):
    """``docker network create``'s flags, by their long names. Without ``subnet`` the
    next free block of the address pools is taken (``gateway`` and ``ip_range`` then
    need one)."""

    name: Required[str]
    subnet: str | None  # 10.89.0.0/24
    gateway: str | None  # default: the subnet's first host address
    ip_range: str | None  # dynamic addresses only from this range
    internal: bool  # no route out of the network
    labels: dict[str, str]
    mtu: int | None  # default 1500


class NetworkRef(TypedDict):
    name: str


class NetworkEndpoint(TypedDict):
    """One container attached to a network."""

    container: str
    ifname: str  # inside the container: eth0, eth1, ...
    address: str  # with the subnet's prefix length: 10.89.0.2/24
    mac: str
    aliases: list[str]  # DNS names on this network, the container's own first


class NetworkSummary(TypedDict):
    """One row of ``network ls``, with everything ``inspect`` shows."""

    name: str
    driver: str  # bridge
    subnet: str
    gateway: str
    ip_range: str | None
    bridge: str | None  # the host's bridge interface
    internal: bool
    mtu: int | None
    labels: dict[str, str]
    created: float  # seconds since the epoch
    endpoints: list[NetworkEndpoint]


class NetworkConnectRequest(TypedDict, total=False):
    """``network connect [--alias A] [--ip IP] NETWORK CONTAINER``: one more network for
    a container made on a bridge network (running or not)."""

    container: Required[str]
    aliases: list[str]  # DNS names on this network besides the container's name
    ip: str | None  # a static IPv4 address in the network's subnet


class NetworkDisconnectRequest(TypedDict, total=False):
    """``network disconnect [-f] NETWORK CONTAINER``."""

    container: Required[str]
    force: bool  # Docker's flag; every disconnect is complete here, so it changes nothing


class NetworkPruneResult(TypedDict):
    removed: list[str]  # names of the networks removed


def inspect_document(summary: NetworkSummary) -> dict[str, Any]:
    """The shape of ``docker network inspect`` (the parts we have), from a summary:
    ``inspect`` answers it, and ``network ls -o json`` prints it for every network."""
    ipam_config: dict[str, Any] = {"Subnet": summary["subnet"], "Gateway": summary["gateway"]}
    if summary["ip_range"]:
        ipam_config["IPRange"] = summary["ip_range"]
    return {
        "Name": summary["name"],
        "Driver": summary["driver"],
        "Internal": summary["internal"],
        "IPAM": {"Config": [ipam_config]},
        "Options": {"bridge": summary["bridge"], "mtu": summary["mtu"]},
        "Labels": summary["labels"],
        "Containers": {
            endpoint["container"]: {
                "IPv4Address": endpoint["address"],
                "MacAddress": endpoint["mac"],
                "Aliases": endpoint["aliases"],
            }
            for endpoint in summary["endpoints"]
        },
    }


class NetworksAPI(Protocol):
    """What every front end may do to bridge networks. Names are network names
    (``[a-zA-Z0-9][a-zA-Z0-9_.-]*``, as Docker's).

    Lifecycle: ``create`` (a bridge, its nftables rules, the embedded DNS on its
    gateway; creating an existing network with the same addressing returns it, and
    makes again what was deleted under it) → containers attach at ``run --network``
    → ``connect``/``disconnect`` a container later (one network, its others as they
    are) → ``remove`` once no container uses it (Conflict otherwise). ``prune`` removes
    every network no container uses, except the default ``bridge``. Endpoints of
    containers that no longer exist are detached first by ``remove`` and ``prune``,
    so they never hold a network.

    Worked example::

        engine.networks.create({"name": "front", "subnet": "10.89.0.0/24"})
        engine.networks.inspect("front")["IPAM"]["Config"][0]["Gateway"]   # "10.89.0.1"
        engine.networks.connect("front", {"container": "web", "aliases": ["www"]})["ifname"]  # "eth1"
        engine.networks.disconnect("front", {"container": "web"})            # eth1 gone
        engine.networks.remove("front")                                     # {"name": "front"}
    """

    def create(self, request: NetworkCreateRequest) -> NetworkSummary: ...

    def list(self) -> builtins.list[NetworkSummary]: ...

    def inspect(self, name: str) -> dict[str, Any]: ...

    def remove(self, name: str) -> NetworkRef: ...

    def prune(self) -> NetworkPruneResult: ...

    def connect(self, name: str, request: NetworkConnectRequest) -> NetworkEndpoint:
        """Join the container to network ``name`` now: an interface ``ethN`` (the next
        free one), an address, its DNS names; recorded in its state, so ``inspect``,
        ``ps`` and a restart have it. NotFound for an unknown network or container;
        Conflict for a container on ``--network none`` or ``host`` or already on it."""
        ...

    def disconnect(self, name: str, request: NetworkDisconnectRequest) -> NetworkEndpoint:
        """Take the container off network ``name`` (its interface, address and DNS
        names), its other networks as they are; the endpoint removed. Conflict when
        it is not on that network."""
        ...
