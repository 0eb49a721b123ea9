"""The engine's networks and volumes groups, in-process (root, real kernel): create,
list, inspect, remove and prune round trips, and every driver failure as its engine
error class (NotFound, Conflict, InvalidRequest), with nothing touched by a refused
request. Afterwards the host has no link, nftables table, lease, netns handle or DNS
daemon of ours left. Subnets are 10.222.x.0/24; no traffic is sent."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import errors
from reconciler.engine.core import Engine
from reconciler.engine.models import networks as network_models
from reconciler.engine.models import volumes as volume_models
from reconciler.engine.wiring import EngineConfig
from reconciler.network.manager import Attachment, table_for
from reconciler.runtime import netns
from tests.agent_fixtures import tear_down_networks
from tests.test_cli_containers import assert_no_mounts_under
from tests.test_cli_networks import nft_tables, our_links

#: Every network and container name the tests use: the links of this root are
#: named after them (other tests may be making and removing links of their own).
NETWORKS = ("bridge", "nvt-front", "nvt-busy", "nvt-ghost", "nvt-unused", "nvt-used", "nvt-unused2", "nvt-first")
CONTAINERS = ("nvt-holder", "nvt-gone", "nvt-user")


def links_of(engine: Engine) -> set[str]:
    """The links of ``engine``'s root that exist: bridges and host-side veths."""
    from reconciler.network import links

    manager = engine.wiring.network_manager()
    names = {links.bridge_name(manager._key(network)) for network in NETWORKS}
    names |= {links.host_veth_name(manager._key(c), n) for c in CONTAINERS for n in NETWORKS}
    return names & our_links()


pytestmark = pytest.mark.requires_root


class Handles:
    """Network namespace handles a test made, removed after it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.paths: list[str] = []

    def make(self, name: str) -> str:
        path = str(self.directory / f"{name}.netns")
        netns.create(path)
        self.paths.append(path)
        return path


@pytest.fixture
def handles(tmp_path: Path) -> Handles:
    return Handles(tmp_path)


@pytest.fixture
def engine(tmp_path: Path, handles: Handles) -> Iterator[Engine]:
    root = tmp_path / "root"
    made = Engine(EngineConfig(root=str(root), cgroup_parent=f"nvtest-{uuid.uuid4().hex[:8]}"))
    try:
        yield made
    finally:
        if (root / "state.db").exists():
            tear_down_networks(made)
        for path in handles.paths:
            netns.remove(path)
        left = links_of(made)
        made.close()
        assert left == set(), "links left behind"
        assert table_for(str(root)) not in nft_tables(), "nftables table left behind"
        assert not (root / "dns.pid").exists(), "DNS daemon left behind"
        if (root / "state.db").exists():
            with sqlite3.connect(root / "state.db") as db:
                assert db.execute("SELECT count(*) FROM leases").fetchone() == (0,), "leases left behind"
        assert_no_mounts_under(tmp_path)


def write_state(engine: Engine, name: str, mounts: list[dict[str, Any]] | None = None) -> None:
    """A container's state file as the runtime writes it: the container exists."""
    directory = Path(engine.config.root) / "containers" / name
    directory.mkdir(parents=True, exist_ok=True)
    state = {"name": name, "status": "exited", "pid": 0, "exit_code": 0, "spec": {"config": {"mounts": mounts or []}}}
    (directory / "state.json").write_text(json.dumps(state))


def bridge_exists(summary: network_models.NetworkSummary) -> bool:
    return summary["bridge"] is not None and os.path.exists(f"/sys/class/net/{summary['bridge']}")


# -- networks ------------------------------------------------------------------


def test_network_create_list_inspect_remove(engine: Engine) -> None:
    request: network_models.NetworkCreateRequest = {
        "name": "nvt-front",
        "subnet": "10.222.1.0/24",
        "gateway": "10.222.1.254",
        "ip_range": "10.222.1.128/25",
        "internal": True,
        "labels": {"tier": "front"},
        "mtu": 1400,
    }
    made = engine.networks.create(request)
    assert {key: made[key] for key in ("name", "driver", "subnet", "gateway", "ip_range", "internal", "mtu")} == {
        "name": "nvt-front",
        "driver": "bridge",
        "subnet": "10.222.1.0/24",
        "gateway": "10.222.1.254",
        "ip_range": "10.222.1.128/25",
        "internal": True,
        "mtu": 1400,
    }
    assert made["labels"] == {"tier": "front"} and made["endpoints"] == [] and made["created"] > 0
    assert bridge_exists(made)
    assert engine.networks.create(request) == made  # the same addressing: the network as it is
    assert engine.networks.list() == [made]
    document = engine.networks.inspect("nvt-front")
    assert document == network_models.inspect_document(made)
    assert document["IPAM"]["Config"] == [
        {"Subnet": "10.222.1.0/24", "Gateway": "10.222.1.254", "IPRange": "10.222.1.128/25"}
    ]
    assert json.loads(json.dumps(document)) == document  # JSON as it is
    assert engine.networks.remove("nvt-front") == {"name": "nvt-front"}
    assert not bridge_exists(made)
    assert engine.networks.list() == []
    with pytest.raises(errors.NotFound, match="nvt-front"):
        engine.networks.inspect("nvt-front")


