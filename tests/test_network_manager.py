"""The network manager's promises that the CLI tests do not reach: an attach killed
half-way is undone by the next detach, endpoints of containers that are gone do not
hold a network, and several containers sharing an alias (a service's replicas)
resolve to all of their addresses through the embedded DNS."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.network import ipam, links
from reconciler.network.manager import Attachment, NetworkManager, owner_of
from reconciler.runtime import netns

pytestmark = pytest.mark.requires_root


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[NetworkManager]:
    before = {n for n in os.listdir("/sys/class/net") if n.startswith(("rc-", "rv"))}
    made = NetworkManager(str(tmp_path / "root"))
    handles: list[Path] = []
    made.handles = handles  # type: ignore[attr-defined]
    try:
        yield made
    finally:
        for endpoint in made.db.list_endpoints():
            made.detach(endpoint.container)
        for lease in made.db.list_leases():
            if lease.owner != ipam.GATEWAY_OWNER:
                made.detach(lease.owner.removeprefix("container/"))
        for record in made.networks():
            made.remove(record.name)
        for handle in handles:
            netns.remove(str(handle))
        made.close()
        after = {n for n in os.listdir("/sys/class/net") if n.startswith(("rc-", "rv"))}
        assert after == before, "links left behind"


def handle(manager: NetworkManager, tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.netns"
    netns.create(str(path))
    manager.handles.append(path)  # type: ignore[attr-defined]
    return str(path)


def test_an_attach_killed_half_way_is_undone_by_detach(manager: NetworkManager, tmp_path: Path) -> None:
    record = manager.create("half", subnet="10.213.97.0/24")
    # what a killed attach leaves: a lease and a veth, but no endpoint row yet
    with manager.db.transaction():
        address = ipam.allocate_address(manager.db, "half", owner_of("ghost"))
    assert record.bridge is not None
    host_ifname = links.host_veth_name(manager._key("ghost"), "half")
    links.attach(
        handle(manager, tmp_path, "ghost"),
        bridge=record.bridge,
        host_ifname=host_ifname,
        ifname="eth0",
        address=ipaddress.IPv4Interface(f"{address}/24"),
        gateway=record.gateway,
        mtu=1500,
    )
    assert os.path.exists(f"/sys/class/net/{host_ifname}")
    manager.detach("ghost")
    assert not os.path.exists(f"/sys/class/net/{host_ifname}")
    assert manager.db.list_leases(owner=owner_of("ghost")) == []
    # and attaching again from scratch works, with the same address free again
    endpoints = manager.attach("ghost", handle(manager, tmp_path, "ghost2"), [Attachment("half")])
    assert endpoints[0].address == address


def test_replicas_sharing_an_alias_resolve_to_all_their_addresses(manager: NetworkManager, tmp_path: Path) -> None:
    record = manager.create("svc", subnet="10.213.98.0/24")
    replicas = [
        manager.attach(f"api-{i}", handle(manager, tmp_path, f"api-{i}"), [Attachment("svc", aliases=("api",))])[0]
        for i in range(3)
    ]
    client = manager.attach("client", handle(manager, tmp_path, "client"), [Attachment("svc")])[0]
    assert manager.nameservers("client") == [str(record.gateway)]
    # ask as the client does: from inside its network namespace, to the daemon on the gateway
    client_handle = str(tmp_path / "client.netns")
    answer = subprocess.run(
        ["nsenter", f"--net={client_handle}", "busybox", "nslookup", "api", str(record.gateway)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    found = re.findall(r"Address: (10\.213\.98\.\d+)", answer.stdout)
    assert sorted(found) == sorted(str(r.address) for r in replicas), answer.stdout + answer.stderr
    assert client.address not in {r.address for r in replicas}
