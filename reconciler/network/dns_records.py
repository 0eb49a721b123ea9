"""The names the embedded DNS server answers, and who may see them.

Docker semantics: a container resolves the names of the networks it is attached to,
and only those. A name on a network is a container's name, one of its aliases on that
network, or a service name (which the engine registers as an alias of every healthy
replica, so it resolves to all of their addresses). The answer therefore depends on
who asks: ``lookup(client, name)`` takes the asking address.

Which networks a client is on:

- a client address that is a known endpoint belongs to its *container*, and the
  container sees every network it is attached to (the network of the asking address
  first, so a name on two of its networks answers with the address on the network it
  asked through, as Docker's first-endpoint-wins does);
- any other address sees the networks whose subnet contains it (the host querying a
  gateway address from that gateway, a container the records do not know yet).

Name forms: case-insensitive, with or without the trailing dot, and also
``NAME.NETWORK`` (Docker answers ``web.front`` too), which picks the network
explicitly among the client's own networks. Reverse (PTR) lookups give
``CONTAINER.NETWORK``, which resolves forward again.

``forwards(client)`` says whether names the records do not know may go to the
upstream resolvers: not for clients that are only on ``internal`` networks (Docker's
fix for CVE-2024-29018: the forwarder runs in the host's namespace, so forwarding
would be a way out of an internal network) and not for addresses on no network at
all (the server is not an open resolver for whoever reaches a gateway address).

This module has no dnslib dependency: it is pure lookups plus the SQLite reader.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)

_T = TypeVar("_T")

READ_TIMEOUT = 1.0  # seconds a read waits on a locked database (WAL readers rarely wait at all)


class Records(Protocol):
    """The server's view of the names. Called from the server's request threads, so
    implementations are thread-safe. ``client`` is the source address of the query.

    Example: a client ``10.213.1.5`` on network ``front`` (``10.213.1.0/24``) where
    container ``web`` has ``10.213.1.2`` and alias ``www``::

        lookup(IPv4Address("10.213.1.5"), "WWW.")       -> [IPv4Address("10.213.1.2")]
        lookup(IPv4Address("10.213.1.5"), "web.front")  -> [IPv4Address("10.213.1.2")]
        lookup(IPv4Address("10.213.1.5"), "example.org") -> None   (not ours: forward)
        reverse(IPv4Address("10.213.1.5"), IPv4Address("10.213.1.2")) -> "web.front"
    """

    def lookup(self, client: IPv4Address, name: str) -> list[IPv4Address] | None:
        """The addresses of ``name`` as ``client`` sees it; ``None`` when the name is not
        one of the client's networks' names. ``[]`` is a known name without addresses."""
        ...

    def reverse(self, client: IPv4Address, address: IPv4Address) -> str | None:
        """``CONTAINER.NETWORK`` (no trailing dot) of ``address`` as ``client`` sees it."""
        ...

    def forwards(self, client: IPv4Address) -> bool:
        """Whether unknown names from ``client`` may be sent to the upstream resolvers."""
        ...


def normalize(name: str) -> str:
    """The lookup key of a DNS name: lower case, without the one trailing dot."""
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


@dataclass(frozen=True)
class NetworkNames:
    """The names of one network: ``names`` keys are normalized; ``ptr`` maps an address
    to the container holding it."""

    name: str
    subnet: IPv4Network
    gateway: IPv4Address | None = None
    internal: bool = False
    names: Mapping[str, tuple[IPv4Address, ...]] = field(default_factory=dict)
    ptr: Mapping[IPv4Address, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of all networks' names: a reload builds a new one and swaps it
    in, so a lookup never sees half of an update."""

    networks: tuple[NetworkNames, ...] = ()
    # endpoint address -> names of every network its container is attached to
    members: Mapping[IPv4Address, frozenset[str]] = field(default_factory=dict)

    def client_networks(self, client: IPv4Address) -> list[NetworkNames]:
        """The networks whose names ``client`` sees, the one it asks through first."""
        attached = self.members.get(client)
        if attached is None:
            return [net for net in self.networks if client in net.subnet]
        mine = [net for net in self.networks if net.name in attached]
        return sorted(mine, key=lambda net: client not in net.subnet)  # stable: then by name

    def lookup(self, client: IPv4Address, name: str) -> list[IPv4Address] | None:
        key = normalize(name)
        if not key:
            return None
        networks = self.client_networks(client)
        for net in networks:
            if key in net.names:
                return list(net.names[key])
        head, dot, tail = key.rpartition(".")
        if dot:
            for net in networks:
                if tail == net.name.lower() and head in net.names:
                    return list(net.names[head])
        return None

    def reverse(self, client: IPv4Address, address: IPv4Address) -> str | None:
        for net in self.client_networks(client):
            if address in net.ptr:
                return f"{net.ptr[address]}.{net.name}"
        return None

    def forwards(self, client: IPv4Address) -> bool:
        return any(not net.internal for net in self.client_networks(client))

    def gateways(self) -> list[IPv4Address]:
        return sorted({net.gateway for net in self.networks if net.gateway is not None})


