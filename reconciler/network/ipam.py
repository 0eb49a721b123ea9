"""IP address management: a subnet per network, and per-network address leases.

Docker's rules, kept in the state database so they survive restarts:

- A network without a subnet gets the first block of the default address pools
  (172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 cut into /20s) that
  overlaps neither another network nor an address or route of the host.
- The gateway defaults to the subnet's first host address and holds a lease
  (owner ``gateway``) for as long as the network exists.
- A container's address is the lowest free one of ``ip_range`` (the whole subnet
  when unset), never the network or broadcast address of the subnet nor the
  gateway. ``ip_range`` limits only these dynamic addresses: a static address
  may be anywhere in the subnet, as ``docker run --ip`` allows, which is how a
  network keeps statics apart from dynamic ones.
- Leases are per (network, owner): asking again returns the same address, so an
  interrupted attach can simply be retried.

Every read-modify-write runs in one ``StateDB.transaction()`` (``BEGIN
IMMEDIATE``), so concurrent allocations, in threads or in processes, never
hand out one address twice.
"""

from __future__ import annotations

import importlib
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from reconciler.state import db as statedb

GATEWAY_OWNER = "gateway"
MAX_PREFIXLEN = 30  # a /31 or /32 has no room for a gateway and a container

NetworkLike = ipaddress.IPv4Network | str
AddressLike = ipaddress.IPv4Address | str


class AddressPool(NamedTuple):
    """A range that subnets are cut from: blocks of prefix length ``size`` from ``base``."""

    base: ipaddress.IPv4Network
    size: int


DEFAULT_POOLS: tuple[AddressPool, ...] = (
    *(AddressPool(ipaddress.IPv4Network(f"172.{second}.0.0/16"), 16) for second in range(17, 32)),
    AddressPool(ipaddress.IPv4Network("192.168.0.0/16"), 20),
)


class IPAMError(Exception):
    """An address or subnet cannot be given out; the message names the network and owner."""


# -- parsing and the rules shared by allocation and validation -------------------------------


def _parse_network(value: NetworkLike, *, what: str, network: str) -> ipaddress.IPv4Network:
    if isinstance(value, ipaddress.IPv4Network):
        return value
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise IPAMError(f"network {network}: {what} {value!r} is not an IPv4 network ({exc})") from exc


def _parse_address(value: AddressLike, *, what: str, network: str) -> ipaddress.IPv4Address:
    if isinstance(value, ipaddress.IPv4Address):
        return value
    try:
        return ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise IPAMError(f"network {network}: {what} {value!r} is not an IPv4 address ({exc})") from exc


