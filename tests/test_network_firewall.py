"""Our nftables table on the real kernel: published ports reached from the host,
isolation between bridges, internal networks, masquerade, and ip_forward bookkeeping.

Each test gets its own table (``reconcile_test_<random>``) and state directory; the
``fw`` fixture drops the table even when a test fails and asserts it is gone and
that ``ip_forward`` is what it was. Links, namespaces and processes come from the
``lab`` fixture of test_network_links. Traffic goes to 127.0.0.1, to the bridge
gateways the tests create and to addresses in their 10.213.0.0/16 networks.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from reconciler.network import firewall, links
from tests import test_network_links as lt
from tests.test_network_links import Lab

pytestmark = pytest.mark.requires_root

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"

#: Answers every TCP connection with the peer's address, so a test sees the source
#: after NAT. Listens on sys.argv[1]:sys.argv[2].
PEER_REPORTER = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    conn, peer = server.accept()
    conn.sendall(peer[0].encode())
    conn.close()
"""

#: Echoes UDP datagrams, on sys.argv[1]:sys.argv[2].
UDP_ECHO = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = sock.recvfrom(2048)
    sock.sendto(data, peer)
"""


def nft_tables() -> list[tuple[str, str]]:
    listing = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return [
        (item["table"]["family"], item["table"]["name"]) for item in json.loads(listing)["nftables"] if "table" in item
    ]


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(host: str, port: int) -> bytes | None:
    """The body of GET / from host:port, or None when nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=3)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read()
    except OSError:
        return None
    finally:
        connection.close()


def http_get_from(lab: Lab, ns: str, host: str, port: int) -> str | None:
    """The body of GET / from inside a namespace, or None when nothing answers
    (busybox nc: Debian's busybox wget crashes in a bare namespace)."""
    request = "GET / HTTP/1.0\r\n\r\n"
    reply = lab.run(ns, ["busybox", "nc", "-w", "3", host, str(port)], stdin=request).stdout
    _, separator, body = reply.partition("\n\n")
    return body if reply.startswith("HTTP/1.1 200") and separator else None


def udp_echo(host: str, port: int) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"ping", (host, port))
        try:
            return sock.recv(2048)
        except OSError:
            return None


def table_name() -> str:
    return f"reconcile_test_{secrets.token_hex(4)}"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with lt.lab_context(tmp_path) as state:
        yield state


@pytest.fixture
def fw(tmp_path: Path) -> Iterator[firewall.Firewall]:
    forward_before = read(IP_FORWARD)
    table = table_name()
    wall = firewall.Firewall(table, state_dir=str(tmp_path / "fw-state"))
    try:
        yield wall
    finally:
        wall.remove_all()
    assert ("inet", table) not in nft_tables()
    assert read(IP_FORWARD) == forward_before
    assert not (tmp_path / "fw-state" / firewall.FORWARD_STATE_FILE).exists()


def network(lab: Lab, fw: firewall.Firewall, subnet: int, *, internal: bool = False) -> None:
    links.ensure_bridge(lt.bridge(subnet), lt.gw(subnet))
    fw.ensure_network(lt.bridge(subnet), IPv4Network(f"10.213.{subnet}.0/24"), internal=internal)


def container(lab: Lab, name: str, *, n: int, subnet: int, host: int, primary: bool = True) -> str:
    ns = lab.netns(name)
    lab.attach(ns, n=n, subnet=subnet, host=host, primary=primary)
    return ns


def web_server(lab: Lab, ns: str, address: str, tmp_path: Path, body: str = "hello\n") -> None:
    www = tmp_path / f"www-{address}"
    www.mkdir()
    (www / "index.html").write_text(body)
    lab.spawn(ns, ["busybox", "httpd", "-f", "-p", f"{address}:80", "-h", str(www)])
    lt.wait_for_port(address, 80)


# --- published ports -------------------------------------------------------------


