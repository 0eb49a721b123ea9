"""``network connect``/``disconnect`` of a container after create (root, real kernel,
real busybox containers and bridges): a running container joined to a second network
gets ``eth1`` with an address there, reaches a container of that network by address,
name and alias and is reached by its own alias; ``disconnect`` takes the interface, the
lease and the names away and leaves the first network as it was. A created container
is wired at once and keeps it when it starts; compose's disconnect-and-reconnect before
a start gives ``eth0`` back with its default route. The errors are Docker's. The same
through an agent with the CLI, and with the real ``docker`` CLI on the agent's Docker
socket. Afterwards no link, rule, lease, netns handle or DNS daemon of ours is left.
Traffic goes only to containers of networks made here (10.233.7x.0/24)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.engine import errors
from reconciler.engine.core import Engine
from reconciler.engine.wiring import EngineConfig
from reconciler.network import links
from reconciler.network.manager import table_for
from tests import agent_fixtures
from tests.agent_fixtures import Agent, make_agent
from tests.test_cli_containers import assert_no_mounts_under, busybox_tarball, reconcile
from tests.test_cli_containers import engine as engine  # a fixture, used by name
from tests.test_cli_networks import nft_tables, our_links
from tests.test_docker_images import docker, needs_docker

pytestmark = pytest.mark.requires_root

agents = agent_fixtures.agents  # the fixture

IMAGE = "net:1"  # the ``net`` fixture's: busybox with nc, nslookup and ip
NETWORKS = ("bridge", "nc-a", "nc-b")
CONTAINERS = ("nc-c", "nc-d", "nc-peer", "nc-srv", "nc-none", "nc-host")


def links_of(root: Path) -> set[str]:
    """The links of ``root`` that exist, bridges and host veths (other tests on the
    host make and remove links of their own meanwhile)."""
    key = f"{root.resolve()}\0{{}}".format
    names = {links.bridge_name(key(network)) for network in NETWORKS}
    names |= {links.host_veth_name(key(container), network) for container in CONTAINERS for network in NETWORKS}
    return names & our_links()


@pytest.fixture
def net(engine: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """The engine with an image that has nc, nslookup and ip; afterwards its
    containers and networks are gone, with their links, rules, leases and DNS daemon."""
    import tarfile

    tarball = busybox_tarball(tmp_path / "busybox.tar")
    with tarfile.open(tarball, "a") as archive:
        for applet in ("nc", "nslookup", "ip"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
    ok(reconcile(engine, "image", "import", str(tarball), IMAGE))
    root = Path(engine["RECONCILE_ROOT"])
    try:
        yield engine
    finally:
        for container in json.loads(reconcile(engine, "ps", "-a", "-o", "json").stdout or "[]"):
            reconcile(engine, "rm", "-f", container["name"])
        reconcile(engine, "network", "prune")
        reconcile(engine, "network", "rm", "bridge")
        assert links_of(root) == set(), "links left behind"
        assert table_for(str(root)) not in nft_tables(), "nftables table left behind"
        assert not (root / "dns.pid").exists()
        if (root / "state.db").exists():
            with sqlite3.connect(root / "state.db") as db:
                assert db.execute("SELECT count(*) FROM leases").fetchone() == (0,), "leases left behind"
        assert_no_mounts_under(root)


def ok(result: object) -> None:
    assert getattr(result, "returncode", None) == 0, getattr(result, "stderr", result)


def serve(env: dict[str, str], name: str, network: str, reply: str, *extra: str) -> None:
    """A container answering ``reply`` on port 80 (nc in a loop)."""
    script = f"while true; do echo {reply} | nc -l -p 80; done"
    ok(reconcile(env, "run", "-d", "--name", name, "--network", network, *extra, IMAGE, "sh", "-c", script))


def ask_from(env: dict[str, str], container: str, target: str) -> str:
    """What the server at ``target`` (a name or address) answers ``container``; the
    server listens again a moment after each answer, so an empty answer is retried."""
    answer = ""
    for _ in range(30):
        answer = reconcile(env, "exec", container, "sh", "-c", f"echo | nc -w 2 {target} 80").stdout
        if answer:
            break
        time.sleep(0.2)
    return answer


def address_of(env: dict[str, str], network: str, container: str) -> str:
    inspected = json.loads(reconcile(env, "network", "inspect", network).stdout)[0]
    return str(inspected["Containers"][container]["IPv4Address"]).split("/")[0]


def leases(env: dict[str, str], owner: str) -> list[tuple[str, str]]:
    with sqlite3.connect(Path(env["RECONCILE_ROOT"]) / "state.db") as db:
        return sorted(db.execute("SELECT network, address FROM leases WHERE owner = ?", (owner,)).fetchall())


@pytest.fixture
def in_process(net: dict[str, str]) -> Iterator[Engine]:
    """An engine in this process on the ``net`` fixture's root (its error classes)."""
    made = Engine(EngineConfig(root=net["RECONCILE_ROOT"], cgroup_parent=net["RECONCILE_CGROUP_PARENT"]))
    try:
        yield made
    finally:
        made.close()


