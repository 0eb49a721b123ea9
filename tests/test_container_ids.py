"""Container IDs: every container gets 64 hex characters at create, accepted wherever
a name is (an exact name first, then a full ID, then a unique ID prefix); and two
engines with different roots on one host (the same cgroup parent, as two agents have
by default) run containers of the same name side by side without touching each
other's cgroups, links, rules or names. Real containers, real kernel; nothing left."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import errors
from reconciler.engine.container_view import summary_id
from reconciler.engine.core import Engine
from reconciler.engine.models.containers import RunRequest
from reconciler.engine.wiring import EngineConfig
from reconciler.network.manager import table_for
from reconciler.runtime import cgroups, linux
from reconciler.runtime.containers import AmbiguousContainer, NoSuchContainer, Runtime
from reconciler.runtime.state import ContainerState, StateStore
from tests.test_cli_containers import busybox_tarball, clean_engine
from tests.test_cli_networks import nft_tables, our_links

IMAGE = "busybox:ids"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def request(*command: str, **flags: Any) -> RunRequest:
    return {"image": IMAGE, "command": list(command), **flags}  # type: ignore[typeddict-item]


# --- IDs in one runtime, no process needed ------------------------------------------


def test_reserve_makes_a_random_id_and_the_cgroup_is_named_by_it(tmp_path: Path) -> None:
    runtime = Runtime(str(tmp_path))
    runtime.reserve("web")
    runtime.reserve("db")
    web, db = runtime.store.read("web"), runtime.store.read("db")
    assert web is not None and db is not None
    assert HEX64.match(web.id) and HEX64.match(db.id) and web.id != db.id
    assert web.cgroup == web.id  # a new container's cgroup is its ID's
    assert runtime.cgroup("web").name == web.id
    assert runtime.store.read("web").id == web.id  # type: ignore[union-attr]  # made once, kept


def test_a_name_a_full_id_or_a_unique_prefix_resolves_to_the_name(tmp_path: Path) -> None:
    runtime = Runtime(str(tmp_path))
    names = [f"n{i}" for i in range(17)]  # not hex (no name is an ID prefix); 17 IDs, 16 first digits
    for name in names:
        runtime.reserve(name)
    ids = {name: runtime.store.read(name).id for name in names}  # type: ignore[union-attr]
    for name, ident in ids.items():
        assert runtime.resolve(name) == name
        assert runtime.resolve(ident) == name
        unique = next(ident[:n] for n in range(1, 65) if sum(i.startswith(ident[:n]) for i in ids.values()) == 1)
        assert runtime.resolve(unique) == name
    shared = next(i[0] for i in ids.values() if sum(j.startswith(i[0]) for j in ids.values()) > 1)
    with pytest.raises(AmbiguousContainer, match=f"multiple containers match prefix '{shared}'"):
        runtime.resolve(shared)
    for unknown in ("nope", "g", "", "../n1", "ABC"):
        with pytest.raises(NoSuchContainer):
            runtime.resolve(unknown)


def test_an_exact_name_wins_over_an_id_prefix(tmp_path: Path) -> None:
    runtime = Runtime(str(tmp_path))
    runtime.reserve("first")
    ident = runtime.store.read("first").id  # type: ignore[union-attr]
    runtime.reserve(ident[:6])  # a container whose name is a prefix of the other's ID
    assert runtime.resolve(ident[:6]) == ident[:6]
    assert runtime.resolve(ident[:7]) == "first"


def test_a_state_from_before_ids_has_the_sha256_of_its_name(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    directory = Path(store.path("old"))
    directory.mkdir(parents=True)
    legacy = {k: v for k, v in vars(ContainerState("old")).items() if k not in ("id", "cgroup")}
    (directory / "state.json").write_text(json.dumps(legacy))
    state = store.read("old")
    assert state is not None
    assert state.id == hashlib.sha256(b"old").hexdigest()  # what the Docker API called it already
    assert state.cgroup == "old"  # where a container started before IDs runs
    assert Runtime(str(tmp_path)).resolve(state.id[:10]) == "old"


# --- through the engine ---------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # detached monitors are reaped here
    config = EngineConfig(root=str(tmp_path / "root"), cgroup_parent=f"reconcile-test-{uuid.uuid4().hex[:8]}")
    made = Engine(config)
    try:
        made.wiring.image_store().import_tarball(str(busybox_tarball(tmp_path / "busybox.tar")), IMAGE)
        yield made
    finally:
        made.close()
        clean_engine(config.root, config.cgroup_parent)


@pytest.mark.requires_root
def test_every_verb_takes_an_id_or_a_unique_prefix(engine: Engine) -> None:
    containers = engine.containers
    made = containers.create(request("sh", "-c", "echo hello; exec sleep 60", name="web"))
    ident = made["id"]
    assert HEX64.match(ident)
    (row,) = containers.list(all=True)
    assert row["id"] == ident and summary_id(row) == ident
    assert containers.inspect(ident[:12])["Id"] == ident
    assert containers.inspect("web")["Name"] == "/web"
    assert containers.start(ident[:5]) == {"name": "web"}
    group = cgroups.new_cgroup(ident, parent=engine.config.cgroup_parent)
    assert group.exists() and containers.inspect(ident)["State"]["Pid"] in group.pids()
    assert not cgroups.new_cgroup("web", parent=engine.config.cgroup_parent).exists()
    assert containers.exec(ident, {"command": ["echo"]}) == {"name": "web", "exit_code": 0}
    [stats] = containers.stats([ident[:12]])
    assert stats["name"] == "web" and stats["pids"] >= 1
    assert containers.pause(ident[:12]) == {"name": "web"}
    assert containers.unpause(ident[:12]) == {"name": "web"}
    assert containers.stop(ident[:12], grace=0) == {"name": "web"}
    assert containers.wait(ident) == {"name": "web", "exit_code": 137}
    assert [e["text"] for e in containers.logs(ident[:3])] == ["hello\n"]
    assert not group.exists()  # the monitor removed the ID's cgroup
    assert containers.remove(ident[:12]) == {"name": "web"}
    with pytest.raises(errors.NotFound):
        containers.inspect(ident)
    runtime = engine.wiring.runtime()
    for i in range(17):  # 17 IDs over 16 first digits: two share one
        runtime.reserve(f"half-{i}")
    shared = next(s.id[0] for s in runtime.containers() if sum(t.id[0] == s.id[0] for t in runtime.containers()) > 1)
    with pytest.raises(errors.NotFound, match=f"multiple containers match prefix '{shared}'"):
        containers.stop(shared)


# --- two roots on one host ----------------------------------------------------------------


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two engines with different roots and the same cgroup parent (as two agents on one
    host have by default), each with the busybox image and a network ``ids-net``."""
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    parent = f"reconcile-test-{uuid.uuid4().hex[:8]}"
    tarball = busybox_tarball(tmp_path / "busybox.tar")
    engines: list[Engine] = []
    try:
        for side in ("a", "b"):
            made = Engine(EngineConfig(root=str(tmp_path / side), cgroup_parent=parent))
            engines.append(made)
            made.wiring.image_store().import_tarball(str(tarball), IMAGE)
        yield engines[0], engines[1]
    finally:
        tables = {table_for(made.config.root) for made in engines}
        for made in engines:
            for row in made.containers.list(all=True):
                with contextlib.suppress(Exception):
                    made.containers.remove(row["name"], force=True)
            if os.path.exists(os.path.join(made.config.root, "state.db")):
                manager = made.wiring.network_manager()
                for container in {e.container for e in manager.db.list_endpoints()}:
                    with contextlib.suppress(Exception):
                        manager.detach(container)
                for record in manager.networks():
                    with contextlib.suppress(Exception):
                        manager.remove(record.name)
            made.close()
        try:
            for made in engines[:-1]:
                clean_engine(made.config.root, parent)
        finally:
            clean_engine(engines[-1].config.root, parent)  # the last one removes the shared parent
        assert not tables & nft_tables(), "nftables tables left behind"
        assert not any(os.path.exists(os.path.join(m.config.root, "dns.pid")) for m in engines), "DNS left behind"