def test_a_published_port_is_reached_on_localhost_and_on_host_addresses(
    lab: Lab, fw: firewall.Firewall, tmp_path: Path
) -> None:
    network(lab, fw, 71)
    ns = container(lab, "web", n=1, subnet=71, host=2)
    web_server(lab, ns, "10.213.71.2", tmp_path)
    port = free_port()
    fw.publish("web", host_ip=None, host_port=port, container_ip="10.213.71.2", container_port=80, protocol="tcp")
    assert read(f"/proc/sys/net/ipv4/conf/{lt.bridge(71)}/route_localnet") == "1"
    assert http_get("127.0.0.1", port) == b"hello\n"
    assert http_get("10.213.71.1", port) == b"hello\n"  # the gateway: an address of this host
    fw.unpublish("web")
    assert http_get("127.0.0.1", port) is None
    assert fw.rules("web") == []


def test_a_port_published_on_127_0_0_1_is_not_reached_on_other_addresses(
    lab: Lab, fw: firewall.Firewall, tmp_path: Path
) -> None:
    network(lab, fw, 71)
    ns = container(lab, "web", n=1, subnet=71, host=2)
    web_server(lab, ns, "10.213.71.2", tmp_path)
    port = free_port()
    fw.publish("web", host_ip="127.0.0.1", host_port=port, container_ip="10.213.71.2", container_port=80)
    assert http_get("127.0.0.1", port) == b"hello\n"
    assert http_get("10.213.71.1", port) is None


def test_a_container_reaches_a_published_port_of_its_own_network_through_the_host(
    lab: Lab, fw: firewall.Firewall, tmp_path: Path
) -> None:
    network(lab, fw, 71)
    server = container(lab, "web", n=1, subnet=71, host=2)
    client = container(lab, "client", n=2, subnet=71, host=3)
    web_server(lab, server, "10.213.71.2", tmp_path)
    port = free_port()
    fw.publish("web", host_ip=None, host_port=port, container_ip="10.213.71.2", container_port=80)
    assert http_get_from(lab, client, "10.213.71.1", port) == "hello\n"  # hairpin: out and back through the same bridge


def test_udp_ports_are_published(lab: Lab, fw: firewall.Firewall) -> None:
    network(lab, fw, 71)
    ns = container(lab, "dns", n=1, subnet=71, host=2)
    lt.python_in(lab, ns, UDP_ECHO, "10.213.71.2", "5353")
    port = free_port()
    fw.publish("dns", host_ip=None, host_port=port, container_ip="10.213.71.2", container_port=5353, protocol="udp")
    reply = None
    for _ in range(20):  # the echo server may not be bound yet
        reply = udp_echo("127.0.0.1", port)
        if reply:
            break
    assert reply == b"ping"


def test_a_port_range_is_published_in_one_go_and_replaced(lab: Lab, fw: firewall.Firewall) -> None:
    network(lab, fw, 71)
    ns = container(lab, "web", n=1, subnet=71, host=2)
    first = free_port()
    ports = [first, first + 1, first + 2]  # as 9000-9002:9000-9002 arrives, one mapping per port
    for port in ports:
        lt.python_in(lab, ns, PEER_REPORTER, "10.213.71.2", str(port))
    for port in ports:
        lt.wait_for_port("10.213.71.2", port)
    mappings = [
        firewall.published(host_ip=None, host_port=p, container_ip="10.213.71.2", container_port=p) for p in ports
    ]
    fw.publish_all("web", mappings)
    for port in ports:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
            assert conn.recv(64)  # reached the reporter behind that port
    assert sorted(rule.published.host_port for rule in fw.rules("web") if rule.published) == sorted(ports * 2)
    handles = [rule.handle for rule in fw.rules("web")]
    fw.publish_all("web", list(reversed(mappings)))
    assert [rule.handle for rule in fw.rules("web")] == handles  # already so: untouched
    fw.publish_all("web", mappings[:1])
    assert {rule.published for rule in fw.rules("web")} == {mappings[0]}
    fw.publish_all("web", [])
    assert fw.rules("web") == []
    fw.publish_all("nobody", [])