def test_a_running_container_joins_and_leaves_a_second_network(net: dict[str, str], in_process: Engine) -> None:
    ok(reconcile(net, "network", "create", "nc-a", "--subnet", "10.233.71.0/24"))
    ok(reconcile(net, "network", "create", "nc-b", "--subnet", "10.233.72.0/24"))
    serve(net, "nc-peer", "nc-a", "hello-peer")
    serve(net, "nc-srv", "nc-b", "hello-srv", "--network-alias", "srv")
    ok(reconcile(net, "run", "-d", "--name", "nc-c", "--network", "nc-a", IMAGE, "sleep", "300"))
    first = address_of(net, "nc-a", "nc-c")
    assert reconcile(net, "exec", "nc-c", "sh", "-c", "echo | nc -w 1 srv 80").stdout == ""  # not yet

    ok(reconcile(net, "network", "connect", "--alias", "cli", "nc-b", "nc-c"))
    second = address_of(net, "nc-b", "nc-c")
    assert second.startswith("10.233.72.")
    eth1 = reconcile(net, "exec", "nc-c", "ip", "-4", "addr", "show", "eth1")
    assert eth1.returncode == 0 and f"inet {second}/24" in eth1.stdout, eth1.stdout + eth1.stderr
    srv = address_of(net, "nc-b", "nc-srv")
    assert ask_from(net, "nc-c", srv) == "hello-srv\n"  # by address
    assert ask_from(net, "nc-c", "srv") == "hello-srv\n"  # by the server's alias
    assert ask_from(net, "nc-c", "nc-srv") == "hello-srv\n"  # by its name
    seen = reconcile(net, "exec", "nc-srv", "nslookup", "cli")  # and the server sees nc-c's alias
    assert second in seen.stdout, seen.stdout + seen.stderr
    inspected = json.loads(reconcile(net, "inspect", "nc-c").stdout)[0]
    assert set(inspected["NetworkSettings"]["Networks"]) == {"nc-a", "nc-b"}
    assert inspected["NetworkSettings"]["Networks"]["nc-b"]["IPAddress"] == second
    row = next(c for c in json.loads(reconcile(net, "ps", "-o", "json").stdout) if c["name"] == "nc-c")
    assert row["networks"] == ["nc-a", "nc-b"]
    assert leases(net, "container/nc-c") == [("nc-a", first), ("nc-b", second)]

    ok(reconcile(net, "network", "disconnect", "nc-b", "nc-c"))
    assert reconcile(net, "exec", "nc-c", "ip", "link", "show", "eth1").returncode != 0  # interface gone
    assert "nc-c" not in json.loads(reconcile(net, "network", "inspect", "nc-b").stdout)[0]["Containers"]
    assert leases(net, "container/nc-c") == [("nc-a", first)]  # the lease on nc-b is free
    gone = reconcile(net, "exec", "nc-srv", "nslookup", "cli")
    assert second not in gone.stdout  # its alias is no longer a name there
    assert reconcile(net, "exec", "nc-c", "sh", "-c", f"echo | nc -w 1 {srv} 80").stdout == ""
    # the first network as it was: address, default route, its peers by name
    eth0 = reconcile(net, "exec", "nc-c", "ip", "-4", "addr", "show", "eth0").stdout
    assert f"inet {first}/24" in eth0
    assert "default via 10.233.71.1 dev eth0" in reconcile(net, "exec", "nc-c", "ip", "route").stdout
    assert ask_from(net, "nc-c", "nc-peer") == "hello-peer\n"
    inspected = json.loads(reconcile(net, "inspect", "nc-c").stdout)[0]
    assert set(inspected["NetworkSettings"]["Networks"]) == {"nc-a"}

    # connected again (by a prefix of its ID, as Docker takes it), it stays connected through a restart
    ok(reconcile(net, "network", "connect", "nc-b", inspected["Id"][:10]))
    in_process.containers.stop("nc-c", grace=0)
    in_process.containers.start("nc-c")
    assert "inet 10.233.72." in reconcile(net, "exec", "nc-c", "ip", "-4", "addr", "show", "eth1").stdout
    assert ask_from(net, "nc-c", "srv") == "hello-srv\n"