def _veth(engine: Engine, container: str, network: str) -> str:
    from reconciler.network import links

    manager = engine.wiring.network_manager()
    return links.host_veth_name(manager._key(container), network)


@pytest.mark.requires_root
def test_two_roots_run_containers_of_the_same_name_side_by_side(two: tuple[Engine, Engine]) -> None:
    a, b = two
    a.networks.create({"name": "ids-net", "subnet": "10.231.1.0/24"})
    b.networks.create({"name": "ids-net", "subnet": "10.231.2.0/24"})
    for engine in (a, b):
        flags = {"name": "same", "networks": ["ids-net"]}
        assert engine.containers.run(request("sleep", "60", **flags), detach=True) == {"name": "same", "exit_code": 0}
    # both run, each listed by its own engine, each in a cgroup of its own
    rows = {side: engine.containers.list() for side, engine in (("a", a), ("b", b))}
    assert [(r["name"], r["status"]) for r in rows["a"]] == [("same", "running")]
    assert [(r["name"], r["status"]) for r in rows["b"]] == [("same", "running")]
    ids = {side: rows[side][0]["id"] for side in rows}
    assert ids["a"] != ids["b"]
    parent = a.config.cgroup_parent
    for side, engine in (("a", a), ("b", b)):
        pid = engine.containers.inspect("same")["State"]["Pid"]
        assert pid in cgroups.new_cgroup(ids[side], parent=parent).pids()
    assert not cgroups.new_cgroup("same", parent=parent).exists()
    # links and addresses of their own: the same container and network names collide nowhere
    veths = {_veth(a, "same", "ids-net"), _veth(b, "same", "ids-net")}
    assert len(veths) == 2 and veths <= our_links()
    addresses = {
        engine.containers.inspect("same")["NetworkSettings"]["Networks"]["ids-net"]["IPAddress"] for engine in (a, b)
    }
    assert addresses == {"10.231.1.2", "10.231.2.2"}
    assert a.containers.exec("same", {"command": ["echo"]})["exit_code"] == 0
    assert b.containers.exec("same", {"command": ["echo"]})["exit_code"] == 0
    # removing one leaves the other running, then it goes as cleanly
    a.containers.remove("same", force=True)
    assert a.containers.list(all=True) == []
    assert [(r["name"], r["status"]) for r in b.containers.list()] == [("same", "running")]
    assert b.containers.inspect("same")["State"]["Pid"] in cgroups.new_cgroup(ids["b"], parent=parent).pids()
    b.containers.remove(ids["b"][:12], force=True)
    assert b.containers.list(all=True) == []
    for side in ids:
        assert not cgroups.new_cgroup(ids[side], parent=parent).exists()
    assert not veths & our_links()
    a.networks.remove("ids-net")
    b.networks.remove("ids-net")