def test_publishing_twice_changes_nothing(fw: firewall.Firewall) -> None:
    port: dict[str, Any] = {"host_ip": None, "host_port": 18080, "container_ip": "10.213.71.2", "container_port": 80}
    fw.publish("web", **port)
    fw.publish("web", **port)
    fw.publish("web", **{**port, "host_port": 18081})
    assert [rule.chain for rule in fw.rules("web")] == ["prerouting", "prerouting", "output", "output"]


def test_a_port_another_owner_publishes_is_refused(fw: firewall.Firewall) -> None:
    fw.publish("web", host_ip=None, host_port=18080, container_ip="10.213.71.2", container_port=80)
    with pytest.raises(firewall.PortConflict, match="already published by web"):
        fw.publish("api", host_ip="127.0.0.1", host_port=18080, container_ip="10.213.71.3", container_port=80)
    fw.publish("api", host_ip=None, host_port=18080, container_ip="10.213.71.3", container_port=80, protocol="udp")
    fw.publish("api", host_ip=None, host_port=18081, container_ip="10.213.71.3", container_port=80)
    with pytest.raises(firewall.PortConflict, match=r"api already publishes 0\.0\.0\.0:18081/tcp"):
        fw.publish("api", host_ip="127.0.0.1", host_port=18081, container_ip="10.213.71.3", container_port=81)
    with pytest.raises(firewall.PortConflict, match="twice"):
        fw.publish_all(
            "db",
            [
                firewall.published(host_ip="127.0.0.1", host_port=5432, container_ip="10.213.71.4", container_port=1),
                firewall.published(host_ip=None, host_port=5432, container_ip="10.213.71.4", container_port=2),
            ],
        )
    assert fw.rules("db") == []


