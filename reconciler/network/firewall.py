"""Our nftables table: masquerade, isolation between bridges, internal networks and
published ports.

Everything lives in one ``inet`` table of ours (``reconcile`` by default; tests pass
their own name), so we never read or write anybody else's rules and removing
everything is deleting one table. NAT chains sit in the same ``inet`` table, which
the kernel supports since 5.2.

The table holds four base chains and one set::

    set bridges       every bridge of ours, for the isolation rules
    chain forward     filter/forward: isolation and internal networks (drops only)
    chain prerouting  nat/prerouting: DNAT of published ports, traffic from outside
    chain output      nat/output: DNAT of published ports, traffic from the host
    chain postrouting nat/postrouting: masquerade out, hairpin, 127.0.0.1 sources

Per network (``net:BRIDGE:ROLE`` in the rule comment):

- ``isolate``: traffic from this bridge to another bridge of ours is dropped, unless
  the connection was DNAT-ed (a published port is reachable from every network, as
  Docker's userland proxy makes it).
- ``internal`` networks: nothing is forwarded into or out of the bridge except
  between its own ports.
- other networks: ``masquerade`` of the subnet leaving through another interface,
  ``hairpin`` (a container reaching a published port of its own network is
  masqueraded so the reply comes back through the host), ``localhost`` (sources in
  127.0.0.0/8, a connection to 127.0.0.1:PORT DNAT-ed to the bridge, are
  masqueraded; ``route_localnet`` on the bridge lets such packets be routed at all).

Published ports carry the owner (a container name) as their comment and are deleted
by handle. ``net.ipv4.ip_forward`` is turned on while a non-internal network exists;
its previous value is kept in ``STATE_DIR/ip_forward.previous`` and restored when the
last one goes.

Why ``nft -j -f -`` rather than pyroute2's ``nftables`` module: pyroute2 (0.9.7)
builds rules from raw netlink expressions (registers, payload offsets), has no
batches (so no atomic replace of a network's rules) and no comments on rules. The
JSON interface is the documented, stable front end of libnftables, one batch is one
kernel transaction, and a call costs ~3 ms. The state is read back from the kernel
(``nft -j list table``) for every change, so it is never stale; a file lock under
the state directory serialises our own processes' read-modify-write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Literal

Json = dict[str, Any]
L4Protocol = Literal["tcp", "udp"]

DEFAULT_TABLE = "reconcile"
FORWARD_STATE_FILE = "ip_forward.previous"
LOCK_FILE = "firewall.lock"
LOOPBACK = IPv4Network("127.0.0.0/8")

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_CHAINS: dict[str, Json] = {
    "forward": {"type": "filter", "hook": "forward", "prio": 0, "policy": "accept"},
    "prerouting": {"type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"},
    "output": {"type": "nat", "hook": "output", "prio": -100, "policy": "accept"},
    "postrouting": {"type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"},
}
_BRIDGES_SET = "bridges"
#: Each published port is one DNAT rule in each of these chains.
PUBLISH_CHAINS = ("prerouting", "output")


class FirewallError(Exception):
    """nft refused a change or could not be run; the message carries nft's words."""


class PortConflict(FirewallError):
    """Another owner already publishes that host port (for an overlapping host IP)."""


@dataclasses.dataclass(frozen=True)
class Published:
    """One published port: ``host_ip:host_port`` (every local address when
    ``host_ip`` is None) forwarded to ``container_ip:container_port``."""

    host_ip: IPv4Address | None
    host_port: int
    container_ip: IPv4Address
    container_port: int
    protocol: L4Protocol = "tcp"

    def overlaps(self, other: Published) -> bool:
        """True when both would catch the same packets (same protocol and port, and
        one binds every address or both bind the same one)."""
        same_ip = self.host_ip is None or other.host_ip is None or self.host_ip == other.host_ip
        return self.protocol == other.protocol and self.host_port == other.host_port and same_ip


@dataclasses.dataclass(frozen=True)
class Rule:
    """One rule of our table as the kernel reports it; ``published`` is set for the
    DNAT rules of a published port."""

    chain: str
    handle: int
    comment: str
    published: Published | None = None