def test_a_network_lists_its_endpoints_and_in_use_is_a_conflict(engine: Engine, handles: Handles) -> None:
    made = engine.networks.create({"name": "nvt-busy", "subnet": "10.222.2.0/24"})
    manager = engine.wiring.network_manager()
    assert engine.wiring.network_manager() is manager  # shared, not one per call
    write_state(engine, "nvt-holder")
    manager.attach("nvt-holder", handles.make("holder"), [Attachment("nvt-busy", aliases=("www",))])
    [listed] = engine.networks.list()
    [endpoint] = listed["endpoints"]
    assert (endpoint["container"], endpoint["ifname"], endpoint["aliases"]) == (
        "nvt-holder",
        "eth0",
        ["nvt-holder", "www"],
    )
    assert endpoint["address"] == "10.222.2.2/24" and endpoint["mac"]
    containers = engine.networks.inspect("nvt-busy")["Containers"]
    assert containers == {
        "nvt-holder": {"IPv4Address": "10.222.2.2/24", "MacAddress": endpoint["mac"], "Aliases": ["nvt-holder", "www"]}
    }
    with pytest.raises(errors.Conflict, match="nvt-holder"):
        engine.networks.remove("nvt-busy")
    assert engine.networks.prune() == {"removed": []}
    assert bridge_exists(made)
    manager.detach("nvt-holder")
    assert engine.networks.remove("nvt-busy") == {"name": "nvt-busy"}


def test_endpoints_of_containers_that_are_gone_do_not_hold_a_network(engine: Engine, handles: Handles) -> None:
    engine.networks.create({"name": "nvt-ghost", "subnet": "10.222.3.0/24"})
    manager = engine.wiring.network_manager()
    manager.attach("nvt-gone", handles.make("gone"), [Attachment("nvt-ghost")])  # no state file: gone
    assert engine.networks.remove("nvt-ghost") == {"name": "nvt-ghost"}
    assert manager.db.list_endpoints() == [] and manager.db.list_leases() == []


def test_prune_removes_unused_networks_but_the_default_bridge(engine: Engine, handles: Handles) -> None:
    for index, name in enumerate(("bridge", "nvt-unused", "nvt-used", "nvt-unused2"), start=4):
        engine.networks.create({"name": name, "subnet": f"10.222.{index}.0/24"})
    write_state(engine, "nvt-user")
    manager = engine.wiring.network_manager()
    manager.attach("nvt-user", handles.make("user"), [Attachment("nvt-used")])
    assert engine.networks.prune() == {"removed": ["nvt-unused", "nvt-unused2"]}
    assert [n["name"] for n in engine.networks.list()] == ["bridge", "nvt-used"]
    manager.detach("nvt-user")
    assert engine.networks.prune() == {"removed": ["nvt-used"]}
    assert engine.networks.remove("bridge") == {"name": "bridge"}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"name": "bad/name"}, "invalid network name"),
        ({"name": "-lead"}, "invalid network name"),
        ({"name": "x" * 129}, "invalid network name"),
        ({"name": "nvt-bad", "subnet": "nope"}, "not an IPv4 network"),
        ({"name": "nvt-bad", "subnet": "10.222.9.0/33"}, "not an IPv4 network"),
        ({"name": "nvt-bad", "subnet": "10.222.9.0/31"}, "too small"),
        ({"name": "nvt-bad", "subnet": "10.222.9.0/24", "gateway": "10.222.8.1"}, "outside subnet"),
        ({"name": "nvt-bad", "subnet": "10.222.9.0/24", "ip_range": "10.222.8.0/25"}, "outside subnet"),
        ({"name": "nvt-bad", "gateway": "10.222.9.1"}, "needs an explicit subnet"),
        ({"name": "nvt-bad", "subnet": "10.222.9.0/24", "mtu": 20}, "invalid MTU"),
        ({"name": "nvt-bad", "subnet": "10.222.9.0/24", "labels": {"": "x"}}, "labels"),
    ],
)
def test_bad_network_requests_are_invalid_and_touch_nothing(
    engine: Engine, request_: network_models.NetworkCreateRequest, message: str
) -> None:
    links = our_links()
    with pytest.raises(errors.InvalidRequest, match=message):
        engine.networks.create(request_)
    assert engine.networks.list() == [] and our_links() == links


def test_missing_and_clashing_networks(engine: Engine) -> None:
    with pytest.raises(errors.NotFound, match="nvt-none"):
        engine.networks.inspect("nvt-none")
    with pytest.raises(errors.NotFound, match="nvt-none"):
        engine.networks.remove("nvt-none")
    engine.networks.create({"name": "nvt-first", "subnet": "10.222.10.0/24"})
    with pytest.raises(errors.Conflict, match=r"overlaps subnet 10\.222\.10\.0/24 of network nvt-first"):
        engine.networks.create({"name": "nvt-second", "subnet": "10.222.10.128/25"})
    with pytest.raises(errors.Conflict, match=r"already exists with subnet 10\.222\.10\.0/24"):
        engine.networks.create({"name": "nvt-first", "subnet": "10.222.11.0/24"})
    assert [n["name"] for n in engine.networks.list()] == ["nvt-first"]
    engine.networks.remove("nvt-first")