def _add(table: dict[str, list[IPv4Address]], name: str, address: IPv4Address) -> None:
    addresses = table.setdefault(normalize(name), [])
    if address not in addresses:
        addresses.append(address)


def _frozen(table: Mapping[str, list[IPv4Address]]) -> dict[str, tuple[IPv4Address, ...]]:
    return {name: tuple(addresses) for name, addresses in table.items() if name}


class StaticRecords:
    """Fixed names, for tests and for embedding: ``names`` is network -> {name ->
    addresses}, ``subnets`` is network -> subnet (membership by the client's address).
    The first name listed for an address is its PTR name."""

    def __init__(
        self,
        names: Mapping[str, Mapping[str, Sequence[IPv4Address | str]]],
        subnets: Mapping[str, IPv4Network | str],
        *,
        internal: Iterable[str] = (),
    ) -> None:
        internal = set(internal)
        unknown = (set(names) | internal) - set(subnets)
        if unknown:
            raise ValueError(f"networks without a subnet: {', '.join(sorted(unknown))}")
        networks = []
        for network in sorted(subnets):
            table: dict[str, list[IPv4Address]] = {}
            ptr: dict[IPv4Address, str] = {}
            for name, addresses in names.get(network, {}).items():
                table.setdefault(normalize(name), [])
                for address in addresses:
                    address = IPv4Address(address)
                    _add(table, name, address)
                    ptr.setdefault(address, normalize(name))
            networks.append(
                NetworkNames(
                    name=network,
                    subnet=IPv4Network(subnets[network]),
                    internal=network in internal,
                    names=_frozen(table),
                    ptr=ptr,
                )
            )
        self.snapshot = Snapshot(networks=tuple(networks))

    def lookup(self, client: IPv4Address, name: str) -> list[IPv4Address] | None:
        return self.snapshot.lookup(client, name)

    def reverse(self, client: IPv4Address, address: IPv4Address) -> str | None:
        return self.snapshot.reverse(client, address)

    def forwards(self, client: IPv4Address) -> bool:
        return self.snapshot.forwards(client)


@dataclass(frozen=True)
class _NetworkRow:
    name: str
    subnet: IPv4Network
    gateway: IPv4Address | None
    internal: bool


@dataclass(frozen=True)
class _EndpointRow:
    container: str
    network: str
    address: IPv4Address
    aliases: tuple[str, ...]


def _network_row(row: sqlite3.Row) -> _NetworkRow:
    keys = row.keys()
    subnet = IPv4Network(row["subnet"])
    gateway = IPv4Address(row["gateway"]) if "gateway" in keys and row["gateway"] else None
    if gateway is None and subnet.num_addresses > 2:
        gateway = subnet.network_address + 1  # the default gateway: the subnet's first address
    internal = bool(row["internal"]) if "internal" in keys else False
    return _NetworkRow(str(row["name"]), subnet, gateway, internal)


def _endpoint_row(row: sqlite3.Row) -> _EndpointRow:
    aliases = json.loads(row["aliases_json"] or "[]")
    if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
        raise ValueError(f"aliases_json is not a list of names: {row['aliases_json']!r}")
    return _EndpointRow(str(row["container"]), str(row["network"]), IPv4Address(row["address"]), tuple(aliases))


