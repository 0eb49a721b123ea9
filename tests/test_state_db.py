"""The SQLite state store: schema migrations, transactions, typed tables, corrupt files, concurrency."""

from __future__ import annotations

import ipaddress
import multiprocessing
import multiprocessing.queues
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from reconciler.state import db as statedb
from reconciler.state.db import (
    Endpoint,
    Lease,
    NetworkRecord,
    ObjectRecord,
    StateDB,
    StateError,
    VolumeRecord,
)

FORK = multiprocessing.get_context("fork")
NET = ipaddress.IPv4Network("10.213.7.0/24")
GW = ipaddress.IPv4Address("10.213.7.1")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB(str(tmp_path)) as store:
        yield store


def raw(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "state.db", isolation_level=None)


# -- opening, schema and migrations -------------------------------------------------------------


def test_open_creates_a_wal_database_at_the_current_schema(tmp_path: Path) -> None:
    root = tmp_path / "root" / "deeper"
    with StateDB(str(root)) as store:
        assert store.path == str(root / "state.db")
        assert store.schema_version() == len(statedb.MIGRATIONS)
    conn = sqlite3.connect(root / "state.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert {"schema_version", "objects", "networks", "leases", "endpoints", "volumes"} <= tables


def test_reopening_keeps_data_and_version(tmp_path: Path) -> None:
    with StateDB(str(tmp_path)) as store:
        store.put_object(ObjectRecord("Container", "web"))
    with StateDB(str(tmp_path)) as store:
        assert store.schema_version() == len(statedb.MIGRATIONS)
        assert store.get_object("Container", "web") is not None


def test_forward_migration_applies_only_the_new_scripts(tmp_path: Path) -> None:
    with StateDB(str(tmp_path)) as store:
        store.put_object(ObjectRecord("Container", "web", manifest={"image": "busybox"}))
    newer = (*statedb.MIGRATIONS, ("ALTER TABLE objects ADD COLUMN note TEXT", "UPDATE objects SET note = 'moved'"))
    with StateDB(str(tmp_path), migrations=newer) as store:
        assert store.schema_version() == len(newer)
        record = store.get_object("Container", "web")
        assert record is not None and record.manifest == {"image": "busybox"}
    conn = raw(tmp_path)
    try:
        assert conn.execute("SELECT note FROM objects").fetchall() == [("moved",)]
    finally:
        conn.close()
    with StateDB(str(tmp_path), migrations=newer) as store:  # nothing left to apply: no error, same version
        assert store.schema_version() == len(newer)


def test_a_database_from_a_newer_program_is_refused(tmp_path: Path) -> None:
    newer = (*statedb.MIGRATIONS, ("CREATE TABLE later (x INTEGER)",))
    StateDB(str(tmp_path), migrations=newer).close()
    with pytest.raises(StateError, match=r"schema version 2, newer than this program knows \(1\)") as caught:
        StateDB(str(tmp_path))
    assert str(tmp_path / "state.db") in str(caught.value)


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    StateDB(str(tmp_path)).close()
    broken = (*statedb.MIGRATIONS, ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL"))
    with pytest.raises(StateError, match=r"state\.db"):
        StateDB(str(tmp_path), migrations=broken)
    conn = raw(tmp_path)
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall() == []
    finally:
        conn.close()


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    barrier = FORK.Barrier(10)
    children = [FORK.Process(target=_open_after_barrier, args=(str(tmp_path), barrier)) for _ in range(10)]
    try:
        for child in children:
            child.start()
        for child in children:
            child.join(60)
        assert [child.exitcode for child in children] == [0] * 10
    finally:
        _reap(children)
    conn = raw(tmp_path)
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(statedb.MIGRATIONS),)]
    finally:
        conn.close()


def _open_after_barrier(root: str, barrier: threading.Barrier) -> None:
    barrier.wait()
    with StateDB(root) as store:
        store.put_object(ObjectRecord("Container", f"c{os.getpid()}"))


def _reap(children: Sequence[multiprocessing.process.BaseProcess]) -> None:
    for child in children:
        if child.is_alive():
            child.kill()
        child.join()


# -- unreadable databases -------------------------------------------------------------------------