# -- volumes -------------------------------------------------------------------


def test_volume_create_list_inspect_remove(engine: Engine) -> None:
    made = engine.volumes.create({"name": "nvt-data", "labels": {"app": "db"}})
    assert made == {
        "name": "nvt-data",
        "driver": "local",
        "mountpoint": os.path.join(engine.config.root, "volumes", "nvt-data", "_data"),
        "labels": {"app": "db"},
        "options": {},
        "created": made["created"],
        "retain": None,
        "anonymous": False,
    }
    assert os.path.isdir(made["mountpoint"])
    assert engine.volumes.create({"name": "nvt-data", "labels": {"app": "db"}}) == made  # the same: no error
    anonymous = engine.volumes.create({})
    assert anonymous["anonymous"] and len(anonymous["name"]) == 64
    assert sorted(v["name"] for v in engine.volumes.list()) == sorted(["nvt-data", anonymous["name"]])
    document = engine.volumes.inspect("nvt-data")
    assert document == volume_models.inspect_document(made)
    assert (document["Name"], document["Scope"], document["Labels"]) == ("nvt-data", "local", {"app": "db"})
    assert engine.volumes.remove("nvt-data") == {"name": "nvt-data"}
    assert not os.path.exists(made["mountpoint"])
    with pytest.raises(errors.NotFound, match="nvt-data"):
        engine.volumes.inspect("nvt-data")
    with pytest.raises(errors.NotFound, match="nvt-data"):
        engine.volumes.remove("nvt-data")
    assert engine.volumes.remove("nvt-data", force=True) == {"name": "nvt-data"}  # missing: no error with force
    engine.volumes.remove(anonymous["name"])


def test_volume_errors(engine: Engine) -> None:
    for bad in ("b a", "x", "../up"):
        with pytest.raises(errors.InvalidRequest, match="invalid characters"):
            engine.volumes.create({"name": bad})
        with pytest.raises(errors.InvalidRequest):
            engine.volumes.inspect(bad)
    with pytest.raises(errors.InvalidRequest, match="invalid label"):
        engine.volumes.create({"name": "nvt-labels", "labels": {"": "x"}})
    engine.volumes.create({"name": "nvt-kept", "labels": {"a": "1"}})
    with pytest.raises(errors.Conflict, match="already exists with labels"):
        engine.volumes.create({"name": "nvt-kept", "labels": {"a": "2"}})
    write_state(engine, "nvt-mounter", [{"type": "bind", "source": engine.volumes.list()[0]["mountpoint"]}])
    with pytest.raises(errors.Conflict, match="nvt-mounter"):
        engine.volumes.remove("nvt-kept")
    with pytest.raises(errors.Conflict, match="nvt-mounter"):
        engine.volumes.remove("nvt-kept", force=True)  # force is for missing volumes, not used ones
    foreign = Path(engine.config.root) / "volumes" / "nvt-foreign"
    foreign.mkdir()  # a directory made by hand: not a volume, never replaced by one
    with pytest.raises(errors.Conflict, match="not a volume"):
        engine.volumes.inspect("nvt-foreign")
    assert [v["name"] for v in engine.volumes.list()] == ["nvt-kept"]


def test_volume_prune(engine: Engine) -> None:
    anonymous = engine.volumes.create({"labels": {"k": "v"}})
    used_anonymous = engine.volumes.create({})
    named = engine.volumes.create({"name": "nvt-named"})
    retained = engine.wiring.volumes().create("nvt-retained", retain="retain")  # a manifest's
    Path(anonymous["mountpoint"], "blob").write_bytes(b"x" * 3000)
    Path(anonymous["mountpoint"], "sub").mkdir()
    Path(anonymous["mountpoint"], "sub", "more").write_bytes(b"y" * 500)
    os.link(Path(anonymous["mountpoint"], "blob"), Path(anonymous["mountpoint"], "hardlink"))  # counted once
    os.symlink("/etc/passwd", Path(anonymous["mountpoint"], "link"))  # not followed
    Path(named["mountpoint"], "file").write_bytes(b"z" * 100)
    write_state(engine, "nvt-user", [{"type": "bind", "source": used_anonymous["mountpoint"]}])

    first = engine.volumes.prune()
    assert first["removed"] == [anonymous["name"]]
    assert first["reclaimed_bytes"] == 3500  # regular files only, each inode once
    assert engine.volumes.prune(all=True) == {"removed": ["nvt-named"], "reclaimed_bytes": 100}
    assert sorted(v["name"] for v in engine.volumes.list()) == sorted([used_anonymous["name"], retained.name])
    assert engine.volumes.prune(all=True) == {"removed": [], "reclaimed_bytes": 0}