def test_a_created_container_is_wired_at_once_and_compose_reconnects_it(
    net: dict[str, str], in_process: Engine
) -> None:
    ok(reconcile(net, "network", "create", "nc-a", "--subnet", "10.233.73.0/24"))
    ok(reconcile(net, "network", "create", "nc-b", "--subnet", "10.233.74.0/24"))
    serve(net, "nc-srv", "nc-b", "hello-b")
    in_process.containers.create({"image": IMAGE, "name": "nc-c", "networks": ["nc-a"], "command": ["sleep", "300"]})
    ok(reconcile(net, "network", "connect", "--ip", "10.233.74.50", "nc-b", "nc-c"))
    # docker-compose 1.29 before a start: off its first network and on again
    ok(reconcile(net, "network", "disconnect", "nc-a", "nc-c"))
    ok(reconcile(net, "network", "connect", "--alias", "again", "nc-a", "nc-c"))
    in_process.containers.start("nc-c")
    eth0 = reconcile(net, "exec", "nc-c", "ip", "-4", "addr", "show", "eth0").stdout
    eth1 = reconcile(net, "exec", "nc-c", "ip", "-4", "addr", "show", "eth1").stdout
    assert "inet 10.233.73." in eth0 and "inet 10.233.74.50/24" in eth1, eth0 + eth1
    routes = reconcile(net, "exec", "nc-c", "ip", "route").stdout
    assert routes.count("default") == 1 and "default via" in routes, routes
    assert ask_from(net, "nc-c", "nc-srv") == "hello-b\n"
    inspected = json.loads(reconcile(net, "inspect", "nc-c").stdout)[0]
    assert set(inspected["NetworkSettings"]["Networks"]) == {"nc-a", "nc-b"}
    assert "again" in (inspected["NetworkSettings"]["Networks"]["nc-a"]["Aliases"] or [])
    hosts = reconcile(net, "exec", "nc-c", "cat", "/etc/hosts").stdout
    assert address_of(net, "nc-a", "nc-c") in hosts  # its own address, for its name
    ok(reconcile(net, "rm", "-f", "nc-c"))  # every endpoint goes with it
    assert leases(net, "container/nc-c") == []