def test_concurrent_publishers_of_one_port_get_it_once(fw: firewall.Firewall) -> None:
    """The state-dir lock makes check-then-add atomic among our processes and threads."""
    outcomes: list[str] = []

    def claim(owner: str) -> None:
        wall = firewall.Firewall(fw.table, state_dir=fw.state_dir)  # as a separate process would
        try:
            wall.publish(owner, host_ip=None, host_port=18080, container_ip="10.213.71.2", container_port=80)
            outcomes.append("published")
        except firewall.PortConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=claim, args=(f"web{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["published"]
    assert len(fw.rules()) == 2


def test_rules_read_back_what_was_published(fw: firewall.Firewall) -> None:
    fw.publish("web", host_ip="127.0.0.1", host_port=18080, container_ip="10.213.71.2", container_port=80)
    expected = firewall.Published(IPv4Address("127.0.0.1"), 18080, IPv4Address("10.213.71.2"), 80, "tcp")
    assert [(rule.chain, rule.comment, rule.published) for rule in fw.rules("web")] == [
        ("prerouting", "web", expected),
        ("output", "web", expected),
    ]


# --- networks ----------------------------------------------------------------------


def test_two_networks_are_isolated_from_each_other(lab: Lab, fw: firewall.Firewall) -> None:
    network(lab, fw, 71)
    network(lab, fw, 72)
    first = container(lab, "a", n=1, subnet=71, host=2)
    second = container(lab, "b", n=2, subnet=72, host=2)
    assert lt.ping(lt.gw(71), ns=first) and lt.ping(lt.gw(72), ns=second)  # each reaches its own gateway
    assert not lt.ping(lt.addr(72, 2), ns=first)
    assert not lt.ping(lt.addr(71, 2), ns=second)
    fw.remove_network(lt.bridge(72))  # the isolation rules were what blocked it
    assert lt.ping(lt.addr(72, 2), ns=first)


def test_a_published_port_is_reached_from_another_network(lab: Lab, fw: firewall.Firewall, tmp_path: Path) -> None:
    network(lab, fw, 71)
    network(lab, fw, 72)
    server = container(lab, "web", n=1, subnet=71, host=2)
    client = container(lab, "client", n=2, subnet=72, host=2)
    web_server(lab, server, "10.213.71.2", tmp_path)
    port = free_port()
    fw.publish("web", host_ip=None, host_port=port, container_ip="10.213.71.2", container_port=80)
    assert http_get_from(lab, client, "10.213.72.1", port) == "hello\n"
    assert http_get_from(lab, client, "10.213.71.2", 80) is None  # but not the container itself


def test_traffic_leaving_through_another_interface_is_masqueraded(lab: Lab, fw: firewall.Firewall) -> None:
    outside_world(lab)
    network(lab, fw, 71)
    ns = container(lab, "a", n=1, subnet=71, host=2)
    seen = lab.run(ns, ["busybox", "nc", "-w", "3", "10.213.75.2", "7777"])
    assert seen.stdout == "10.213.75.1"  # the host's address on that link, not 10.213.71.2


def test_an_internal_network_has_no_way_out(lab: Lab, fw: firewall.Firewall) -> None:
    # forwarding on, as on a host with other (non-internal) networks: then only our
    # internal rules can be what blocks the way out (a fresh host has it off)
    before = Path(IP_FORWARD).read_text()
    Path(IP_FORWARD).write_text("1")
    try:
        outside_world(lab)
        network(lab, fw, 73, internal=True)
        ns = container(lab, "a", n=1, subnet=73, host=2, primary=False)
        assert lt.ip_json(ns, "route", "show", "default") == []
        lab.run(ns, ["ip", "route", "add", "default", "via", "10.213.73.1"])  # even with a route of its own
        assert lab.run(ns, ["busybox", "nc", "-w", "2", "10.213.75.2", "7777"]).stdout == ""
        assert lt.ping(lt.addr(73, 2))  # the host still reaches it (not forwarded)
        fw.remove_network(lt.bridge(73))  # the internal rules were what blocked it
        assert lab.run(ns, ["busybox", "nc", "-w", "3", "10.213.75.2", "7777"]).stdout == "10.213.73.2"
    finally:
        Path(IP_FORWARD).write_text(before)


def outside_world(lab: Lab) -> str:
    """A namespace behind a plain veth (not a bridge of ours), 10.213.75.2, whose
    reporter on port 7777 answers with the source address it sees."""
    ns = lab.netns("outside")
    host_end, far_end = f"{lt.PREFIX}o1", f"{lt.PREFIX}o2"
    subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", far_end], check=True)
    subprocess.run(["ip", "link", "set", far_end, "netns", ns], check=True)
    subprocess.run(["ip", "addr", "add", "10.213.75.1/24", "dev", host_end], check=True)
    subprocess.run(["ip", "link", "set", host_end, "up"], check=True)
    lab.run(ns, ["ip", "addr", "add", "10.213.75.2/24", "dev", far_end])
    lab.run(ns, ["ip", "link", "set", far_end, "up"])
    lab.run(ns, ["ip", "route", "add", "default", "via", "10.213.75.1"])  # replies to unmasqueraded sources
    lt.python_in(lab, ns, PEER_REPORTER, "10.213.75.2", "7777")
    lt.wait_for_port("10.213.75.2", 7777)
    return ns


def test_ensure_network_is_idempotent_and_follows_internal(fw: firewall.Firewall, tmp_path: Path) -> None:
    sysctl = fake_sysctl(tmp_path, "rtfake0")
    wall = firewall.Firewall(fw.table, state_dir=fw.state_dir, sysctl_root=sysctl)
    subnet = IPv4Network("10.213.71.0/24")
    wall.ensure_network("rtfake0", subnet, internal=False)
    once = [rule.comment for rule in wall.rules()]
    wall.ensure_network("rtfake0", subnet, internal=False)
    assert [rule.comment for rule in wall.rules()] == once
    assert sorted(once) == [f"net:rtfake0:{role}" for role in ("hairpin", "isolate", "localhost", "masquerade")]
    wall.ensure_network("rtfake0", subnet, internal=True)
    assert sorted(rule.comment for rule in wall.rules()) == [
        "net:rtfake0:internal",
        "net:rtfake0:internal",
        "net:rtfake0:isolate",
    ]
    assert wall.networks() == {"rtfake0": True}


def fake_sysctl(tmp_path: Path, *bridges: str, forward: str = "0") -> str:
    root = tmp_path / "sys"
    (root / "net" / "ipv4").mkdir(parents=True)
    (root / "net" / "ipv4" / "ip_forward").write_text(forward)
    for name in bridges:
        (root / "net" / "ipv4" / "conf" / name).mkdir(parents=True)
        (root / "net" / "ipv4" / "conf" / name / "route_localnet").write_text("0")
    return str(root)


def test_ip_forward_is_on_while_a_non_internal_network_exists(tmp_path: Path) -> None:
    sysctl = fake_sysctl(tmp_path, "rtfake1", "rtfake2", "rtfake3")
    state = tmp_path / "state"
    wall = firewall.Firewall(table_name(), state_dir=str(state), sysctl_root=sysctl)
    forward = Path(sysctl, "net", "ipv4", "ip_forward")
    saved = state / firewall.FORWARD_STATE_FILE
    try:
        wall.ensure_network("rtfake1", IPv4Network("10.213.71.0/24"), internal=True)
        assert forward.read_text() == "0" and not saved.exists()
        assert Path(sysctl, "net/ipv4/conf/rtfake1/route_localnet").read_text() == "0"
        wall.ensure_network("rtfake2", IPv4Network("10.213.72.0/24"), internal=False)
        assert forward.read_text() == "1" and saved.read_text() == "0"
        assert Path(sysctl, "net/ipv4/conf/rtfake2/route_localnet").read_text() == "1"
        wall.ensure_network("rtfake3", IPv4Network("10.213.73.0/24"), internal=False)
        wall.remove_network("rtfake2")
        assert forward.read_text() == "1"
        wall.remove_network("rtfake3")
        assert forward.read_text() == "0" and not saved.exists()
        assert wall.networks() == {"rtfake1": True}
        wall.remove_network("rtfake1")
        assert ("inet", wall.table) not in nft_tables()  # the last network takes the table
    finally:
        wall.remove_all()
    assert ("inet", wall.table) not in nft_tables()


def test_remove_all_restores_ip_forward(tmp_path: Path) -> None:
    sysctl = fake_sysctl(tmp_path, "rtfake1")
    wall = firewall.Firewall(table_name(), state_dir=str(tmp_path / "state"), sysctl_root=sysctl)
    try:
        wall.ensure_network("rtfake1", IPv4Network("10.213.71.0/24"), internal=False)
        assert Path(sysctl, "net/ipv4/ip_forward").read_text() == "1"
    finally:
        wall.remove_all()
    assert Path(sysctl, "net/ipv4/ip_forward").read_text() == "0"
    assert ("inet", wall.table) not in nft_tables()


def test_a_missing_bridge_is_refused_before_any_rule(fw: firewall.Firewall) -> None:
    with pytest.raises(firewall.FirewallError, match="route_localnet"):
        fw.ensure_network(f"{lt.PREFIX}nope", IPv4Network("10.213.71.0/24"), internal=False)
    assert ("inet", fw.table) not in nft_tables()


def test_everything_is_idempotent_on_a_missing_table(fw: firewall.Firewall) -> None:
    assert fw.rules() == [] and fw.networks() == {}
    fw.unpublish("web")
    fw.remove_network("rtfake0")
    fw.remove_all()
    assert ("inet", fw.table) not in nft_tables()


def test_other_tables_are_never_touched(fw: firewall.Firewall, tmp_path: Path) -> None:
    sibling = f"{fw.table}_other"
    subprocess.run(
        ["nft", "-f", "-"],
        input=f'table inet {sibling} {{\n chain c {{\n tcp dport 9 accept comment "web"\n }}\n}}\n',
        text=True,
        check=True,
    )
    try:
        before = subprocess.run(["nft", "-j", "list", "table", "inet", sibling], capture_output=True, text=True)
        wall = firewall.Firewall(fw.table, state_dir=fw.state_dir, sysctl_root=fake_sysctl(tmp_path, "rtfake0"))
        wall.ensure_network("rtfake0", IPv4Network("10.213.71.0/24"), internal=False)
        wall.publish("web", host_ip=None, host_port=18080, container_ip="10.213.71.2", container_port=80)
        wall.unpublish("web")
        wall.remove_all()
        after = subprocess.run(["nft", "-j", "list", "table", "inet", sibling], capture_output=True, text=True)
        assert after.stdout == before.stdout
    finally:
        subprocess.run(["nft", "delete", "table", "inet", sibling], check=False)


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("table", ["", "has-dash", "9starts_with_digit", "x" * 65, "spa ce"])
def test_bad_table_names_are_refused(table: str, tmp_path: Path) -> None:
    with pytest.raises(firewall.FirewallError, match="table name"):
        firewall.Firewall(table, state_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"host_port": 0}, "host port"),
        ({"host_port": 65536}, "host port"),
        ({"container_port": -1}, "container port"),
        ({"host_port": True}, "host port"),
        ({"protocol": "sctp"}, "protocol"),
        ({"host_ip": "::1"}, "address"),
        ({"host_ip": "localhost"}, "address"),
        ({"container_ip": "10.213.7"}, "address"),
    ],
)
def test_bad_published_ports_are_refused(fw: firewall.Firewall, override: dict[str, Any], match: str) -> None:
    port: dict[str, Any] = {
        "host_ip": None,
        "host_port": 18080,
        "container_ip": "10.213.71.2",
        "container_port": 80,
        "protocol": "tcp",
    }
    with pytest.raises(firewall.FirewallError, match=match):
        fw.publish("web", **{**port, **override})
    assert ("inet", fw.table) not in nft_tables()