def _reserved(subnet: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    return subnet.network_address, subnet.broadcast_address


def default_gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The subnet's first host address, Docker's default gateway."""
    return subnet.network_address + 1


def _addressing_errors(
    name: str,
    subnet: ipaddress.IPv4Network | None,
    gateway: ipaddress.IPv4Address | None,
    ip_range: ipaddress.IPv4Network | None,
) -> list[str]:
    """What is wrong with one network's own addressing (not its relation to others)."""
    if subnet is None:
        return [
            f"network {name}: {what} needs an explicit subnet"
            for what, value in (("gateway", gateway), ("ip_range", ip_range))
            if value is not None
        ]
    errors = []
    if subnet.prefixlen > MAX_PREFIXLEN:
        errors.append(f"network {name}: subnet {subnet} is too small (use a /{MAX_PREFIXLEN} or larger)")
    if gateway is not None:
        if gateway not in subnet:
            errors.append(f"network {name}: gateway {gateway} is outside subnet {subnet}")
        elif gateway in _reserved(subnet):
            errors.append(f"network {name}: gateway {gateway} is the network or broadcast address of {subnet}")
    if ip_range is not None and not ip_range.subnet_of(subnet):
        errors.append(f"network {name}: ip_range {ip_range} is outside subnet {subnet}")
    return errors


def _static_error(
    who: str,
    network: str,
    address: ipaddress.IPv4Address,
    subnet: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address,
) -> str | None:
    where = f"{who}: address {address} on network {network}"
    if address not in subnet:
        return f"{where} is outside its subnet {subnet}"
    if address in _reserved(subnet):
        return f"{where} is the network or broadcast address of {subnet}"
    if address == gateway:
        return f"{where} is the network's gateway"
    return None


# -- subnets ----------------------------------------------------------------------------------


def host_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks the host uses: those of its addresses and of its routes (in
    every routing table; the default route excluded), merged where they nest. A new
    network's subnet avoids them, or the host could no longer reach that part of the
    world.

    Read-only netlink dumps; pyroute2 is imported here, not at module import, so the
    pure parts of IPAM stay cheap to import."""
    pyroute2 = importlib.import_module("pyroute2")
    found: set[ipaddress.IPv4Network] = set()
    try:
        with pyroute2.IPRoute() as ipr:
            for msg in ipr.get_addr(family=socket.AF_INET):
                address = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
                if address:
                    found.add(ipaddress.IPv4Network((address, msg["prefixlen"]), strict=False))
            for msg in ipr.get_routes(family=socket.AF_INET):
                destination = msg.get_attr("RTA_DST")
                if destination and msg["dst_len"] > 0:
                    found.add(ipaddress.IPv4Network((destination, msg["dst_len"]), strict=False))
    except OSError as exc:
        raise IPAMError(f"cannot read the host's addresses and routes: {exc}") from exc
    return list(ipaddress.collapse_addresses(found))


def _first_free_block(
    name: str, pools: Sequence[AddressPool], taken: Sequence[tuple[str, ipaddress.IPv4Network]]
) -> ipaddress.IPv4Network:
    for pool in pools:
        for block in pool.base.subnets(new_prefix=pool.size):
            if not any(block.overlaps(used) for _, used in taken):
                return block
    pool_list = ", ".join(f"{pool.base} as /{pool.size}" for pool in pools) or "none"
    raise IPAMError(
        f"network {name}: no free subnet left in the address pools ({pool_list}); "
        "every block overlaps another network or the host's networks: give the network a subnet"
    )


def allocate_subnet(
    db: statedb.StateDB,
    network_name: str,
    *,
    subnet: NetworkLike | None = None,
    gateway: AddressLike | None = None,
    ip_range: NetworkLike | None = None,
    pools: Sequence[AddressPool] = DEFAULT_POOLS,
    host_routes: Iterable[ipaddress.IPv4Network] = (),
    driver: str = "bridge",
    bridge: str | None = None,
    internal: bool = False,
    mtu: int | None = None,
    labels: dict[str, str] | None = None,
) -> statedb.NetworkRecord:
    """Record network ``network_name`` with its subnet and the gateway's lease.

    With ``subnet`` the addressing is checked and must not overlap another network;
    without, the first pool block free of other networks and of ``host_routes`` (pass
    ``host_networks()``) is taken. A network already recorded is returned as it is
    when the addressing asked for (if any) matches it: ensuring a network twice is
    harmless, changing its addressing means removing it first."""
    wanted_subnet = None if subnet is None else _parse_network(subnet, what="subnet", network=network_name)
    wanted_gateway = None if gateway is None else _parse_address(gateway, what="gateway", network=network_name)
    wanted_range = None if ip_range is None else _parse_network(ip_range, what="ip_range", network=network_name)
    errors = _addressing_errors(network_name, wanted_subnet, wanted_gateway, wanted_range)
    if errors:
        raise IPAMError("; ".join(errors))
    avoid = [("the host", route) for route in host_routes]
    with db.transaction():
        existing = db.get_network(network_name)
        if existing is not None:
            _check_unchanged(existing, wanted_subnet, wanted_gateway, wanted_range)
            return existing
        others = [(f"network {other.name}", other.subnet) for other in db.list_networks()]
        if wanted_subnet is None:
            chosen = _first_free_block(network_name, pools, others + avoid)
        else:
            chosen = wanted_subnet
            for owner, used in others:
                if chosen.overlaps(used):
                    raise IPAMError(f"network {network_name}: subnet {chosen} overlaps subnet {used} of {owner}")
        record = db.put_network(
            statedb.NetworkRecord(
                name=network_name,
                subnet=chosen,
                gateway=wanted_gateway or default_gateway(chosen),
                ip_range=wanted_range,
                driver=driver,
                bridge=bridge,
                internal=internal,
                mtu=mtu,
                labels=dict(labels or {}),
            )
        )
        db.add_lease(statedb.Lease(network_name, record.gateway, GATEWAY_OWNER))
        return record


def _check_unchanged(
    existing: statedb.NetworkRecord,
    subnet: ipaddress.IPv4Network | None,
    gateway: ipaddress.IPv4Address | None,
    ip_range: ipaddress.IPv4Network | None,
) -> None:
    for what, wanted, recorded in (
        ("subnet", subnet, existing.subnet),
        ("gateway", gateway, existing.gateway),
        ("ip_range", ip_range, existing.ip_range),
    ):
        if wanted is not None and wanted != recorded:
            has = f"{what} {recorded}" if recorded is not None else f"no {what}"
            raise IPAMError(f"network {existing.name} already exists with {has}, not {wanted}: remove it first")


def remove_network(db: statedb.StateDB, name: str, *, force: bool = False) -> bool:
    """Forget network ``name`` with its gateway lease; False when it was not recorded.
    While any other owner holds an address it is refused, unless ``force`` (which
    drops those leases and the network's endpoints too)."""
    with db.transaction():
        if db.get_network(name) is None:
            return False
        holders = [lease for lease in db.list_leases(name) if lease.owner != GATEWAY_OWNER]
        if holders and not force:
            held = ", ".join(f"{lease.owner} ({lease.address})" for lease in holders)
            raise IPAMError(f"network {name} is still in use: addresses held by {held}")
        return db.delete_network(name)


# -- addresses --------------------------------------------------------------------------------


def _network(db: statedb.StateDB, name: str) -> statedb.NetworkRecord:
    network = db.get_network(name)
    if network is None:
        raise IPAMError(f"network {name} does not exist")
    return network


def _lowest_free(db: statedb.StateDB, network: statedb.NetworkRecord) -> ipaddress.IPv4Address:
    pool = network.ip_range or network.subnet
    skip = {int(address) for address in (*_reserved(network.subnet), network.gateway)}
    skip.update(int(lease.address) for lease in db.list_leases(network.name))
    for candidate in range(int(pool.network_address), int(pool.broadcast_address) + 1):
        if candidate not in skip:
            return ipaddress.IPv4Address(candidate)
    raise IPAMError(f"network {network.name}: no free address left in {pool}")


def _check_static(
    db: statedb.StateDB, network: statedb.NetworkRecord, owner: str, address: ipaddress.IPv4Address
) -> ipaddress.IPv4Address:
    error = _static_error(owner, network.name, address, network.subnet, network.gateway)
    if error is not None:
        raise IPAMError(error)
    holder = db.lease_of_address(network.name, address)
    if holder is not None:
        raise IPAMError(f"{owner}: address {address} on network {network.name} is already held by {holder.owner}")
    return address


def allocate_address(
    db: statedb.StateDB, network_name: str, owner: str, *, requested: AddressLike | None = None
) -> ipaddress.IPv4Address:
    """Lease an address of ``network_name`` to ``owner`` (``container/NAME``): ``requested``
    if given and free, else the lowest free one. An owner holding a lease gets it again;
    asking it for a different static address is an error (release first)."""
    if not owner:
        raise IPAMError(f"network {network_name}: an address needs an owner")
    wanted = None if requested is None else _parse_address(requested, what="requested address", network=network_name)
    with db.transaction():
        network = _network(db, network_name)
        held = db.get_lease(network_name, owner)
        if held is not None:
            if wanted is None or wanted == held.address:
                return held.address
            raise IPAMError(
                f"{owner} already holds {held.address} on network {network_name}, not {wanted}: release it first"
            )
        address = _lowest_free(db, network) if wanted is None else _check_static(db, network, owner, wanted)
        db.add_lease(statedb.Lease(network_name, address, owner))
        return address


def _refuse_gateway(owner: str) -> None:
    if owner == GATEWAY_OWNER:
        raise IPAMError("the gateway's lease is released only with its network (remove_network)")


def release(db: statedb.StateDB, network_name: str, owner: str) -> ipaddress.IPv4Address | None:
    """Give back ``owner``'s address on ``network_name``: the address, or None when it
    held none (releasing twice is harmless)."""
    _refuse_gateway(owner)
    lease = db.delete_lease(network_name, owner)
    return None if lease is None else lease.address


def release_all(db: statedb.StateDB, owner: str) -> list[statedb.Lease]:
    """Give back every address ``owner`` holds, on all networks (a container removed)."""
    _refuse_gateway(owner)
    with db.transaction():
        leases = db.list_leases(owner=owner)
        for lease in leases:
            db.delete_lease(lease.network, owner)
        return leases


# -- validation at plan time ------------------------------------------------------------------


class PlannedNetwork(NamedTuple):
    name: str
    subnet: NetworkLike | None = None
    gateway: AddressLike | None = None
    ip_range: NetworkLike | None = None


class PlannedStatic(NamedTuple):
    container: str
    network: str
    address: AddressLike


class _Parsed(NamedTuple):
    subnet: ipaddress.IPv4Network | None
    gateway: ipaddress.IPv4Address | None


def _parse_planned(network: PlannedNetwork, errors: list[str]) -> _Parsed | None:
    name = network.name
    try:
        subnet = None if network.subnet is None else _parse_network(network.subnet, what="subnet", network=name)
        gateway = None if network.gateway is None else _parse_address(network.gateway, what="gateway", network=name)
        ip_range = None if network.ip_range is None else _parse_network(network.ip_range, what="ip_range", network=name)
    except IPAMError as exc:
        errors.append(str(exc))
        return None
    problems = _addressing_errors(name, subnet, gateway, ip_range)
    errors.extend(problems)
    if problems:
        return None
    return _Parsed(subnet, gateway if gateway is not None or subnet is None else default_gateway(subnet))


def _network_errors(networks: Sequence[PlannedNetwork]) -> tuple[list[str], dict[str, _Parsed]]:
    errors: list[str] = []
    parsed: dict[str, _Parsed] = {}
    declared: set[str] = set()
    for network in networks:
        if network.name in declared:
            errors.append(f"network {network.name} is declared more than once")
            continue
        declared.add(network.name)
        result = _parse_planned(network, errors)
        if result is None:
            continue
        for other, seen in parsed.items():
            if result.subnet is not None and seen.subnet is not None and result.subnet.overlaps(seen.subnet):
                errors.append(
                    f"network {network.name}: subnet {result.subnet} overlaps subnet {seen.subnet} of network {other}"
                )
        parsed[network.name] = result
    return errors, parsed


def _statics_errors(statics: Sequence[PlannedStatic], networks: dict[str, _Parsed], declared: set[str]) -> list[str]:
    errors: list[str] = []
    holders: dict[tuple[str, ipaddress.IPv4Address], str] = {}
    for container, network_name, raw in statics:
        if network_name not in declared:
            errors.append(f"container {container}: static address on network {network_name}, which is not declared")
            continue
        network = networks.get(network_name)
        if network is None:
            continue  # its own errors are reported already
        try:
            address = _parse_address(raw, what=f"address of container {container}", network=network_name)
        except IPAMError as exc:
            errors.append(str(exc))
            continue
        if network.subnet is None or network.gateway is None:
            errors.append(
                f"container {container}: a static address ({address}) needs network {network_name} "
                "to declare its subnet"
            )
            continue
        problem = _static_error(f"container {container}", network_name, address, network.subnet, network.gateway)
        if problem is not None:
            errors.append(problem)
            continue
        holder = holders.setdefault((network_name, address), container)
        if holder != container:
            errors.append(
                f"container {container}: address {address} on network {network_name} is also given to {holder}"
            )
    return errors


# What validate_plan takes: the NamedTuples above or plain tuples in the same order.
NetworkEntry = PlannedNetwork | tuple[str, NetworkLike | None, AddressLike | None, NetworkLike | None]
StaticEntry = PlannedStatic | tuple[str, str, AddressLike]


def validate_plan(networks: Sequence[NetworkEntry], statics: Sequence[StaticEntry]) -> list[str]:
    """Every addressing error of a set of networks (``name, subnet, gateway, ip_range``)
    and static container addresses (``container, network, address``), without touching
    any state: overlapping subnets, gateways and ranges outside their subnet, static
    addresses outside the subnet, reserved, or given twice. Empty when all is well.

    ``networks`` must list every network the statics refer to; one without a subnet
    takes a pool block later and cannot have statics (Docker's rule)."""
    planned = [PlannedNetwork(*network) for network in networks]
    errors, parsed = _network_errors(planned)
    errors.extend(_statics_errors([PlannedStatic(*static) for static in statics], parsed, {n.name for n in planned}))
    return errors