def test_the_errors_are_dockers(net: dict[str, str], in_process: Engine) -> None:
    networks = in_process.networks
    ok(reconcile(net, "network", "create", "nc-a", "--subnet", "10.233.75.0/24"))
    ok(reconcile(net, "network", "create", "nc-b", "--subnet", "10.233.76.0/24"))
    containers = in_process.containers
    containers.create({"image": IMAGE, "name": "nc-c", "networks": ["nc-a"], "command": ["sleep", "300"]})
    containers.create({"image": IMAGE, "name": "nc-none", "command": ["sleep", "300"]})
    containers.create({"image": IMAGE, "name": "nc-host", "networks": ["host"], "command": ["sleep", "300"]})
    with pytest.raises(errors.NotFound, match="network 'nc-nosuch' not found"):
        networks.connect("nc-nosuch", {"container": "nc-c"})
    with pytest.raises(errors.NotFound, match="no such container: nc-nosuch"):
        networks.connect("nc-b", {"container": "nc-nosuch"})
    with pytest.raises(errors.Conflict, match="endpoint with name nc-c already exists in network nc-a"):
        networks.connect("nc-a", {"container": "nc-c"})
    with pytest.raises(errors.Conflict, match="connected to host network"):
        networks.connect("nc-b", {"container": "nc-host"})
    with pytest.raises(errors.Conflict, match=r"private \(none\) mode"):
        networks.connect("nc-b", {"container": "nc-none"})
    with pytest.raises(errors.Conflict, match="container nc-c is not connected to network nc-b"):
        networks.disconnect("nc-b", {"container": "nc-c"})
    with pytest.raises(errors.InvalidRequest, match="not in network nc-b's subnet"):
        networks.connect("nc-b", {"container": "nc-c", "ip": "10.233.75.9"})
    with pytest.raises(errors.InvalidRequest, match="invalid IPv4 address"):
        networks.connect("nc-b", {"container": "nc-c", "ip": "nonsense"})
    ok(reconcile(net, "network", "connect", "--ip", "10.233.76.9", "nc-b", "nc-c"))
    containers.create({"image": IMAGE, "name": "nc-d", "networks": ["nc-a"], "command": ["sleep", "300"]})
    with pytest.raises(errors.Conflict, match=r"10\.233\.76\.9"):  # taken: nothing of nc-d is left on nc-b
        networks.connect("nc-b", {"container": "nc-d", "ip": "10.233.76.9"})
    assert leases(net, "container/nc-d") == [("nc-a", address_of(net, "nc-a", "nc-d"))]
    # the CLI says the same, exit code 1
    twice = reconcile(net, "network", "connect", "nc-b", "nc-c")
    assert twice.returncode == 1 and "endpoint with name nc-c already exists in network nc-b" in twice.stderr
    host = reconcile(net, "network", "disconnect", "nc-b", "nc-host")
    assert host.returncode == 1 and "host network" in host.stderr
    # a network in use by a connected container is not removed
    busy = reconcile(net, "network", "rm", "nc-b")
    assert busy.returncode == 1 and "in use" in busy.stderr


@pytest.fixture
def agent(agents: list[Agent], tmp_path: Path) -> Iterator[Agent]:
    """An agent; its containers and networks are removed afterwards, with their links,
    nftables table and DNS daemon."""
    made = make_agent(agents, tmp_path / "agent")
    try:
        yield made
    finally:
        for container in json.loads(made.cli("ps", "-a", "-o", "json").stdout or "[]"):
            made.cli("rm", "-f", container["name"])
        made.cli("network", "prune")
        made.cli("network", "rm", "bridge")
        made.stop()
        assert links_of(made.root) == set(), "links left behind"
        assert table_for(str(made.root)) not in nft_tables(), "nftables table left behind"
        assert not (made.root / "dns.pid").exists()


def networks_of(agent: Agent, container: str) -> dict[str, dict[str, object]]:
    inspected = json.loads(agent.cli("inspect", container).stdout)[0]
    return dict(inspected["NetworkSettings"]["Networks"])


