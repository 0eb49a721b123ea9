"""The state store: one SQLite database at ``ROOT/state.db``, shared by every engine process.

Several processes (the agent, a CLI command, a container monitor) and several
threads in each read and change the same records, so the store is built for
that:

- **WAL journal**: readers never block the writer nor the writer the readers.
- **``transaction()`` is ``BEGIN IMMEDIATE``**: the write lock is taken when the
  transaction starts, not at its first write, so a read-modify-write (find the
  lowest free address, then lease it) is serialized across processes, and two
  writers never both read the same "free" row. A waiting writer retries for
  ``BUSY_TIMEOUT`` seconds (SQLite's ``busy_timeout``) before it gives up.
- **Threads**: one connection per ``StateDB``, opened with
  ``check_same_thread=False`` and guarded by a re-entrant lock that a thread
  holds for a whole transaction, so statements of two threads never interleave
  in one transaction. One connection (rather than one per thread) keeps closing
  simple and costs nothing here: SQLite serializes writers anyway.
- **fork**: a SQLite connection must not be used across ``fork()``. A child
  process drops the inherited connection (without closing it, which would touch
  the parent's locks and WAL index) and opens its own on first use. Fork outside
  transactions: SQLite's per-process lock bookkeeping is copied into the child,
  which would then find the database locked by itself forever; a child forked
  while a transaction was open gets a ``StateError`` saying so instead.

Schema changes are forward migrations: ``MIGRATIONS[i]`` takes the schema from
version ``i`` to ``i + 1``; the version lives in ``schema_version``. A database
from a newer program is refused rather than misread.

Reads outside a transaction run in autocommit mode: each statement sees one
consistent snapshot. Group reads and writes that must agree in ``transaction()``;
transactions nest (an inner one is a savepoint, rolled back alone if it fails).
Callers never see ``sqlite3`` exceptions: every database failure is a
``StateError`` naming the file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

BUSY_TIMEOUT = 5.0  # seconds a writer waits for another process's transaction
FILENAME = "state.db"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE objects (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            stack TEXT NOT NULL DEFAULT '',
            manifest_json TEXT NOT NULL DEFAULT '{}',
            digest TEXT NOT NULL DEFAULT '',
            status_json TEXT NOT NULL DEFAULT '{}',
            updated_at REAL NOT NULL,
            PRIMARY KEY (kind, name)
        )""",
        "CREATE INDEX objects_by_stack ON objects (stack)",
        """CREATE TABLE networks (
            name TEXT PRIMARY KEY,
            driver TEXT NOT NULL,
            subnet TEXT NOT NULL,
            gateway TEXT NOT NULL,
            ip_range TEXT,
            bridge TEXT,
            internal INTEGER NOT NULL DEFAULT 0 CHECK (internal IN (0, 1)),
            mtu INTEGER,
            labels_json TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE leases (
            network TEXT NOT NULL REFERENCES networks (name) ON DELETE CASCADE,
            address TEXT NOT NULL,
            owner TEXT NOT NULL,
            PRIMARY KEY (network, address),
            UNIQUE (network, owner)
        )""",
        "CREATE INDEX leases_by_owner ON leases (owner)",
        """CREATE TABLE endpoints (
            container TEXT NOT NULL,
            network TEXT NOT NULL REFERENCES networks (name) ON DELETE CASCADE,
            ifname TEXT NOT NULL,
            address TEXT NOT NULL,
            mac TEXT NOT NULL DEFAULT '',
            aliases_json TEXT NOT NULL DEFAULT '[]',
            host_ifname TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (container, network)
        )""",
        "CREATE INDEX endpoints_by_network ON endpoints (network)",
        """CREATE TABLE volumes (
            name TEXT PRIMARY KEY,
            driver TEXT NOT NULL,
            path TEXT NOT NULL,
            labels_json TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL
        )""",
    ),
)


class StateError(Exception):
    """The state database cannot be opened, read or written; the message names the file."""


# The row types are NamedTuples: cheap, immutable, and comparable in tests. Their dict
# fields are never edited in place: make a changed record with ``_replace``.


class ObjectRecord(NamedTuple):
    """What the reconcile loop remembers about one object it manages."""

    kind: str
    name: str
    stack: str = ""
    manifest: dict[str, Any] = {}
    digest: str = ""  # content hash of the spec, to tell a changed spec apart
    status: dict[str, Any] = {}
    updated_at: float = 0.0  # set by put_object


class NetworkRecord(NamedTuple):
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    ip_range: ipaddress.IPv4Network | None = None
    driver: str = "bridge"
    bridge: str | None = None  # the host bridge's name, once the link layer chose it
    internal: bool = False
    mtu: int | None = None
    labels: dict[str, str] = {}
    created_at: float = 0.0