# --- the CLI, in-process and through an agent -------------------------------------------------


@pytest.mark.requires_root
def test_the_cli_names_containers_by_id_in_process_and_through_the_agent(tmp_path: Path) -> None:
    from tests.agent_fixtures import Agent

    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    agent = Agent(tmp_path / "agent")
    try:
        agent.start()
        image = agent.image()
        for name in ("web", "db"):
            ran = agent.cli("run", "-d", "--name", name, image, "sh", "-c", f"echo {name}; exec sleep 60")
            assert ran.returncode == 0, ran.stderr
        ids: dict[str, str] = {}
        listed = agent.cli("ps", "--format", "{{.ID}} {{.Names}}")
        assert listed.returncode == 0, listed.stderr
        short = dict(reversed(line.split()) for line in listed.stdout.splitlines())  # name → short ID
        assert set(short) == {"web", "db"} and all(re.fullmatch(r"[0-9a-f]{12}", s) for s in short.values())
        table = agent.cli("ps").stdout.splitlines()
        assert table[0].startswith("CONTAINER ID") and any(line.startswith(short["web"]) for line in table[1:])
        for remote in (True, False):  # through the agent, then in-process on the same root
            document = json.loads(agent.cli("inspect", short["web"], remote=remote).stdout)
            ids["web"] = document[0]["Id"] if isinstance(document, list) else document["Id"]
            assert ids["web"].startswith(short["web"]) and HEX64.match(ids["web"])
            logs = agent.cli("logs", ids["web"][:8], remote=remote)
            assert (logs.returncode, logs.stdout) == (0, "web\n"), logs.stderr
            executed = agent.cli("exec", short["db"], "echo", "in db", remote=remote)
            assert (executed.returncode, executed.stdout) == (0, "in db\n"), executed.stderr
        missing = agent.cli("logs", "f" * 64)
        assert missing.returncode != 0 and "no such container" in missing.stderr.lower()
        assert agent.cli("stop", "-t", "0", short["web"]).returncode == 0
        assert agent.cli("rm", ids["web"]).returncode == 0
        assert agent.cli("rm", "-f", short["db"], remote=False).returncode == 0
        assert agent.cli("ps", "-a", "-q").stdout == ""
    finally:
        agent.cleanup()


@pytest.mark.requires_root
def test_a_container_made_before_ids_starts_in_its_ids_cgroup(engine: Engine) -> None:
    engine.containers.create(request("sleep", "60", name="old"))
    path = Path(engine.config.root, "containers", "old", "state.json")
    document = json.loads(path.read_text())
    del document["id"], document["cgroup"]  # as an engine before IDs wrote it
    path.write_text(json.dumps(document))
    legacy = hashlib.sha256(b"old").hexdigest()
    assert engine.containers.list(all=True)[0]["id"] == legacy
    engine.containers.start(legacy[:12])
    state = engine.wiring.runtime().inspect("old")
    assert (state.id, state.cgroup) == (legacy, legacy)  # from its first start on, in its ID's cgroup
    assert state.pid in cgroups.new_cgroup(legacy, parent=engine.config.cgroup_parent).pids()
    engine.containers.remove(legacy, force=True)
    assert not cgroups.new_cgroup(legacy, parent=engine.config.cgroup_parent).exists()
    assert engine.containers.list(all=True) == []