def test_0_0_0_0_means_every_address() -> None:
    port = firewall.published(host_ip="0.0.0.0", host_port=1, container_ip="10.213.71.2", container_port=1)
    assert port.host_ip is None


@pytest.mark.parametrize("owner", ["", "has:colon", "-leading-dash", "x" * 101, 'quote"d'])
def test_bad_owners_are_refused(fw: firewall.Firewall, owner: str) -> None:
    with pytest.raises(firewall.FirewallError, match="owner"):
        fw.publish(owner, host_ip=None, host_port=18080, container_ip="10.213.71.2", container_port=80)
    with pytest.raises(firewall.FirewallError, match="owner"):
        fw.unpublish(owner)


@pytest.mark.parametrize("name", ["", "much-too-long-bridge", "a/b", "a b"])
def test_bad_bridge_names_are_refused(fw: firewall.Firewall, name: str) -> None:
    with pytest.raises(firewall.FirewallError, match="bridge name"):
        fw.ensure_network(name, IPv4Network("10.213.71.0/24"), internal=False)
    with pytest.raises(firewall.FirewallError, match="bridge name"):
        fw.remove_network(name)


def test_a_missing_nft_binary_is_reported(tmp_path: Path) -> None:
    wall = firewall.Firewall(table_name(), state_dir=str(tmp_path), nft=str(tmp_path / "no-nft"))
    with pytest.raises(firewall.FirewallError, match="cannot run"):
        wall.rules()