def test_a_corrupt_file_is_a_state_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not a database, just some bytes " * 200)
    with pytest.raises(StateError, match="unreadable") as caught:
        StateDB(str(tmp_path))
    assert str(tmp_path / "state.db") in str(caught.value)


def test_a_damaged_page_is_a_state_error_naming_the_file(tmp_path: Path) -> None:
    with StateDB(str(tmp_path)) as store:
        for index in range(200):
            store.put_object(ObjectRecord("Container", f"c{index}", manifest={"pad": "x" * 500}))
        conn = sqlite3.connect(store.path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    path = tmp_path / "state.db"
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for page in range(1, len(data) // page_size):  # every page but the header page
        data[page * page_size : page * page_size + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(StateError) as caught, StateDB(str(tmp_path)) as store:
        store.list_objects()
    assert str(path) in str(caught.value)
    assert "unreadable" in str(caught.value)


def test_state_db_being_a_directory_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(StateError, match=r"state\.db"):
        StateDB(str(tmp_path))


def test_root_being_a_file_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateError, match="cannot create the state directory"):
        StateDB(str(tmp_path / "file"))


def test_a_lock_held_too_long_is_a_state_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statedb, "BUSY_TIMEOUT", 0.05)
    with StateDB(str(tmp_path)) as store:
        other = raw(tmp_path)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StateError, match="locked by another process"), store.transaction():
                pass
            other.execute("ROLLBACK")
        finally:
            other.close()
        with store.transaction():  # usable again once the other writer is gone
            store.put_object(ObjectRecord("Container", "web"))


# -- transactions ------------------------------------------------------------------------------------


def test_transaction_commits(db: StateDB, tmp_path: Path) -> None:
    with db.transaction() as tx:
        tx.put_object(ObjectRecord("Container", "a"))
        tx.put_object(ObjectRecord("Container", "b"))
    with StateDB(str(tmp_path)) as other:
        assert [record.name for record in other.list_objects()] == ["a", "b"]


def test_transaction_rolls_back_on_exception(db: StateDB) -> None:
    db.put_object(ObjectRecord("Container", "kept"))
    with pytest.raises(KeyError, match="boom"), db.transaction():
        db.put_object(ObjectRecord("Container", "lost"))
        db.delete_object("Container", "kept")
        raise KeyError("boom")
    assert [record.name for record in db.list_objects()] == ["kept"]


def test_a_nested_transaction_rolls_back_alone(db: StateDB) -> None:
    with db.transaction():
        db.put_object(ObjectRecord("Container", "outer"))
        with pytest.raises(ValueError), db.transaction():
            db.put_object(ObjectRecord("Container", "inner"))
            raise ValueError
        with db.transaction():
            db.put_object(ObjectRecord("Container", "second"))
    assert [record.name for record in db.list_objects()] == ["outer", "second"]


def test_an_outer_rollback_undoes_committed_inner_work(db: StateDB) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        with db.transaction():
            db.put_object(ObjectRecord("Container", "inner"))
        raise RuntimeError
    assert db.list_objects() == []


def test_transaction_sees_its_own_writes_others_do_not(db: StateDB, tmp_path: Path) -> None:
    with StateDB(str(tmp_path)) as other, db.transaction():
        db.put_object(ObjectRecord("Container", "pending"))
        assert db.get_object("Container", "pending") is not None
        assert other.get_object("Container", "pending") is None  # WAL: a reader sees the last commit


