"""Bridge networks put together: IPAM and state (SQLite), links (pyroute2), rules
(nftables) and names (the DNS daemon), behind the calls the engine makes.

The Network seam of the architecture: ``create``/``remove`` a network, ``attach``
a container's network namespace (a handle made before its process) and
``detach`` it; ``connect``/``disconnect`` one more network of a namespace already
wired, leaving its other networks as they are. Every step is keyed by the container's name and idempotent, so a
pass killed half-way is completed or undone by the next ``attach``/``detach``:
leases and endpoints are rows, veths and rules are named after their owner.

Worked example::

    manager = NetworkManager("/var/lib/reconcile")
    manager.create("front", subnet="10.89.0.0/24")
    endpoints = manager.attach("web", "/var/lib/reconcile/containers/web/netns",
                               [Attachment("front", aliases=("www",))],
                               [PortMapping(host_port=8080, container_port=80)])
    manager.nameservers("web")        # ["10.89.0.1"]: the embedded DNS on the gateway
    manager.connect("web", "/var/lib/reconcile/containers/web/netns", Attachment("back"))  # eth1
    manager.disconnect("web", "back")  # eth1, its lease and its names gone; eth0 stays
    manager.detach("web")             # veths, rules, leases and names gone
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from reconciler.network import ipam
from reconciler.state.db import Endpoint, NetworkRecord, StateDB

#: The network a container joins when it names none, as Docker's ``bridge``.
DEFAULT_NETWORK = "bridge"
DEFAULT_ROOT = "/var/lib/reconcile"


class NetworkError(Exception):
    pass


class Attachment(NamedTuple):
    """One network a container joins: optional static address and DNS aliases."""

    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None


class PortMapping(NamedTuple):
    """``[host_ip:]host_port:container_port[/protocol]``."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str | None = None


def parse_ports(text: str) -> list[PortMapping]:
    """``-p`` as docker takes it: ``8080:80``, ``127.0.0.1:5353:53/udp``,
    ``9000-9002:9000-9002``; the container port alone is refused (no random ports)."""
    spec, _, protocol = text.partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp"):
        raise NetworkError(f"invalid port {text!r}: protocol must be tcp or udp")
    parts = spec.rsplit(":", 2)
    if len(parts) < 2:
        raise NetworkError(f"invalid port {text!r}: use [IP:]HOST_PORT:CONTAINER_PORT[/udp]")
    host_ip = parts[0] if len(parts) == 3 else None
    if host_ip is not None:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise NetworkError(f"invalid port {text!r}: {host_ip!r} is not an IPv4 address") from None
    host, container = _port_range(parts[-2], text), _port_range(parts[-1], text)
    if len(host) != len(container):
        raise NetworkError(f"invalid port {text!r}: the host and container ranges differ in length")
    return [PortMapping(h, c, protocol, host_ip) for h, c in zip(host, container, strict=True)]


def _port_range(text: str, whole: str) -> list[int]:
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise NetworkError(f"invalid port {whole!r}: {text!r} is not a port or range") from None
    if not 1 <= low <= high <= 65535:
        raise NetworkError(f"invalid port {whole!r}: ports are 1-65535")
    return list(range(low, high + 1))


def owner_of(container: str) -> str:
    """Who holds a lease in the state store."""
    return f"container/{container}"


def rule_owner(container: str) -> str:
    """Who owns published-port rules (nft comments allow no ``/``)."""
    return f"ctr.{container}"


def table_for(root: str) -> str:
    """Our nftables table: ``reconcile`` for the default root, a name of its own for
    any other (a test's), so one root's cleanup never drops another's rules."""
    if os.path.abspath(root) == DEFAULT_ROOT:
        return "reconcile"
    return "reconcile_" + hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:10]