class Lease(NamedTuple):
    """One address of one network held by one owner (``container/NAME``, ``gateway``)."""

    network: str
    address: ipaddress.IPv4Address
    owner: str


class Endpoint(NamedTuple):
    """A container's attachment to a network: its interface inside the container and outside."""

    container: str
    network: str
    ifname: str  # inside the container: eth0, eth1, …
    address: ipaddress.IPv4Address
    mac: str = ""
    aliases: tuple[str, ...] = ()  # extra DNS names on this network
    host_ifname: str = ""  # the host-side veth


class VolumeRecord(NamedTuple):
    name: str
    driver: str
    path: str
    labels: dict[str, str] = {}
    created_at: float = 0.0


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# Every open StateDB, so that a forked child can drop their connections (see _after_fork).
_OPEN: weakref.WeakSet[StateDB] = weakref.WeakSet()
# Connections inherited over fork: kept referenced so they are never closed (and
# never checkpoint the parent's WAL) in the child.
_INHERITED: list[sqlite3.Connection] = []
# Databases (by real path) that had a transaction open when this process was forked.
_LOCKED_AT_FORK: set[str] = set()


def _after_fork() -> None:
    for db in list(_OPEN):
        db._forget_inherited_connection()


os.register_at_fork(after_in_child=_after_fork)