def _build_snapshot(networks: Iterable[_NetworkRow], endpoints: Iterable[_EndpointRow]) -> Snapshot:
    """Index rows: per network, container names and aliases to addresses, addresses to
    containers; per endpoint address, its container's networks."""
    known = {net.name: net for net in networks}
    tables: dict[str, dict[str, list[IPv4Address]]] = {name: {} for name in known}
    ptrs: dict[str, dict[IPv4Address, str]] = {name: {} for name in known}
    attached: dict[str, set[str]] = {}
    usable = sorted((ep for ep in endpoints if ep.network in known), key=lambda ep: (ep.network, ep.container))
    for ep in usable:
        _add(tables[ep.network], ep.container, ep.address)
        for alias in ep.aliases:
            _add(tables[ep.network], alias, ep.address)
        ptrs[ep.network].setdefault(ep.address, normalize(ep.container))
        attached.setdefault(ep.container, set()).add(ep.network)
    members = {ep.address: frozenset(attached[ep.container]) for ep in usable}
    return Snapshot(
        networks=tuple(
            NetworkNames(
                name=net.name,
                subnet=net.subnet,
                gateway=net.gateway,
                internal=net.internal,
                names=_frozen(tables[net.name]),
                ptr=ptrs[net.name],
            )
            for net in sorted(known.values(), key=lambda net: net.name)
        ),
        members=members,
    )


def _rows(conn: sqlite3.Connection, table: str) -> list[sqlite3.Row]:
    try:
        return list(conn.execute(f"SELECT * FROM {table}"))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # the state store has not created its schema yet
        raise


def _parsed(rows: Iterable[sqlite3.Row], parse: Callable[[sqlite3.Row], _T], what: str) -> list[_T]:
    """Parse each row; a bad row is skipped (and logged) rather than taking every name down."""
    out = []
    for row in rows:
        try:
            out.append(parse(row))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            log.warning("ignoring a bad %s row %s: %s", what, tuple(row), exc)
    return out


class SqliteRecords:
    """The names in the state database ``db_path`` (tables ``networks`` and ``endpoints``
    of ``reconciler.state.db``), re-read whenever the database changed, so a container
    resolves as soon as its endpoint row is committed.

    Change detection is SQLite's ``PRAGMA data_version`` on one long-lived read-only
    connection (it changes when another connection commits) plus the file's identity
    (a replaced or deleted file reopens). That costs one pragma per query, and nothing
    is re-read while nothing changes. A missing file or missing tables mean no names;
    an unreadable database keeps the last good names. Thread-safe.
    """

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(db_path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._version: int | None = None
        self._snapshot = Snapshot()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._identity, self._version = None, None, None

    def snapshot(self) -> Snapshot:
        """The current names, re-read first if the database changed."""
        with self._lock:
            try:
                self._refresh()
            except sqlite3.Error as exc:
                log.warning("cannot read %s, keeping the names read before: %s", self.path, exc)
                self._close()
            return self._snapshot

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._close()
            self._snapshot = Snapshot()
            return
        identity = (stat.st_dev, stat.st_ino)
        if self._conn is None or identity != self._identity:
            self._close()
            # mode=ro: this process only reads, and must never create the file.
            uri = pathlib.Path(self.path).absolute().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(
                uri, uri=True, timeout=READ_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._identity = identity
        version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version:
            return
        self._snapshot = self._read(self._conn)
        self._version = version

    @staticmethod
    def _read(conn: sqlite3.Connection) -> Snapshot:
        conn.execute("BEGIN")  # both tables from one consistent snapshot of the database
        try:
            networks = _parsed(_rows(conn, "networks"), _network_row, "networks")
            endpoints = _parsed(_rows(conn, "endpoints"), _endpoint_row, "endpoints")
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("COMMIT")
        return _build_snapshot(networks, endpoints)

    def gateways(self) -> list[IPv4Address]:
        """Every network's gateway address: where the daemon listens."""
        return self.snapshot().gateways()

    def lookup(self, client: IPv4Address, name: str) -> list[IPv4Address] | None:
        return self.snapshot().lookup(client, name)

    def reverse(self, client: IPv4Address, address: IPv4Address) -> str | None:
        return self.snapshot().reverse(client, address)

    def forwards(self, client: IPv4Address) -> bool:
        return self.snapshot().forwards(client)