def test_connect_and_disconnect_through_an_agent(agent: Agent) -> None:
    image = agent.image()
    ok(agent.cli("network", "create", "nc-a", "--subnet", "10.233.77.0/24"))
    ok(agent.cli("network", "create", "nc-b", "--subnet", "10.233.78.0/24"))
    ok(agent.cli("run", "-d", "--name", "nc-c", "--network", "nc-a", image, "sleep", "300"))
    ok(agent.cli("network", "connect", "--alias", "cli", "--ip", "10.233.78.7", "nc-b", "nc-c"))
    found = networks_of(agent, "nc-c")
    assert found["nc-b"]["IPAddress"] == "10.233.78.7" and "cli" in (found["nc-b"]["Aliases"] or []), found
    endpoints = json.loads(agent.cli("network", "inspect", "nc-b").stdout)[0]["Containers"]
    assert endpoints["nc-c"]["IPv4Address"] == "10.233.78.7/24"
    twice = agent.cli("network", "connect", "nc-b", "nc-c")
    assert twice.returncode == 1 and "already exists in network nc-b" in twice.stderr
    ok(agent.cli("network", "disconnect", "-f", "nc-b", "nc-c"))
    assert set(networks_of(agent, "nc-c")) == {"nc-a"}
    missing = agent.cli("network", "disconnect", "nc-b", "nc-c")
    assert missing.returncode == 1 and "is not connected to network nc-b" in missing.stderr
    unknown = agent.cli("network", "connect", "nc-b", "nc-nosuch")
    assert unknown.returncode == 1 and "no such container: nc-nosuch" in unknown.stderr


@needs_docker
def test_docker_network_connect_and_disconnect(agent: Agent) -> None:
    image = agent.image()
    assert docker(agent, "network", "create", "--subnet", "10.233.79.0/24", "nc-a").returncode == 0
    assert docker(agent, "network", "create", "--subnet", "10.233.80.0/24", "nc-b").returncode == 0
    made = docker(agent, "run", "-d", "--name", "nc-c", "--network", "nc-a", image, "sleep", "300")
    assert made.returncode == 0, made.stderr
    ident = made.stdout.strip()
    connected = docker(agent, "network", "connect", "--alias", "cli", "--ip", "10.233.80.9", "nc-b", ident[:12])
    assert connected.returncode == 0, connected.stderr
    inspected = json.loads(docker(agent, "inspect", "nc-c").stdout)[0]
    assert inspected["NetworkSettings"]["Networks"]["nc-b"]["IPAddress"] == "10.233.80.9"
    network = json.loads(docker(agent, "network", "inspect", "nc-b").stdout)[0]
    assert network["Containers"][ident]["IPv4Address"] == "10.233.80.9/24"
    eth1 = docker(agent, "exec", "nc-c", "cat", "/sys/class/net/eth1/address")
    assert eth1.stdout == "02:42:0a:e9:50:09\n", eth1.stderr  # Docker's MAC for 10.233.80.9
    twice = docker(agent, "network", "connect", "nc-b", "nc-c")
    assert twice.returncode == 1 and "endpoint with name nc-c already exists in network nc-b" in twice.stderr
    host = docker(agent, "network", "connect", "host", "nc-c")
    assert host.returncode == 1 and "host network" in host.stderr, host.stderr
    nosuch = docker(agent, "network", "connect", "nc-b", "nc-nosuch")
    assert nosuch.returncode == 1 and "No such container: nc-nosuch" in nosuch.stderr, nosuch.stderr
    left = docker(agent, "network", "disconnect", "--force", "nc-b", "nc-c")
    assert left.returncode == 0, left.stderr
    inspected = json.loads(docker(agent, "inspect", "nc-c").stdout)[0]
    assert set(inspected["NetworkSettings"]["Networks"]) == {"nc-a"}
    assert docker(agent, "exec", "nc-c", "cat", "/sys/class/net/eth1/address").returncode != 0
    assert json.loads(docker(agent, "network", "inspect", "nc-b").stdout)[0]["Containers"] == {}
    again = docker(agent, "network", "disconnect", "nc-b", "nc-c")
    assert again.returncode == 1 and "is not connected to network nc-b" in again.stderr
    assert docker(agent, "rm", "-f", "nc-c").returncode == 0