class StateDB:
    """The state store under ``root``. Open once per process and share it between threads.

    Example::

        db = StateDB("/var/lib/reconcile")
        with db.transaction():
            if db.get_network("front") is None:
                db.put_network(NetworkRecord("front", subnet, gateway))
    """

    def __init__(self, root: str, *, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> None:
        self.root = root
        self.path = os.path.join(root, FILENAME)
        self._migrations = migrations
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._savepoints = 0
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {root}: {exc.strerror}") from exc
        _OPEN.add(self)
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # -- connection and transactions --------------------------------------------------

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _forget_inherited_connection(self) -> None:
        """After fork, in the child: the parent's lock may be held by a thread that
        does not exist here, and its connection must not be used (see module doc)."""
        self._lock = threading.RLock()
        if self._conn is not None:
            if self._conn.in_transaction:
                _LOCKED_AT_FORK.add(os.path.realpath(self.path))
            _INHERITED.append(self._conn)
            self._conn = None
        self._savepoints = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if os.path.realpath(self.path) in _LOCKED_AT_FORK:
            raise StateError(
                f"the state database {self.path} cannot be used in this process: it was forked while a "
                "transaction was open, and SQLite's locks came along (fork outside transactions)"
            )
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the state database {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            self._use_wal(conn)
            # In WAL mode NORMAL still survives the crash of any process; only a power
            # loss may drop the last transactions, and then every container is gone too.
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        return conn

    @staticmethod
    def _use_wal(conn: sqlite3.Connection) -> None:
        """Switch a new database to WAL (the mode is stored in the file). The switch needs
        an exclusive lock and SQLite does not wait for it (no busy handler), so when
        several processes open a fresh database at once the losers retry here."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _error(self, exc: sqlite3.Error) -> StateError:
        if type(exc) is sqlite3.DatabaseError:  # SQLITE_CORRUPT, SQLITE_NOTADB: not a usable database
            return StateError(
                f"the state database {self.path} is unreadable ({exc}); "
                "restore it from a backup, or move it away to start with empty state"
            )
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return StateError(f"the state database {self.path} stayed locked by another process for {BUSY_TIMEOUT} s")
        return StateError(f"state database {self.path}: {exc}")

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StateDB]:
        """Everything in the block commits together or not at all (it rolls back on any
        exception). The write lock is taken at the start (``BEGIN IMMEDIATE``): what the
        block reads stays true until it commits. Inside another transaction this one is
        a savepoint."""
        with self._lock, self._translated():
            conn = self._connection()
            if conn.in_transaction:
                with self._savepoint(conn):
                    yield self
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # also after a failed COMMIT: never leave one open
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[None]:
        self._savepoints += 1
        name = f"nested_{self._savepoints}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        else:
            conn.execute(f"RELEASE {name}")
        finally:
            self._savepoints -= 1

    def _execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        with self._lock, self._translated():
            return self._connection().execute(sql, params)

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._translated():
            return self._connection().execute(sql, params).fetchall()

    # -- schema ------------------------------------------------------------------------

    def schema_version(self) -> int:
        rows = self._query("SELECT version FROM schema_version")
        return int(rows[0][0]) if rows else 0

    def _migrate(self) -> None:
        """Bring the schema to ``len(migrations)`` in one transaction, so concurrent
        first opens by several processes apply each migration exactly once."""
        with self.transaction():
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = self.schema_version()
            if version > len(self._migrations):
                raise StateError(
                    f"the state database {self.path} has schema version {version}, newer than this "
                    f"program knows ({len(self._migrations)}): upgrade reconcile"
                )
            for statements in self._migrations[version:]:
                for statement in statements:
                    self._execute(statement)
            if version == 0:
                self._execute("INSERT INTO schema_version (version) VALUES (?)", (len(self._migrations),))
            else:
                self._execute("UPDATE schema_version SET version = ?", (len(self._migrations),))

    # -- objects -------------------------------------------------------------------------

    _OBJECT_COLUMNS = "kind, name, stack, manifest_json, digest, status_json, updated_at"

    @staticmethod
    def _object(row: tuple[Any, ...]) -> ObjectRecord:
        kind, name, stack, manifest_json, digest, status_json, updated_at = row
        return ObjectRecord(kind, name, stack, json.loads(manifest_json), digest, json.loads(status_json), updated_at)

    def put_object(self, record: ObjectRecord) -> ObjectRecord:
        """Insert or replace; returns the record as stored (with ``updated_at`` set)."""
        stored = record._replace(updated_at=time.time())
        self._execute(
            f"INSERT OR REPLACE INTO objects ({self._OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                stored.kind,
                stored.name,
                stored.stack,
                _dumps(stored.manifest),
                stored.digest,
                _dumps(stored.status),
                stored.updated_at,
            ),
        )
        return stored

    def get_object(self, kind: str, name: str) -> ObjectRecord | None:
        rows = self._query(f"SELECT {self._OBJECT_COLUMNS} FROM objects WHERE kind = ? AND name = ?", (kind, name))
        return self._object(rows[0]) if rows else None

    def delete_object(self, kind: str, name: str) -> bool:
        return self._execute("DELETE FROM objects WHERE kind = ? AND name = ?", (kind, name)).rowcount > 0

    def list_objects(self, kind: str | None = None, *, stack: str | None = None) -> list[ObjectRecord]:
        """Sorted by kind, then name."""
        rows = self._query(
            f"SELECT {self._OBJECT_COLUMNS} FROM objects "
            "WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR stack = ?2) ORDER BY kind, name",
            (kind, stack),
        )
        return [self._object(row) for row in rows]

    # -- networks ------------------------------------------------------------------------

    _NETWORK_COLUMNS = "name, subnet, gateway, ip_range, driver, bridge, internal, mtu, labels_json, created_at"

    @staticmethod
    def _network(row: tuple[Any, ...]) -> NetworkRecord:
        name, subnet, gateway, ip_range, driver, bridge, internal, mtu, labels_json, created_at = row
        return NetworkRecord(
            name=name,
            subnet=ipaddress.IPv4Network(subnet),
            gateway=ipaddress.IPv4Address(gateway),
            ip_range=None if ip_range is None else ipaddress.IPv4Network(ip_range),
            driver=driver,
            bridge=bridge,
            internal=bool(internal),
            mtu=mtu,
            labels=json.loads(labels_json),
            created_at=created_at,
        )

    def put_network(self, record: NetworkRecord) -> NetworkRecord:
        """Insert, or update a network in place (its leases and endpoints stay: an upsert,
        never a delete and re-insert). ``created_at`` is set on insert."""
        stored = record if record.created_at else record._replace(created_at=time.time())
        self._execute(
            f"INSERT INTO networks ({self._NETWORK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET subnet = excluded.subnet, gateway = excluded.gateway, "
            "ip_range = excluded.ip_range, driver = excluded.driver, bridge = excluded.bridge, "
            "internal = excluded.internal, mtu = excluded.mtu, labels_json = excluded.labels_json",
            (
                stored.name,
                str(stored.subnet),
                str(stored.gateway),
                None if stored.ip_range is None else str(stored.ip_range),
                stored.driver,
                stored.bridge,
                int(stored.internal),
                stored.mtu,
                _dumps(stored.labels),
                stored.created_at,
            ),
        )
        return self.get_network(stored.name) or stored

    def get_network(self, name: str) -> NetworkRecord | None:
        rows = self._query(f"SELECT {self._NETWORK_COLUMNS} FROM networks WHERE name = ?", (name,))
        return self._network(rows[0]) if rows else None

    def list_networks(self) -> list[NetworkRecord]:
        """Sorted by name."""
        return [
            self._network(row) for row in self._query(f"SELECT {self._NETWORK_COLUMNS} FROM networks ORDER BY name")
        ]

    def delete_network(self, name: str) -> bool:
        """Deletes the network with its leases and endpoints."""
        return self._execute("DELETE FROM networks WHERE name = ?", (name,)).rowcount > 0

    # -- leases --------------------------------------------------------------------------

    @staticmethod
    def _lease(row: tuple[Any, ...]) -> Lease:
        return Lease(row[0], ipaddress.IPv4Address(row[1]), row[2])

    def add_lease(self, lease: Lease) -> Lease:
        """Fails with ``StateError`` when the address or the owner already has a lease in
        that network, or the network does not exist: check first, in one transaction."""
        self._execute(
            "INSERT INTO leases (network, address, owner) VALUES (?, ?, ?)",
            (lease.network, str(lease.address), lease.owner),
        )
        return lease

    def get_lease(self, network: str, owner: str) -> Lease | None:
        rows = self._query(
            "SELECT network, address, owner FROM leases WHERE network = ? AND owner = ?", (network, owner)
        )
        return self._lease(rows[0]) if rows else None

    def lease_of_address(self, network: str, address: ipaddress.IPv4Address) -> Lease | None:
        rows = self._query(
            "SELECT network, address, owner FROM leases WHERE network = ? AND address = ?", (network, str(address))
        )
        return self._lease(rows[0]) if rows else None

    def list_leases(self, network: str | None = None, *, owner: str | None = None) -> list[Lease]:
        """Sorted by network, then numerically by address."""
        rows = self._query(
            "SELECT network, address, owner FROM leases "
            "WHERE (?1 IS NULL OR network = ?1) AND (?2 IS NULL OR owner = ?2)",
            (network, owner),
        )
        return sorted((self._lease(row) for row in rows), key=lambda lease: (lease.network, int(lease.address)))

    def delete_lease(self, network: str, owner: str) -> Lease | None:
        """The lease deleted, or None when there was none."""
        with self.transaction():
            lease = self.get_lease(network, owner)
            if lease is not None:
                self._execute("DELETE FROM leases WHERE network = ? AND owner = ?", (network, owner))
            return lease

    # -- endpoints -------------------------------------------------------------------------

    _ENDPOINT_COLUMNS = "container, network, ifname, address, mac, aliases_json, host_ifname"

    @staticmethod
    def _endpoint(row: tuple[Any, ...]) -> Endpoint:
        container, network, ifname, address, mac, aliases_json, host_ifname = row
        return Endpoint(
            container,
            network,
            ifname,
            ipaddress.IPv4Address(address),
            mac,
            tuple(json.loads(aliases_json)),
            host_ifname,
        )

    def put_endpoint(self, endpoint: Endpoint) -> Endpoint:
        """Insert or replace; the network must exist."""
        self._execute(
            f"INSERT OR REPLACE INTO endpoints ({self._ENDPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                endpoint.container,
                endpoint.network,
                endpoint.ifname,
                str(endpoint.address),
                endpoint.mac,
                _dumps(list(endpoint.aliases)),
                endpoint.host_ifname,
            ),
        )
        return endpoint

    def get_endpoint(self, container: str, network: str) -> Endpoint | None:
        rows = self._query(
            f"SELECT {self._ENDPOINT_COLUMNS} FROM endpoints WHERE container = ? AND network = ?", (container, network)
        )
        return self._endpoint(rows[0]) if rows else None

    def list_endpoints(self, *, container: str | None = None, network: str | None = None) -> list[Endpoint]:
        """Sorted by container, then interface name."""
        rows = self._query(
            f"SELECT {self._ENDPOINT_COLUMNS} FROM endpoints "
            "WHERE (?1 IS NULL OR container = ?1) AND (?2 IS NULL OR network = ?2) ORDER BY container, ifname",
            (container, network),
        )
        return [self._endpoint(row) for row in rows]

    def delete_endpoint(self, container: str, network: str) -> bool:
        return (
            self._execute("DELETE FROM endpoints WHERE container = ? AND network = ?", (container, network)).rowcount
            > 0
        )

    # -- volumes ---------------------------------------------------------------------------

    _VOLUME_COLUMNS = "name, driver, path, labels_json, created_at"

    @staticmethod
    def _volume(row: tuple[Any, ...]) -> VolumeRecord:
        name, driver, path, labels_json, created_at = row
        return VolumeRecord(name, driver, path, json.loads(labels_json), created_at)

    def put_volume(self, record: VolumeRecord) -> VolumeRecord:
        """Insert or replace; ``created_at`` is set when it is 0."""
        stored = record if record.created_at else record._replace(created_at=time.time())
        self._execute(
            f"INSERT OR REPLACE INTO volumes ({self._VOLUME_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (stored.name, stored.driver, stored.path, _dumps(stored.labels), stored.created_at),
        )
        return stored

    def get_volume(self, name: str) -> VolumeRecord | None:
        rows = self._query(f"SELECT {self._VOLUME_COLUMNS} FROM volumes WHERE name = ?", (name,))
        return self._volume(rows[0]) if rows else None

    def list_volumes(self) -> list[VolumeRecord]:
        """Sorted by name."""
        return [self._volume(row) for row in self._query(f"SELECT {self._VOLUME_COLUMNS} FROM volumes ORDER BY name")]

    def delete_volume(self, name: str) -> bool:
        return self._execute("DELETE FROM volumes WHERE name = ?", (name,)).rowcount > 0