class NetworkManager:
    def __init__(self, root: str, *, dns_port: int = 53, dns: bool = True) -> None:
        from reconciler.network.firewall import Firewall

        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.db = StateDB(self.root)
        self.firewall = Firewall(table_for(self.root), state_dir=self.root)
        self.dns_port = dns_port
        self.dns = dns

    def _key(self, name: str) -> str:
        """Link names hash the root too: two roots (a test's and the host's) may both
        have a network called ``bridge`` or a container called ``web``."""
        return name if self.root == DEFAULT_ROOT else f"{self.root}\0{name}"

    # --- networks ---------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        ip_range: str | None = None,
        internal: bool = False,
        mtu: int = 1500,
        labels: dict[str, str] | None = None,
    ) -> NetworkRecord:
        """Make (or complete) the network: its row and gateway lease, its bridge, its
        rules, and the DNS daemon listening on its gateway."""
        from reconciler.network import links

        try:
            with self.db.transaction():
                record = ipam.allocate_subnet(
                    self.db,
                    name,
                    subnet=subnet,
                    gateway=gateway,
                    ip_range=ip_range,
                    host_routes=[] if subnet else ipam.host_networks(),
                    bridge=links.bridge_name(self._key(name)),
                    internal=internal,
                    mtu=mtu,
                    labels=labels,
                )
        except ipam.IPAMError as exc:
            raise NetworkError(str(exc)) from None
        assert record.bridge is not None
        gateway_interface = ipaddress.IPv4Interface(f"{record.gateway}/{record.subnet.prefixlen}")
        rebuilt = not self.complete(record)
        links.ensure_bridge(record.bridge, gateway_interface, mtu=record.mtu or 1500)
        self.firewall.ensure_network(record.bridge, record.subnet, internal=record.internal)
        if rebuilt:  # deleted by hand: its containers' veths are still there, unattached
            for endpoint in self.db.list_endpoints(network=name):
                if endpoint.host_ifname:
                    links.enslave(endpoint.host_ifname, record.bridge)
        if self.dns:
            from reconciler.network import dns

            dns.ensure_daemon(self.root, port=self.dns_port)
        return record

    def get(self, name: str) -> NetworkRecord:
        record = self.db.get_network(name)
        if record is None:
            raise NetworkError(f"network {name!r} not found")
        return record

    def networks(self) -> list[NetworkRecord]:
        return self.db.list_networks()

    def users(self, name: str) -> list[str]:
        return sorted({e.container for e in self.db.list_endpoints(network=name)})

    def remove(self, name: str) -> None:
        """Remove a network no container is attached to; with the last one, our
        rules and the DNS daemon go too."""
        from reconciler.network import links

        record = self.get(name)
        users = self.users(name)
        if users:
            raise NetworkError(f"network {name!r} is in use by {', '.join(users)}: remove them first")
        if record.bridge:
            self.firewall.remove_network(record.bridge)
            links.remove_bridge(record.bridge)
        with self.db.transaction():
            ipam.remove_network(self.db, name, force=True)
        if not self.db.list_networks():
            self.firewall.remove_all()
            if self.dns:
                from reconciler.network import dns

                dns.stop_daemon(self.root)

    def ensure_default(self) -> NetworkRecord:
        record = self.db.get_network(DEFAULT_NETWORK)
        return record if record is not None and self.complete(record) else self.create(DEFAULT_NETWORK)

    def complete(self, record: NetworkRecord) -> bool:
        """Whether the network's bridge exists: one deleted by hand is drift, which
        ``create`` repairs."""
        return bool(record.bridge) and os.path.exists(f"/sys/class/net/{record.bridge}")

    def heal_firewall(self, published: dict[str, tuple[str, list[PortMapping]]]) -> list[str]:
        """Put back what is missing from our nftables table (a firewall reload or ``nft
        flush ruleset`` drops it, and with it masquerade and every published port):
        the rules of each network whose bridge exists, ``ip_forward`` when one of them
        needs it, and the ports in ``published``
        (owner → address, ports) of each owner missing any of its rules. One listing
        of the table when nothing is missing. What was put back, for the event log."""
        from reconciler.network.firewall import PUBLISH_CHAINS

        records = [record for record in self.db.list_networks() if record.bridge and self.complete(record)]
        if not records:
            return []
        rules = self.firewall.rules()
        networks = {rule.comment.split(":")[1] for rule in rules if rule.comment.startswith("net:")}
        counts: dict[str, int] = {}
        for rule in rules:
            if rule.published:
                counts[rule.comment] = counts.get(rule.comment, 0) + 1
        healed = []
        for record in records:
            assert record.bridge is not None
            if record.bridge not in networks:
                self.firewall.ensure_network(record.bridge, record.subnet, internal=record.internal)
                healed.append(f"network/{record.name}")
        if self.firewall.ensure_forwarding():
            healed.append("ip_forward")
        for owner, (address, ports) in sorted(published.items()):
            if ports and counts.get(owner, 0) != len(PUBLISH_CHAINS) * len(ports):
                self.publish(owner, address, ports)
                healed.append(owner)
        return healed

    def heal_dns(self) -> bool:
        """Start the embedded DNS daemon again if networks exist and it does not run
        (killed by hand, or by the OOM killer); True when it had to. A look at its pid
        file and /proc first, so a pass where it runs imports nothing more."""
        if not self.dns or not self.db.list_networks():
            return False
        from reconciler.runtime.state import process_start

        try:
            with open(os.path.join(self.root, "dns.pid")) as handle:  # dns.PID_FILE
                pid = int(handle.read().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and process_start(pid):
            return False
        from reconciler.network import dns

        if dns.running_pid(self.root) is not None:
            return False
        dns.ensure_daemon(self.root, port=self.dns_port)
        return True

    # --- containers -------------------------------------------------------

    def attach(
        self,
        container: str,
        netns_path: str,
        attachments: Sequence[Attachment],
        ports: Iterable[PortMapping] = (),
    ) -> list[Endpoint]:
        """Wire the namespace at ``netns_path``: one veth per network (``eth0`` on the
        first, which also gets the default route unless it is internal), leases,
        endpoint rows for DNS, and published ports to the first address. On any
        failure everything this container had is undone."""
        from reconciler.network import links

        owner = owner_of(container)
        try:
            endpoints = []
            for index, attachment in enumerate(attachments):
                record = self.get(attachment.network)
                if record.bridge is None or not self.complete(record):
                    record = self.create(record.name)  # a network whose bridge was lost (reboot): made again
                assert record.bridge is not None
                with self.db.transaction():
                    address = ipam.allocate_address(self.db, record.name, owner, requested=attachment.ipv4_address)
                host_ifname = links.host_veth_name(self._key(container), record.name)
                wired = links.attach(
                    netns_path,
                    bridge=record.bridge,
                    host_ifname=host_ifname,
                    ifname=f"eth{index}",
                    address=ipaddress.IPv4Interface(f"{address}/{record.subnet.prefixlen}"),
                    gateway=None if record.internal or index > 0 else record.gateway,
                    mtu=record.mtu or 1500,
                )
                aliases = (container, *attachment.aliases)
                endpoint = Endpoint(container, record.name, wired.ifname, address, wired.mac, aliases, host_ifname)
                with self.db.transaction():
                    self.db.put_endpoint(endpoint)
                endpoints.append(endpoint)
            self._publish(rule_owner(container), endpoints, list(ports))
            return endpoints
        except BaseException:
            with contextlib.suppress(Exception):
                self.detach(container)
            raise

    def _publish(self, owner: str, endpoints: list[Endpoint], ports: list[PortMapping]) -> None:
        from reconciler.network.firewall import FirewallError, published

        if not ports:
            return
        if not endpoints:
            raise NetworkError("published ports need a network (not --network none or host)")
        mine = {(r.published.host_port, r.published.protocol) for r in self.firewall.rules(owner) if r.published}
        try:
            wanted = [
                published(
                    host_ip=port.host_ip,
                    host_port=port.host_port,
                    container_ip=endpoints[0].address,
                    container_port=port.container_port,
                    protocol=port.protocol,
                )
                for port in ports
            ]
            for port in ports:
                if (port.host_port, port.protocol) not in mine:
                    _check_free(port)
            self.firewall.publish_all(owner, wanted)
        except FirewallError as exc:
            raise NetworkError(str(exc)) from None

    def publish(self, owner: str, address: str, ports: Sequence[PortMapping]) -> None:
        """Make ``ports`` exactly what ``owner`` (a Service) publishes, all to ``address``:
        re-pointing them at another replica is one nftables transaction, so no new
        connection is refused in between."""
        endpoint = Endpoint("", "", "", ipaddress.IPv4Address(address))
        self._publish(owner, [endpoint], list(ports))

    def unpublish(self, owner: str) -> None:
        self.firewall.unpublish(owner)

    def set_alias(self, container: str, alias: str, *, present: bool) -> None:
        """Add or take away a DNS name of the container on all its networks (a Service's
        name is on its healthy replicas only)."""
        with self.db.transaction():
            for endpoint in self.db.list_endpoints(container=container):
                names = tuple(a for a in endpoint.aliases if a != alias) + ((alias,) if present else ())
                if names != endpoint.aliases:
                    self.db.put_endpoint(endpoint._replace(aliases=names))

    def detach(self, container: str) -> None:
        """Undo ``attach`` (whatever part of it happened): rules, veths, endpoint
        rows and leases. Idempotent."""
        from reconciler.network import links

        owner = owner_of(container)
        self.firewall.unpublish(rule_owner(container))
        for endpoint in self.db.list_endpoints(container=container):
            links.detach(endpoint.host_ifname)
        for network in {lease.network for lease in self.db.list_leases(owner=owner)}:
            links.detach(links.host_veth_name(self._key(container), network))  # made before its row
        with self.db.transaction():
            for endpoint in self.db.list_endpoints(container=container):
                self.db.delete_endpoint(container, endpoint.network)
            ipam.release_all(self.db, owner)

    def connect(
        self,
        container: str,
        netns_path: str,
        attachment: Attachment,
        ports: Sequence[PortMapping] = (),
    ) -> Endpoint:
        """Join one more network with a namespace ``attach`` wired already (or with no
        network left): a veth under the next free ``ethN``, a lease, the endpoint row
        (its DNS names), and the published ``ports`` (the container's, all of them)
        to the address of its first interface (this one when it has no other). The default route goes
        through it when no other network of the container has a way out. The other
        networks are not touched; on failure only this network's part is undone."""
        from reconciler.network import links

        existing = self.db.list_endpoints(container=container)
        if any(endpoint.network == attachment.network for endpoint in existing):
            raise NetworkError(f"endpoint with name {container} already exists in network {attachment.network}")
        record = self.get(attachment.network)
        if record.bridge is None or not self.complete(record):
            record = self.create(record.name)
        assert record.bridge is not None
        used = {endpoint.ifname for endpoint in existing}
        ifname = next(f"eth{n}" for n in range(len(used) + 1) if f"eth{n}" not in used)
        outward = any(not self.get(endpoint.network).internal for endpoint in existing)
        owner = owner_of(container)
        host_ifname = links.host_veth_name(self._key(container), record.name)
        try:
            try:
                with self.db.transaction():
                    address = ipam.allocate_address(self.db, record.name, owner, requested=attachment.ipv4_address)
            except ipam.IPAMError as exc:  # the address taken, the subnet full
                raise NetworkError(str(exc)) from None
            wired = links.attach(
                netns_path,
                bridge=record.bridge,
                host_ifname=host_ifname,
                ifname=ifname,
                address=ipaddress.IPv4Interface(f"{address}/{record.subnet.prefixlen}"),
                gateway=None if record.internal or outward else record.gateway,
                mtu=record.mtu or 1500,
            )
            endpoint = Endpoint(
                container, record.name, wired.ifname, address, wired.mac, (container, *attachment.aliases), host_ifname
            )
            with self.db.transaction():
                self.db.put_endpoint(endpoint)
            self._publish(rule_owner(container), self._ordered(container), list(ports))
            return endpoint
        except BaseException:
            with contextlib.suppress(Exception):
                self._unwire(container, record.name, host_ifname)
            raise

    def disconnect(
        self,
        container: str,
        network: str,
        netns_path: str | None = None,
        ports: Sequence[PortMapping] = (),
    ) -> Endpoint:
        """Leave one network, the others staying as they are: its veth, lease and
        endpoint row (its DNS names) go. The published ``ports`` move to the address
        of the container's first remaining interface, or go with the last one; when
        the network was the way out, the default route moves to the first remaining
        network that has one (``netns_path`` given). The endpoint that was removed."""
        from reconciler.network import links

        endpoint = self.db.get_endpoint(container, network)
        if endpoint is None:
            raise NetworkError(f"container {container} is not connected to network {network}")
        record = self.db.get_network(network)
        self._unwire(container, network, endpoint.host_ifname)
        remaining = self._ordered(container)
        if remaining and ports:
            self._publish(rule_owner(container), remaining, list(ports))
        elif not remaining:
            self.firewall.unpublish(rule_owner(container))
        if netns_path and (record is None or not record.internal):
            for other in remaining:
                other_record = self.db.get_network(other.network)
                if other_record is not None and not other_record.internal:
                    links.set_default_route(netns_path, ifname=other.ifname, gateway=other_record.gateway)
                    break
        return endpoint

    def _ordered(self, container: str) -> list[Endpoint]:
        """The container's endpoints by interface number (``eth2`` before ``eth10``)."""
        endpoints = self.db.list_endpoints(container=container)
        return sorted(endpoints, key=lambda e: (len(e.ifname), e.ifname))

    def _unwire(self, container: str, network: str, host_ifname: str | None) -> None:
        """One network's part of a container gone: veth, endpoint row, lease. Idempotent."""
        from reconciler.network import links

        for name in {host_ifname or "", links.host_veth_name(self._key(container), network)} - {""}:
            links.detach(name)  # the recorded veth, and the one a killed connect made before its row
        with self.db.transaction():
            self.db.delete_endpoint(container, network)
            ipam.release(self.db, network, owner_of(container))

    def nameservers(self, container: str) -> list[str]:
        """What the container's resolv.conf names: the embedded DNS on the gateway of
        its first network that has one listening."""
        endpoints = self.db.list_endpoints(container=container)
        if not endpoints or not self.dns:
            return []
        first = min(endpoints, key=lambda e: e.ifname)
        return [str(self.get(first.network).gateway)]

    def close(self) -> None:
        self.db.close()


def _check_free(port: PortMapping) -> None:
    """A host process holding the port would never see the traffic: refuse as
    Docker's proxy does ("port is already allocated")."""
    kind = socket.SOCK_STREAM if port.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((port.host_ip or "0.0.0.0", port.host_port))
        except OSError as exc:
            raise NetworkError(
                f"host port {port.host_port}/{port.protocol} is already in use on this host ({exc.strerror})"
            ) from None