def test_published_ports_and_the_default_route_follow_the_first_network(
    net: dict[str, str], in_process: Engine
) -> None:
    from reconciler.network.manager import rule_owner
    from tests.registry_fixtures import free_port

    port = free_port()
    ok(reconcile(net, "network", "create", "nc-a", "--subnet", "10.233.81.0/24"))
    ok(reconcile(net, "network", "create", "nc-b", "--subnet", "10.233.82.0/24"))
    in_process.containers.run(
        {"image": IMAGE, "name": "nc-c", "networks": ["nc-a"], "publish": [f"{port}:80"], "command": ["sleep", "300"]},
        detach=True,
    )
    firewall = in_process.wiring.network_manager().firewall

    def targets() -> set[str]:
        return {str(rule.published.container_ip) for rule in firewall.rules(rule_owner("nc-c")) if rule.published}

    assert targets() == {address_of(net, "nc-a", "nc-c")}
    ok(reconcile(net, "network", "connect", "nc-b", "nc-c"))
    assert targets() == {address_of(net, "nc-a", "nc-c")}  # still the first network's
    second = address_of(net, "nc-b", "nc-c")
    assert "default via 10.233.81.1 dev eth0" in reconcile(net, "exec", "nc-c", "ip", "route").stdout
    ok(reconcile(net, "network", "disconnect", "nc-a", "nc-c"))
    assert targets() == {second}  # moved to the address left
    assert "default via 10.233.82.1 dev eth1" in reconcile(net, "exec", "nc-c", "ip", "route").stdout
    ok(reconcile(net, "network", "disconnect", "nc-b", "nc-c"))
    assert targets() == set()  # no address, no published port
    ok(reconcile(net, "network", "connect", "nc-a", "nc-c"))  # back as eth0, ports and route with it
    assert targets() == {address_of(net, "nc-a", "nc-c")}
    assert "default via 10.233.81.1 dev eth0" in reconcile(net, "exec", "nc-c", "ip", "route").stdout


def test_the_docker_sdk_for_python_connects_and_disconnects(agent: Agent) -> None:
    import docker as docker_sdk

    image = agent.image()
    client = docker_sdk.DockerClient(base_url=f"unix://{agent.docker_socket}", timeout=60)
    try:
        first = client.networks.create(
            "nc-a", ipam=docker_sdk.types.IPAMConfig(pool_configs=[docker_sdk.types.IPAMPool(subnet="10.233.83.0/24")])
        )
        second = client.networks.create(
            "nc-b", ipam=docker_sdk.types.IPAMConfig(pool_configs=[docker_sdk.types.IPAMPool(subnet="10.233.84.0/24")])
        )
        container = client.containers.create(image, ["sleep", "300"], name="nc-c", network="nc-a")
        second.connect(container, aliases=["py"], ipv4_address="10.233.84.20")
        container.reload()
        networks = container.attrs["NetworkSettings"]["Networks"]
        assert set(networks) == {"nc-a", "nc-b"} and networks["nc-b"]["IPAddress"] == "10.233.84.20"
        second.reload()
        assert [c.name for c in second.containers] == ["nc-c"]
        with pytest.raises(docker_sdk.errors.APIError, match="already exists in network nc-b"):
            second.connect(container)
        second.disconnect(container, force=True)
        container.reload()
        assert set(container.attrs["NetworkSettings"]["Networks"]) == {"nc-a"}
        container.remove(force=True)
        first.remove()
        second.remove()
    finally:
        client.close()