@dataclasses.dataclass
class _Snapshot:
    """Our table as listed by nft: whether it exists, the bridges set, every rule."""

    exists: bool = False
    chains: set[str] = dataclasses.field(default_factory=set)
    has_set: bool = False
    bridges: set[str] = dataclasses.field(default_factory=set)
    rules: list[Rule] = dataclasses.field(default_factory=list)

    def complete(self) -> bool:
        """True when the table has all its chains and its set."""
        return self.has_set and self.chains >= set(_CHAINS)

    def network_rules(self, bridge: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.comment.startswith(f"net:{bridge}:")]

    def outward_networks(self) -> set[str]:
        """Bridges with a masquerade rule: the non-internal networks."""
        return {rule.comment.split(":")[1] for rule in self.rules if rule.comment.endswith(":masquerade")}


class Firewall:
    """The nftables side of our bridge networks, one ``inet`` table.

    Lifecycle: ``ensure_network`` for each network once its bridge exists;
    ``publish``/``publish_all`` when a container with ports starts and ``unpublish``
    when it stops; ``remove_network`` when a network goes (the last one drops the
    table). ``state_dir`` holds the lock and the saved ``ip_forward``;
    ``sysctl_root`` lets tests point the sysctl writes at a temporary tree.
    """

    def __init__(
        self, table: str = DEFAULT_TABLE, *, state_dir: str, sysctl_root: str = "/proc/sys", nft: str = "nft"
    ) -> None:
        if not _TABLE.match(table):
            raise FirewallError(f"invalid nftables table name {table!r}")
        self.table = table
        self.state_dir = state_dir
        self.sysctl_root = sysctl_root
        self.nft = nft

    # --- networks ---------------------------------------------------------------

    def ensure_network(self, bridge: str, subnet: IPv4Network, *, internal: bool) -> None:
        """Install (or replace, in one transaction) the rules of the network on
        ``bridge``, then set ``route_localnet`` on the bridge and ``ip_forward`` as the
        networks now need. The bridge must exist (its sysctls live with it)."""
        _check_bridge(bridge)
        with self._locked():
            if not internal:  # first: it fails before any rule changes when the bridge is missing
                self._write_sysctl(("net", "ipv4", "conf", bridge, "route_localnet"), "1")
            snapshot = self._snapshot()
            batch = self._base(snapshot)
            batch += [self._delete_rule(rule) for rule in snapshot.network_rules(bridge)]
            batch.append({"add": {"element": self._set_ref(elem=[bridge])}})
            batch += [{"add": {"rule": rule}} for rule in self._network_rules(bridge, subnet, internal=internal)]
            self._apply(batch)
            outward = snapshot.outward_networks() - {bridge}
            if not internal:
                outward.add(bridge)
            self._set_forwarding(needed=bool(outward))

    def remove_network(self, bridge: str) -> None:
        """Delete the network's rules; with the last network the whole table goes.
        Restores ``ip_forward`` when no non-internal network remains. Idempotent."""
        _check_bridge(bridge)
        with self._locked():
            snapshot = self._snapshot()
            if snapshot.exists and not snapshot.bridges - {bridge}:
                self._drop_table()
            elif snapshot.exists:
                batch = [self._delete_rule(rule) for rule in snapshot.network_rules(bridge)]
                if bridge in snapshot.bridges:
                    batch.append({"delete": {"element": self._set_ref(elem=[bridge])}})
                if batch:
                    self._apply(batch)
            self._set_forwarding(needed=bool(snapshot.outward_networks() - {bridge}))

    def networks(self) -> dict[str, bool]:
        """Our bridges, each mapped to whether its network is internal."""
        snapshot = self._snapshot()
        outward = snapshot.outward_networks()
        return {bridge: bridge not in outward for bridge in sorted(snapshot.bridges)}

    def ensure_forwarding(self) -> bool:
        """Turn ``ip_forward`` back on if something else turned it off while a network
        of ours needs it (``sysctl --system`` with a 0 in sysctl.conf does); True when
        it had to. The value saved when we first turned it on is kept for the end."""
        with self._locked():
            if not self._snapshot().outward_networks():
                return False
            if self._read_sysctl(("net", "ipv4", "ip_forward")) == "1":
                return False
            self._set_forwarding(needed=True)
            return True

    def remove_all(self) -> None:
        """Drop our table and restore ``ip_forward``. Idempotent."""
        with self._locked():
            self._drop_table()
            self._set_forwarding(needed=False)

    # --- published ports -----------------------------------------------------------

    def publish(
        self,
        owner: str,
        *,
        host_ip: str | IPv4Address | None,
        host_port: int,
        container_ip: str | IPv4Address,
        container_port: int,
        protocol: L4Protocol = "tcp",
    ) -> None:
        """Add one published port for ``owner`` (kept with its other ports). Publishing
        the same mapping again changes nothing; a port another owner publishes raises
        PortConflict. ``host_ip`` None or ``0.0.0.0`` means every local address,
        127.0.0.1 included."""
        port = published(
            host_ip=host_ip,
            host_port=host_port,
            container_ip=container_ip,
            container_port=container_port,
            protocol=protocol,
        )
        _check_owner(owner)
        with self._locked():
            snapshot = self._snapshot()
            mine = {rule.published for rule in snapshot.rules if rule.comment == owner and rule.published}
            if port in mine:
                return
            for other in mine:
                if other.overlaps(port):
                    raise PortConflict(f"{owner} already publishes {_describe(other)}")
            self._check_conflicts(snapshot, owner, [port])
            self._apply(self._base(snapshot) + self._publish_rules(owner, port))

    def publish_all(self, owner: str, ports: Iterable[Published]) -> None:
        """Make ``ports`` exactly the published ports of ``owner``, in one transaction
        (a range such as ``9000-9002:9000-9002`` arrives expanded, one per port)."""
        _check_owner(owner)
        wanted = list(dict.fromkeys(ports))
        for a_index, first in enumerate(wanted):
            for second in wanted[a_index + 1 :]:
                if first.overlaps(second):
                    raise PortConflict(f"{owner} publishes {_describe(first)} twice")
        with self._locked():
            snapshot = self._snapshot()
            current = [rule for rule in snapshot.rules if rule.comment == owner]
            if len(current) == 2 * len(wanted) and {rule.published for rule in current} == set(wanted):
                return  # already so: a periodic reconcile changes nothing
            self._check_conflicts(snapshot, owner, wanted)
            batch = self._base(snapshot) + [self._delete_rule(rule) for rule in current]
            for port in wanted:
                batch += self._publish_rules(owner, port)
            self._apply(batch)

    def unpublish(self, owner: str) -> None:
        """Delete every published port of ``owner``. Idempotent."""
        _check_owner(owner)
        with self._locked():
            doomed = [self._delete_rule(rule) for rule in self._snapshot().rules if rule.comment == owner]
            if doomed:
                self._apply(doomed)

    def rules(self, owner: str | None = None) -> list[Rule]:
        """Rules of our table (all, or only the published ports of ``owner``)."""
        found = self._snapshot().rules
        return found if owner is None else [rule for rule in found if rule.comment == owner]

    # --- rule construction --------------------------------------------------------

    def _network_rules(self, bridge: str, subnet: IPv4Network, *, internal: bool) -> list[Json]:
        not_dnat = _match({"ct": {"key": "status"}}, "dnat", op="!")
        rules = [
            self._rule(
                "forward",
                f"net:{bridge}:isolate",
                [_iif(bridge), _match(_meta("oifname"), f"@{_BRIDGES_SET}"), _oif(bridge, op="!="), not_dnat],
                {"drop": None},
            )
        ]
        if internal:
            rules += [
                self._rule("forward", f"net:{bridge}:internal", [_iif(bridge), _oif(bridge, op="!=")], {"drop": None}),
                self._rule("forward", f"net:{bridge}:internal", [_oif(bridge), _iif(bridge, op="!=")], {"drop": None}),
            ]
            return rules
        dnat = _match({"ct": {"key": "status"}}, "dnat", op="in")
        masquerade = {"masquerade": None}
        return [
            *rules,
            self._rule("postrouting", f"net:{bridge}:masquerade", [_saddr(subnet), _oif(bridge, op="!=")], masquerade),
            self._rule("postrouting", f"net:{bridge}:hairpin", [_oif(bridge), _saddr(subnet), dnat], masquerade),
            self._rule("postrouting", f"net:{bridge}:localhost", [_oif(bridge), _saddr(LOOPBACK)], masquerade),
        ]

    def _publish_rules(self, owner: str, port: Published) -> list[Json]:
        """The same DNAT in prerouting (from outside and from containers) and output
        (from the host itself, 127.0.0.1 included)."""
        if port.host_ip is None:
            destination = [
                _match(_meta("nfproto"), "ipv4"),
                _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"),
            ]
        else:
            destination = [_match(_payload("ip", "daddr"), str(port.host_ip))]
        matches = [*destination, _match(_payload(port.protocol, "dport"), port.host_port)]
        dnat = {"dnat": {"family": "ip", "addr": str(port.container_ip), "port": port.container_port}}
        return [{"add": {"rule": self._rule(chain, owner, matches, dnat)}} for chain in PUBLISH_CHAINS]

    def _rule(self, chain: str, comment: str, matches: list[Json], verdict: Json) -> Json:
        return {
            "family": "inet",
            "table": self.table,
            "chain": chain,
            "comment": comment,
            "expr": [*matches, verdict],
        }

    def _base(self, snapshot: _Snapshot) -> list[Json]:
        """Adds of the table, its chains and its set, when the snapshot lacks any, so
        no change depends on an earlier one having happened. Skipped otherwise: the
        kernel re-registers the hook of a base chain that is added again, which costs
        ~14 ms per batch."""
        if snapshot.complete():
            return []
        batch: list[Json] = [{"add": {"table": {"family": "inet", "name": self.table}}}]
        for name, spec in _CHAINS.items():
            batch.append({"add": {"chain": {"family": "inet", "table": self.table, "name": name, **spec}}})
        batch.append({"add": {"set": self._set_ref(type="ifname")}})
        return batch

    def _set_ref(self, **extra: Any) -> Json:
        return {"family": "inet", "table": self.table, "name": _BRIDGES_SET, **extra}

    def _delete_rule(self, rule: Rule) -> Json:
        return {"delete": {"rule": {"family": "inet", "table": self.table, "chain": rule.chain, "handle": rule.handle}}}

    def _check_conflicts(self, snapshot: _Snapshot, owner: str, ports: list[Published]) -> None:
        for rule in snapshot.rules:
            if rule.published is None or rule.comment == owner:
                continue
            for port in ports:
                if port.overlaps(rule.published):
                    raise PortConflict(f"{_describe(port)} is already published by {rule.comment}")

    # --- nft and the kernel -------------------------------------------------------

    def _snapshot(self) -> _Snapshot:
        result = self._run(["list", "table", "inet", self.table], None)
        if result.returncode != 0:
            if "No such file or directory" in result.stderr:
                return _Snapshot()
            raise FirewallError(f"nft cannot list table inet {self.table}: {result.stderr.strip()}")
        try:
            items = json.loads(result.stdout)["nftables"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FirewallError(f"nft listed table inet {self.table} in an unexpected form: {exc}") from exc
        snapshot = _Snapshot(exists=True)
        for item in items:
            if "chain" in item:
                snapshot.chains.add(item["chain"].get("name"))
            elif "set" in item and item["set"].get("name") == _BRIDGES_SET:
                snapshot.has_set = True
                snapshot.bridges = {str(element) for element in item["set"].get("elem", [])}
            elif "rule" in item:
                snapshot.rules.append(_parse_rule(item["rule"]))
        return snapshot

    def _apply(self, batch: list[Json]) -> None:
        result = self._run(["-f", "-"], json.dumps({"nftables": batch}))
        if result.returncode != 0:
            raise FirewallError(f"nft refused a change to table inet {self.table}: {result.stderr.strip()}")

    def _drop_table(self) -> None:
        """Add-then-delete in one transaction: deletes the table whether or not it exists."""
        table = {"family": "inet", "name": self.table}
        self._apply([{"add": {"table": table}}, {"delete": {"table": table}}])

    def _run(self, args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([self.nft, "-j", *args], input=stdin, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise FirewallError(f"cannot run {self.nft}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write of the table among our processes."""
        os.makedirs(self.state_dir, exist_ok=True)
        fd = os.open(os.path.join(self.state_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _set_forwarding(self, *, needed: bool) -> None:
        """Turn ``ip_forward`` on (saving the previous value once) or restore it."""
        key = ("net", "ipv4", "ip_forward")
        saved = os.path.join(self.state_dir, FORWARD_STATE_FILE)
        if needed:
            if not os.path.exists(saved):
                _write_atomically(saved, self._read_sysctl(key))
            self._write_sysctl(key, "1")
            return
        try:
            with open(saved) as handle:
                previous = handle.read().strip()
        except FileNotFoundError:
            return
        self._write_sysctl(key, previous)
        os.unlink(saved)

    def _read_sysctl(self, key: tuple[str, ...]) -> str:
        path = os.path.join(self.sysctl_root, *key)
        try:
            with open(path) as handle:
                return handle.read().strip()
        except OSError as exc:
            raise FirewallError(f"cannot read {path}: {exc.strerror}") from exc

    def _write_sysctl(self, key: tuple[str, ...], value: str) -> None:
        path = os.path.join(self.sysctl_root, *key)
        try:
            with open(path, "w") as handle:
                handle.write(value)
        except OSError as exc:
            raise FirewallError(f"cannot write {value} to {path}: {exc.strerror}") from exc


def published(
    *,
    host_ip: str | IPv4Address | None,
    host_port: int,
    container_ip: str | IPv4Address,
    container_port: int,
    protocol: str = "tcp",
) -> Published:
    """A validated Published: IPv4 addresses, ports 1-65535, tcp or udp; ``0.0.0.0``
    for ``host_ip`` is the same as None (every local address)."""
    try:
        host = IPv4Address(host_ip) if host_ip not in (None, "") else None
        container = IPv4Address(container_ip)
    except ValueError as exc:
        raise FirewallError(f"invalid address for a published port: {exc}") from exc
    for what, port in (("host", host_port), ("container", container_port)):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise FirewallError(f"invalid {what} port {port!r}: use 1-65535")
    if protocol not in ("tcp", "udp"):
        raise FirewallError(f"invalid protocol {protocol!r}: use tcp or udp")
    if host is not None and host.is_unspecified:
        host = None
    proto: L4Protocol = "tcp" if protocol == "tcp" else "udp"
    return Published(host, host_port, container, container_port, proto)


# --- JSON expression helpers ---------------------------------------------------------


def _match(left: Json, right: Any, *, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> Json:
    return {"meta": {"key": key}}


def _payload(protocol: str, field: str) -> Json:
    return {"payload": {"protocol": protocol, "field": field}}


def _iif(bridge: str, *, op: str = "==") -> Json:
    return _match(_meta("iifname"), bridge, op=op)


def _oif(bridge: str, *, op: str = "==") -> Json:
    return _match(_meta("oifname"), bridge, op=op)


def _saddr(network: IPv4Network) -> Json:
    return _match(_payload("ip", "saddr"), {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}})


def _parse_rule(raw: Json) -> Rule:
    comment = str(raw.get("comment", ""))
    return Rule(chain=raw["chain"], handle=int(raw["handle"]), comment=comment, published=_parse_published(raw))


def _parse_published(raw: Json) -> Published | None:
    """Read back a DNAT rule of ours (see ``_publish_rules``); None for any other."""
    host_ip: IPv4Address | None = None
    protocol = host_port = dnat = None
    for expr in raw.get("expr", []):
        if "dnat" in expr:
            dnat = expr["dnat"]
        match = expr.get("match", {})
        left = match.get("left", {})
        payload = left.get("payload", {}) if isinstance(left, dict) else {}
        if payload.get("protocol") in ("tcp", "udp") and payload.get("field") == "dport":
            protocol, host_port = payload["protocol"], match.get("right")
        elif payload == {"protocol": "ip", "field": "daddr"} and isinstance(match.get("right"), str):
            host_ip = IPv4Address(match["right"])
    if dnat is None or protocol is None or not isinstance(host_port, int):
        return None
    return Published(host_ip, host_port, IPv4Address(dnat["addr"]), int(dnat["port"]), protocol)


def _describe(port: Published) -> str:
    return f"{port.host_ip or '0.0.0.0'}:{port.host_port}/{port.protocol}"


def _check_bridge(bridge: str) -> None:
    if not _IFNAME.match(bridge) or bridge in (".", ".."):
        raise FirewallError(f"invalid bridge name {bridge!r}: 1-15 of [A-Za-z0-9_.-]")


def _check_owner(owner: str) -> None:
    if not _OWNER.match(owner):
        raise FirewallError(f"invalid owner {owner!r}: 1-100 of [A-Za-z0-9_.-], starting with a letter or digit")


def _write_atomically(path: str, value: str) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write(value)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