def test_read_modify_write_is_serialized_across_threads(tmp_path: Path) -> None:
    def bump(store: StateDB) -> None:
        with store.transaction():
            record = store.get_object("Counter", "n")
            count = 0 if record is None else int(record.status["count"])
            store.put_object(ObjectRecord("Counter", "n", status={"count": count + 1}))

    shared = StateDB(str(tmp_path))
    own = [StateDB(str(tmp_path)) for _ in range(10)]
    try:
        stores = [shared] * 10 + own
        barrier = threading.Barrier(len(stores))

        def work(store: StateDB) -> None:
            barrier.wait()
            for _ in range(5):
                bump(store)

        threads = [threading.Thread(target=work, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        record = shared.get_object("Counter", "n")
        assert record is not None and record.status == {"count": 100}
    finally:
        for store in [shared, *own]:
            store.close()


def _bump_in_child(root: str, barrier: threading.Barrier) -> None:
    barrier.wait()
    with StateDB(root) as store:
        for _ in range(5):
            with store.transaction():
                record = store.get_object("Counter", "n")
                count = 0 if record is None else int(record.status["count"])
                store.put_object(ObjectRecord("Counter", "n", status={"count": count + 1}))


def test_read_modify_write_is_serialized_across_processes(db: StateDB, tmp_path: Path) -> None:
    barrier = FORK.Barrier(20)
    children = [FORK.Process(target=_bump_in_child, args=(str(tmp_path), barrier)) for _ in range(20)]
    try:
        for child in children:
            child.start()
        for child in children:
            child.join(120)
        assert [child.exitcode for child in children] == [0] * 20
    finally:
        _reap(children)
    record = db.get_object("Counter", "n")
    assert record is not None and record.status == {"count": 100}


def _use_inherited(store: StateDB) -> None:
    with store.transaction():
        store.put_object(ObjectRecord("Container", "from-child"))


def test_a_forked_child_can_use_the_inherited_store(db: StateDB) -> None:
    db.put_object(ObjectRecord("Container", "from-parent"))  # the parent's connection is open
    child = FORK.Process(target=_use_inherited, args=(db,))
    child.start()
    try:
        child.join(60)
        assert child.exitcode == 0
    finally:
        _reap([child])
    assert [record.name for record in db.list_objects()] == ["from-child", "from-parent"]


def _report_error(store: StateDB, errors: multiprocessing.queues.Queue[str]) -> None:
    try:
        store.list_objects()
    except StateError as exc:
        errors.put(str(exc))
    else:
        errors.put("no error")


def test_a_child_forked_inside_a_transaction_is_told_why_it_cannot_use_the_store(db: StateDB) -> None:
    errors: multiprocessing.queues.Queue[str] = FORK.Queue()
    with db.transaction():
        child = FORK.Process(target=_report_error, args=(db, errors))
        child.start()
    try:
        assert "forked while a transaction was open" in errors.get(timeout=60)
        child.join(60)
    finally:
        _reap([child])
    assert db.list_objects() == []  # the parent is unaffected


# -- typed tables ---------------------------------------------------------------------------------------


def test_objects_put_get_list_delete(db: StateDB) -> None:
    stored = db.put_object(
        ObjectRecord("Container", "web", stack="shop", manifest={"spec": {"image": "nginx"}}, digest="sha256:ab")
    )
    assert stored.updated_at > 0
    db.put_object(ObjectRecord("Network", "front", stack="shop"))
    db.put_object(ObjectRecord("Container", "db", stack="other", status={"phase": "running"}))
    assert db.get_object("Container", "web") == stored
    assert db.get_object("Container", "missing") is None
    assert [r.name for r in db.list_objects()] == ["db", "web", "front"]
    assert [r.name for r in db.list_objects("Container")] == ["db", "web"]
    assert [r.name for r in db.list_objects(stack="shop")] == ["web", "front"]
    assert [r.name for r in db.list_objects("Container", stack="other")] == ["db"]
    replaced = db.put_object(stored._replace(digest="sha256:cd"))
    assert db.get_object("Container", "web") == replaced
    assert db.delete_object("Container", "web") is True
    assert db.delete_object("Container", "web") is False
    assert db.get_object("Container", "web") is None


def test_networks_upsert_keeps_leases_and_created_at(db: StateDB) -> None:
    first = db.put_network(NetworkRecord("front", NET, GW, labels={"stack": "shop"}))
    assert first.created_at > 0 and first.driver == "bridge" and first.internal is False
    db.add_lease(Lease("front", GW, "gateway"))
    updated = db.put_network(first._replace(bridge="rc-front", internal=True, mtu=1400, created_at=0.0))
    assert updated.created_at == first.created_at
    assert updated == first._replace(bridge="rc-front", internal=True, mtu=1400)
    assert db.get_network("front") == updated
    assert db.list_leases("front") == [Lease("front", GW, "gateway")]
    ranged = db.put_network(NetworkRecord("back", ipaddress.IPv4Network("10.213.8.0/24"), GW + 256, NET))
    assert ranged.ip_range == NET
    assert [network.name for network in db.list_networks()] == ["back", "front"]
    assert db.get_network("missing") is None


def test_deleting_a_network_deletes_its_leases_and_endpoints(db: StateDB) -> None:
    db.put_network(NetworkRecord("front", NET, GW))
    db.put_network(NetworkRecord("back", ipaddress.IPv4Network("10.213.8.0/24"), GW + 256))
    db.add_lease(Lease("front", GW + 1, "container/web"))
    db.add_lease(Lease("back", GW + 257, "container/web"))
    db.put_endpoint(Endpoint("web", "front", "eth0", GW + 1))
    db.put_endpoint(Endpoint("web", "back", "eth1", GW + 257))
    assert db.delete_network("front") is True
    assert db.delete_network("front") is False
    assert db.list_leases() == [Lease("back", GW + 257, "container/web")]
    assert [endpoint.network for endpoint in db.list_endpoints()] == ["back"]


def test_leases_are_unique_per_address_and_per_owner(db: StateDB) -> None:
    db.put_network(NetworkRecord("front", NET, GW))
    db.add_lease(Lease("front", GW + 1, "container/a"))
    with pytest.raises(StateError, match="UNIQUE"):
        db.add_lease(Lease("front", GW + 1, "container/b"))
    with pytest.raises(StateError, match="UNIQUE"):
        db.add_lease(Lease("front", GW + 2, "container/a"))
    with pytest.raises(StateError, match="FOREIGN KEY"):
        db.add_lease(Lease("nowhere", GW + 3, "container/a"))
    assert db.list_leases() == [Lease("front", GW + 1, "container/a")]


def test_leases_lookups_and_numeric_order(db: StateDB) -> None:
    db.put_network(NetworkRecord("front", NET, GW))
    for last, owner in ((100, "c/x"), (9, "c/y"), (10, "c/z")):
        db.add_lease(Lease("front", NET.network_address + last, owner))
    assert [int(lease.address) & 0xFF for lease in db.list_leases("front")] == [9, 10, 100]
    assert db.list_leases(owner="c/y") == [Lease("front", NET.network_address + 9, "c/y")]
    assert db.get_lease("front", "c/z") == Lease("front", NET.network_address + 10, "c/z")
    assert db.get_lease("front", "c/none") is None
    assert db.lease_of_address("front", NET.network_address + 100) == Lease("front", NET.network_address + 100, "c/x")
    assert db.lease_of_address("front", NET.network_address + 101) is None
    assert db.delete_lease("front", "c/x") == Lease("front", NET.network_address + 100, "c/x")
    assert db.delete_lease("front", "c/x") is None


def test_endpoints_put_get_list_delete(db: StateDB) -> None:
    db.put_network(NetworkRecord("front", NET, GW))
    endpoint = Endpoint("web", "front", "eth0", GW + 1, "02:42:0a:d5:07:02", ("www", "api"), "rv1234")
    assert db.put_endpoint(endpoint) == endpoint
    assert db.get_endpoint("web", "front") == endpoint
    assert db.get_endpoint("web", "back") is None
    db.put_endpoint(Endpoint("app", "front", "eth0", GW + 2))
    assert [e.container for e in db.list_endpoints()] == ["app", "web"]
    assert db.list_endpoints(container="web") == [endpoint]
    assert [e.container for e in db.list_endpoints(network="front")] == ["app", "web"]
    moved = endpoint._replace(address=GW + 5, aliases=())
    db.put_endpoint(moved)
    assert db.get_endpoint("web", "front") == moved
    with pytest.raises(StateError, match="FOREIGN KEY"):
        db.put_endpoint(Endpoint("web", "nowhere", "eth1", GW + 1))
    assert db.delete_endpoint("web", "front") is True
    assert db.delete_endpoint("web", "front") is False


def test_volumes_put_get_list_delete(db: StateDB) -> None:
    stored = db.put_volume(VolumeRecord("data", "local", "/var/lib/reconcile/volumes/data/_data", {"stack": "s"}))
    assert stored.created_at > 0
    assert db.get_volume("data") == stored
    assert db.get_volume("missing") is None
    db.put_volume(VolumeRecord("cache", "local", "/x"))
    assert [volume.name for volume in db.list_volumes()] == ["cache", "data"]
    assert db.delete_volume("data") is True
    assert db.delete_volume("data") is False
    assert [volume.name for volume in db.list_volumes()] == ["cache"]
