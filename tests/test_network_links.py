"""Bridges and veth pairs on the real kernel: created through reconciler.network.links,
observed with ``ip -j`` (inside a namespace through ``nsenter``) and with traffic.

Every link a test makes starts with this module's random prefix, every namespace
handle lives in tmp_path, every process is tracked; the ``lab`` fixture removes
them all even when a test fails and then asserts nothing is left. Addresses are in
10.213.0.0/16, which the host does not use; traffic goes only to addresses of
networks the test created.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

import pytest

from reconciler.network import links
from reconciler.runtime import netns

pytestmark = pytest.mark.requires_root

PREFIX = "rt" + secrets.token_hex(2)  # rtXXXX: ours alone, whatever else runs on the host


def bridge(n: int) -> str:
    return f"{PREFIX}b{n}"


def veth(n: int) -> str:
    return f"{PREFIX}v{n}"


def gw(subnet: int) -> IPv4Interface:
    return IPv4Interface(f"10.213.{subnet}.1/24")


def addr(subnet: int, host: int) -> IPv4Interface:
    return IPv4Interface(f"10.213.{subnet}.{host}/24")


@dataclass
class Lab:
    """What a test made: namespace handles and processes, removed by the fixture."""

    directory: Path
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def netns(self, name: str) -> str:
        path = str(self.directory / f"netns-{name}")
        netns.create(path)
        self.namespaces.append(path)
        return path

    def spawn(self, ns: str, argv: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            ["nsenter", f"--net={ns}", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.processes.append(process)
        return process

    def run(self, ns: str, argv: list[str], *, stdin: str = "") -> subprocess.CompletedProcess[str]:
        argv = ["nsenter", f"--net={ns}", *argv]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=20, check=False)

    def attach(self, ns: str, *, n: int, subnet: int, host: int, ifname: str = "eth0", primary: bool = True) -> None:
        links.attach(
            ns,
            bridge=bridge(subnet),
            host_ifname=veth(n),
            ifname=ifname,
            address=addr(subnet, host),
            gateway=gw(subnet).ip if primary else None,
            mtu=1500,
        )


def ping(address: IPv4Interface | IPv4Address | str, *, ns: str | None = None) -> bool:
    """One busybox ping (the host has no ping binary), from the host or a namespace."""
    target = str(address.ip if isinstance(address, IPv4Interface) else address)
    argv = ["busybox", "ping", "-c1", "-W1", target]
    if ns is not None:
        argv = ["nsenter", f"--net={ns}", *argv]
    return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0


def ip_json(ns: str | None, *args: str) -> Any:
    argv = ["ip", "-j", *args] if ns is None else ["nsenter", f"--net={ns}", "ip", "-j", *args]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout or "[]")


def ipv4_addresses(ns: str | None, ifname: str) -> list[str]:
    (link,) = ip_json(ns, "addr", "show", "dev", ifname)
    return [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["family"] == "inet"]


def wait_for_port(host: str, port: int, *, deadline: float = 10.0) -> None:
    """Until something accepts on host:port (a server the test started)."""
    end = time.monotonic() + deadline
    while True:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        if time.monotonic() > end:
            raise AssertionError(f"nothing listens on {host}:{port}")
        time.sleep(0.05)


def python_in(lab: Lab, ns: str, code: str, *args: str) -> subprocess.Popen[bytes]:
    """A small Python server inside a namespace (busybox nc has no UDP, no peer report)."""
    return lab.spawn(ns, [sys.executable, "-c", code, *args])


def cleanup(state: Lab) -> None:
    """Remove everything a test made, each step independent of the others' failure;
    ``ip link del`` rather than the code under test, which may be what failed."""
    for process in state.processes:
        process.kill()
        process.wait(timeout=10)
    for name in links.list_links(PREFIX):
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
    for path in state.namespaces:
        netns.remove(path)


@contextlib.contextmanager
def lab_context(directory: Path) -> Iterator[Lab]:
    """A Lab whose leftovers are removed on exit, which then asserts none remain."""
    state = Lab(directory)
    try:
        yield state
    finally:
        cleanup(state)
    assert links.list_links(PREFIX) == []
    assert all(not os.path.exists(path) for path in state.namespaces)
    assert all(process.returncode is not None for process in state.processes)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with lab_context(tmp_path) as state:
        yield state


# --- names -------------------------------------------------------------------------


def test_bridge_names_are_stable_prefixed_and_fit_ifnamsiz() -> None:
    name = links.bridge_name("a-rather-long-network-name-for-a-bridge")
    assert name == links.bridge_name("a-rather-long-network-name-for-a-bridge")
    assert name.startswith("rc-") and len(name) == 15
    assert links.bridge_name("frontend") != links.bridge_name("backend")
    assert links.bridge_name("frontend", prefix="rtx-").startswith("rtx-")


def test_host_veth_names_depend_on_container_and_network() -> None:
    name = links.host_veth_name("web", "frontend")
    assert name.startswith("rv") and len(name) == 15
    assert name == links.host_veth_name("web", "frontend")
    assert name != links.host_veth_name("web", "backend")
    assert name != links.host_veth_name("webfrontend", "")  # the separator keeps pairs apart


@pytest.mark.parametrize("prefix", ["", "much-too-long", "bad/", "sp ace"])
def test_bad_name_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(links.LinkError, match="prefix"):
        links.bridge_name("net", prefix=prefix)


def test_docker_style_mac_is_02_42_and_the_address() -> None:
    assert links.docker_mac(IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"


# --- bridges -----------------------------------------------------------------------


def test_ensure_bridge_creates_an_up_bridge_with_the_gateway(lab: Lab) -> None:
    links.ensure_bridge(bridge(71), gw(71), mtu=1400)
    (link,) = ip_json(None, "-d", "link", "show", "dev", bridge(71))
    assert link["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in link["flags"] and link["mtu"] == 1400
    assert ipv4_addresses(None, bridge(71)) == ["10.213.71.1/24"]


def test_ensure_bridge_is_idempotent_and_converges_the_address(lab: Lab) -> None:
    links.ensure_bridge(bridge(71), gw(71))
    (before,) = ip_json(None, "link", "show", "dev", bridge(71))
    links.ensure_bridge(bridge(71), gw(71))
    (after,) = ip_json(None, "link", "show", "dev", bridge(71))
    assert after["ifindex"] == before["ifindex"]  # corrected, not recreated
    assert ipv4_addresses(None, bridge(71)) == ["10.213.71.1/24"]
    links.ensure_bridge(bridge(71), IPv4Interface("10.213.71.254/24"))
    assert ipv4_addresses(None, bridge(71)) == ["10.213.71.254/24"]


def test_bridge_mac_is_fixed_when_ports_come_and_go(lab: Lab) -> None:
    links.ensure_bridge(bridge(71), gw(71))
    (before,) = ip_json(None, "link", "show", "dev", bridge(71))
    lab.attach(lab.netns("a"), n=1, subnet=71, host=2)
    (after,) = ip_json(None, "link", "show", "dev", bridge(71))
    assert after["address"] == before["address"]


def test_a_non_bridge_link_of_that_name_is_refused(lab: Lab) -> None:
    subprocess.run(["ip", "link", "add", bridge(71), "type", "veth", "peer", "name", f"{PREFIX}x7"], check=True)
    with pytest.raises(links.LinkError, match="not a bridge"):
        links.ensure_bridge(bridge(71), gw(71))
    with pytest.raises(links.LinkError, match="not a bridge"):
        links.remove_bridge(bridge(71))
    assert links.list_links(PREFIX) == [bridge(71), f"{PREFIX}x7"]


def test_remove_bridge_deletes_it_and_a_missing_one_is_fine(lab: Lab) -> None:
    links.ensure_bridge(bridge(71), gw(71))
    links.remove_bridge(bridge(71))
    assert links.list_links(PREFIX) == []
    links.remove_bridge(bridge(71))


@pytest.mark.parametrize(
    ("name", "mtu", "match"),
    [("a-name-far-too-long", 1500, "interface name"), ("bad/name", 1500, "interface name"), ("", 1500, "name")],
)
def test_ensure_bridge_refuses_bad_input(name: str, mtu: int, match: str) -> None:
    with pytest.raises(links.LinkError, match=match):
        links.ensure_bridge(name, gw(71), mtu=mtu)


def test_ensure_bridge_refuses_a_bad_mtu() -> None:
    with pytest.raises(links.LinkError, match="MTU"):
        links.ensure_bridge(bridge(71), gw(71), mtu=10)


# --- attach / detach ---------------------------------------------------------------


def test_attach_wires_eth0_with_address_mac_mtu_and_default_route(lab: Lab) -> None:
    ns = lab.netns("a")
    links.ensure_bridge(bridge(71), gw(71), mtu=1450)
    endpoint = links.attach(
        ns,
        bridge=bridge(71),
        host_ifname=veth(1),
        ifname="eth0",
        address=addr(71, 2),
        gateway=gw(71).ip,
        mtu=1450,
    )
    assert endpoint == links.Endpoint("eth0", veth(1), addr(71, 2), "02:42:0a:d5:47:02")
    (eth0,) = ip_json(ns, "link", "show", "dev", "eth0")
    assert eth0["address"] == "02:42:0a:d5:47:02" and eth0["mtu"] == 1450 and "UP" in eth0["flags"]
    assert ipv4_addresses(ns, "eth0") == ["10.213.71.2/24"]
    assert ip_json(ns, "route", "show", "default") == [
        {"dst": "default", "gateway": "10.213.71.1", "dev": "eth0", "protocol": "static", "flags": []}
    ]
    (host_end,) = ip_json(None, "link", "show", "dev", veth(1))
    assert host_end["master"] == bridge(71) and host_end["mtu"] == 1450 and "UP" in host_end["flags"]
    assert ipv4_addresses(None, bridge(71)) == ["10.213.71.1/24"]
    assert ping(addr(71, 2))


def test_a_given_mac_is_used(lab: Lab) -> None:
    ns = lab.netns("a")
    links.ensure_bridge(bridge(71), gw(71))
    endpoint = links.attach(
        ns,
        bridge=bridge(71),
        host_ifname=veth(1),
        ifname="eth0",
        address=addr(71, 2),
        gateway=None,
        mtu=1500,
        mac="02:AA:BB:CC:DD:EE",
    )
    assert endpoint.mac == "02:aa:bb:cc:dd:ee"
    assert ip_json(ns, "link", "show", "dev", "eth0")[0]["address"] == "02:aa:bb:cc:dd:ee"


def test_a_second_network_is_eth1_without_a_default_route(lab: Lab) -> None:
    ns = lab.netns("a")
    links.ensure_bridge(bridge(71), gw(71))
    links.ensure_bridge(bridge(72), gw(72))
    lab.attach(ns, n=1, subnet=71, host=2)
    lab.attach(ns, n=2, subnet=72, host=2, ifname="eth1", primary=False)
    assert ipv4_addresses(ns, "eth1") == ["10.213.72.2/24"]
    assert [route["dev"] for route in ip_json(ns, "route", "show", "default")] == ["eth0"]
    assert ping(addr(71, 2)) and ping(addr(72, 2))


def test_without_a_gateway_there_is_no_default_route(lab: Lab) -> None:
    ns = lab.netns("a")
    links.ensure_bridge(bridge(71), gw(71))
    lab.attach(ns, n=1, subnet=71, host=2, primary=False)
    assert ip_json(ns, "route", "show", "default") == []
    assert ping(addr(71, 2))  # its own subnet is still reachable


def test_two_namespaces_on_one_bridge_reach_each_other(lab: Lab) -> None:
    first, second = lab.netns("a"), lab.netns("b")
    links.ensure_bridge(bridge(71), gw(71))
    lab.attach(first, n=1, subnet=71, host=2)
    lab.attach(second, n=2, subnet=71, host=3)
    assert ping(addr(71, 3), ns=first)
    assert ping(addr(71, 2), ns=second)
    assert ping(gw(71), ns=first)


def test_attach_replaces_a_leftover_host_veth(lab: Lab) -> None:
    ns = lab.netns("a")
    links.ensure_bridge(bridge(71), gw(71))
    lab.attach(ns, n=1, subnet=71, host=2)
    lab.attach(ns, n=1, subnet=71, host=2)  # as after a killed attach: same names again
    assert links.list_links(PREFIX) == [bridge(71), veth(1)]
    assert [link["ifname"] for link in ip_json(ns, "link", "show")] == ["lo", "eth0"]
    assert ping(addr(71, 2))


def test_detach_removes_both_ends_and_a_missing_veth_is_fine(lab: Lab) -> None:
    ns = lab.netns("a")
    links.ensure_bridge(bridge(71), gw(71))
    lab.attach(ns, n=1, subnet=71, host=2)
    links.detach(veth(1))
    assert links.list_links(PREFIX) == [bridge(71)]
    assert [link["ifname"] for link in ip_json(ns, "link", "show")] == ["lo"]
    links.detach(veth(1))


def test_removing_the_namespace_removes_the_pair(lab: Lab) -> None:
    ns = lab.netns("a")
    links.ensure_bridge(bridge(71), gw(71))
    lab.attach(ns, n=1, subnet=71, host=2)
    netns.remove(ns)
    deadline = time.monotonic() + 10  # the namespace is torn down asynchronously
    while veth(1) in links.list_links(PREFIX) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert links.list_links(PREFIX) == [bridge(71)]


def test_a_failed_attach_leaves_no_veth(lab: Lab) -> None:
    ns = lab.netns("a")
    links.ensure_bridge(bridge(71), gw(71))
    with pytest.raises(links.LinkError, match="default route"):
        links.attach(
            ns,
            bridge=bridge(71),
            host_ifname=veth(1),
            ifname="eth0",
            address=addr(71, 2),
            gateway=IPv4Address("10.213.79.1"),  # not on the link: the route is refused
            mtu=1500,
        )
    assert links.list_links(PREFIX) == [bridge(71)]
    assert [link["ifname"] for link in ip_json(ns, "link", "show")] == ["lo"]


def test_an_ifname_taken_in_the_namespace_is_refused(lab: Lab) -> None:
    ns = lab.netns("a")
    links.ensure_bridge(bridge(71), gw(71))
    with pytest.raises(links.LinkError, match="already exists in network namespace"):
        lab.attach(ns, n=1, subnet=71, host=2, ifname="lo")
    assert links.list_links(PREFIX) == [bridge(71)]


def test_a_path_that_is_not_a_namespace_is_refused(lab: Lab, tmp_path: Path) -> None:
    links.ensure_bridge(bridge(71), gw(71))
    plain = tmp_path / "not-a-netns"
    plain.write_text("")
    with pytest.raises(links.LinkError, match="network namespace"):
        lab.attach(str(plain), n=1, subnet=71, host=2)
    with pytest.raises(links.LinkError, match="cannot open network namespace"):
        lab.attach(str(tmp_path / "missing"), n=1, subnet=71, host=2)
    assert links.list_links(PREFIX) == [bridge(71)]


def test_attach_to_a_missing_bridge_is_refused(lab: Lab) -> None:
    with pytest.raises(links.LinkError, match="does not exist"):
        lab.attach(lab.netns("a"), n=1, subnet=71, host=2)
    assert links.list_links(PREFIX) == []


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"ifname": "eth0-but-far-too-long"}, "interface name"),
        ({"host_ifname": "with space"}, "interface name"),
        ({"mtu": 67}, "MTU"),
        ({"mtu": 70000}, "MTU"),
        ({"mac": "02:42:zz:00:00:01"}, "MAC"),
        ({"mac": "02:42:00:00:01"}, "MAC"),
    ],
)
def test_attach_refuses_bad_input(tmp_path: Path, override: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {
        "bridge": bridge(71),
        "host_ifname": veth(1),
        "ifname": "eth0",
        "address": addr(71, 2),
        "gateway": gw(71).ip,
        "mtu": 1500,
    }
    with pytest.raises(links.LinkError, match=match):
        links.attach(str(tmp_path / "netns"), **{**arguments, **override})


def test_list_links_filters_by_prefix(lab: Lab) -> None:
    links.ensure_bridge(bridge(71), gw(71))
    links.ensure_bridge(bridge(72), gw(72))
    assert links.list_links(PREFIX) == [bridge(71), bridge(72)]
    assert links.list_links(f"{PREFIX}v") == []
