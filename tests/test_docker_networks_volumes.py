"""The Docker API's network, volume, events and ``system df`` endpoints with the real
clients: ``docker network ls|create|inspect|rm|prune``, ``docker volume
ls|create|inspect|rm|prune``, ``docker system df``, ``docker events --since --until``,
and docker-py's ``networks.create/list`` and ``volumes.create/list``. The predefined
``bridge``, ``host`` and ``none`` are listed as Docker's; connect and disconnect take
compose's bodies. Bridges, nftables tables and the
DNS daemon made here are gone afterwards."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.network.manager import table_for
from tests import agent_fixtures
from tests.agent_fixtures import Agent, make_agent
from tests.test_cli_networks import nft_tables, our_links
from tests.test_docker_images import docker, needs_docker, raw

pytestmark = pytest.mark.requires_root

agents = agent_fixtures.agents  # the fixture


@pytest.fixture
def agent(agents: list[Agent], tmp_path: Path) -> Iterator[Agent]:
    """An agent; every network made through it is removed afterwards, and the host
    is left with the links and nftables tables it had."""
    made = make_agent(agents, tmp_path / "agent")
    try:
        yield made
    finally:
        listed = json.loads(made.cli("network", "ls", "-o", "json").stdout or "[]")
        bridges = {network["Options"]["bridge"] for network in listed if network["Options"].get("bridge")}
        for container in json.loads(made.cli("ps", "-a", "-o", "json").stdout or "[]"):
            made.cli("rm", "-f", container["name"])
        made.cli("network", "prune")
        made.cli("network", "rm", "bridge")
        made.stop()
        assert not bridges & our_links(), "bridges left behind"
        assert table_for(str(made.root)) not in nft_tables(), "the nftables table left behind"
        assert not (made.root / "dns.pid").exists()


class Lines:
    """Lines of a process's stdout as they come, each wait bounded (os.read on the
    pipe: a buffered reader would hide lines it already holds from select)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.fd = process.stdout.fileno()
        self.pending = b""
        self.lines: list[str] = []

    def until(self, done: Callable[[list[str]], bool], timeout: float = 20, *, strict: bool = True) -> list[str]:
        deadline = time.monotonic() + timeout
        while not done(self.lines):
            if time.monotonic() > deadline:
                assert not strict, self.lines
                break
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                chunk = os.read(self.fd, 65536)
                assert chunk, f"the follower ended: {self.lines}"
                self.pending += chunk
                *complete, self.pending = self.pending.split(b"\n")
                self.lines += [line.decode() for line in complete]
        return self.lines


def follow_events(agent: Agent, *args: str) -> subprocess.Popen[bytes]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(agent.base),
        "DOCKER_HOST": f"unix://{agent.docker_socket}",
        "DOCKER_CONFIG": str(agent.base / "docker-config"),
    }
    return subprocess.Popen(["/usr/local/bin/docker", "events", *args], env=env, stdout=subprocess.PIPE)


def names(listing: str) -> list[str]:
    return [line.split()[1] for line in listing.splitlines()[1:]]


@needs_docker
def test_networks_with_the_docker_cli(agent: Agent) -> None:
    listing = docker(agent, "network", "ls")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert names(listing.stdout) == ["bridge", "host", "none"]
    assert re.search(r"^[0-9a-f]{12}\s+none\s+null\s+local$", listing.stdout, re.M), listing.stdout

    created = docker(agent, "network", "create", "--subnet", "10.231.7.0/24", "--label", "team=a", "dn-front")
    assert created.returncode == 0, created.stderr
    ident = created.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", ident)
    again = docker(agent, "network", "create", "dn-front")
    assert again.returncode == 1 and "network with name dn-front already exists" in again.stderr
    assert docker(agent, "network", "create", "--driver", "overlay", "dn-x").returncode == 1
    assert docker(agent, "network", "create", "--internal", "dn-back").returncode == 0

    inspected = json.loads(docker(agent, "network", "inspect", "dn-front").stdout)[0]
    assert (inspected["Name"], inspected["Id"], inspected["Driver"], inspected["Scope"]) == (
        "dn-front",
        ident,
        "bridge",
        "local",
    )
    assert inspected["IPAM"]["Config"] == [{"Subnet": "10.231.7.0/24", "Gateway": "10.231.7.1"}]
    assert (inspected["Internal"], inspected["Labels"], inspected["Containers"]) == (False, {"team": "a"}, {})
    assert json.loads(docker(agent, "network", "inspect", ident[:12]).stdout)[0]["Name"] == "dn-front"
    assert json.loads(docker(agent, "network", "inspect", "dn-back").stdout)[0]["Internal"] is True
    filtered = docker(agent, "network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}")
    assert filtered.stdout.split() == ["dn-front"]
    custom = docker(agent, "network", "ls", "--filter", "type=custom", "--format", "{{.Name}}")
    assert custom.stdout.split() == ["dn-back", "dn-front"]

    for predefined in ("host", "none"):
        refused = docker(agent, "network", "rm", predefined)
        assert refused.returncode == 1 and "pre-defined network" in refused.stderr, refused.stderr
    missing = docker(agent, "network", "inspect", "dn-nosuch")
    assert missing.returncode == 1 and "network dn-nosuch not found" in missing.stderr

    image = agent.image()
    ran = docker(agent, "run", "-d", "--name", "dn-web", "--network", "dn-front", image, "sleep", "60")
    assert ran.returncode == 0, ran.stderr
    container = json.loads(docker(agent, "inspect", "dn-web").stdout)[0]
    address = container["NetworkSettings"]["Networks"]["dn-front"]["IPAddress"]
    attached = json.loads(docker(agent, "network", "inspect", "dn-front").stdout)[0]["Containers"]
    assert list(attached) == [container["Id"]]
    assert attached[container["Id"]]["Name"] == "dn-web"
    assert attached[container["Id"]]["IPv4Address"] == f"{address}/24"
    busy = docker(agent, "network", "rm", "dn-front")
    assert busy.returncode == 1 and "error while removing network" in busy.stderr, busy.stderr
    assert docker(agent, "rm", "-f", "dn-web").returncode == 0

    assert docker(agent, "network", "rm", "dn-front").stdout == "dn-front\n"
    pruned = docker(agent, "network", "prune", "-f")
    assert pruned.returncode == 0 and "dn-back" in pruned.stdout, pruned.stderr
    assert names(docker(agent, "network", "ls").stdout) == ["bridge", "host", "none"]


def test_connect_and_disconnect_over_the_raw_api(agent: Agent) -> None:
    """The bodies docker-compose sends (the container by its Docker ID); the CLI's
    own ``docker network connect`` is tested in test_network_connect.py."""
    image = agent.image()
    assert agent.cli("network", "create", "dn-one").returncode == 0
    assert agent.cli("network", "create", "dn-two").returncode == 0
    made = docker(agent, "create", "--name", "dn-c", "--network", "dn-one", image, "sleep", "60")
    assert made.returncode == 0, made.stderr
    ident = made.stdout.strip()
    body = json.dumps({"Container": ident, "EndpointConfig": {"Aliases": ["dn-alias"]}}).encode()
    status, answer = raw(agent, "POST", "/v1.41/networks/dn-two/connect", body)
    assert status == 200, answer
    status, answer = raw(agent, "POST", "/v1.41/networks/dn-two/connect", body)
    assert status == 409 and b"endpoint with name dn-c already exists in network dn-two" in answer
    disconnect = json.dumps({"Container": ident, "Force": False}).encode()
    status, answer = raw(agent, "POST", "/v1.41/networks/dn-two/disconnect", disconnect)
    assert status == 200, answer
    status, answer = raw(agent, "POST", "/v1.41/networks/dn-two/disconnect", disconnect)
    assert status == 409, answer
    status, answer = raw(agent, "POST", "/v1.50/networks/dn-one/connect", json.dumps({"Container": "nosuch"}).encode())
    assert status == 404 and json.loads(answer)["message"] == "No such container: nosuch"


@needs_docker
def test_volumes_with_the_docker_cli(agent: Agent) -> None:
    created = docker(agent, "volume", "create", "--label", "keep=yes", "dv-data")
    assert (created.returncode, created.stdout) == (0, "dv-data\n"), created.stderr
    assert docker(agent, "volume", "create", "dv-data").returncode == 0  # exists: the same volume
    assert docker(agent, "volume", "create", "dv-other").returncode == 0
    listing = docker(agent, "volume", "ls")
    assert listing.stdout.splitlines()[1:] == ["local     dv-data", "local     dv-other"], listing.stdout
    inspected = json.loads(docker(agent, "volume", "inspect", "dv-data").stdout)[0]
    assert (inspected["Name"], inspected["Driver"], inspected["Scope"], inspected["Labels"]) == (
        "dv-data",
        "local",
        "local",
        {"keep": "yes"},
    )
    assert inspected["Mountpoint"] == str(agent.root / "volumes" / "dv-data" / "_data")
    labelled = docker(agent, "volume", "ls", "-q", "--filter", "label=keep")
    assert labelled.stdout.split() == ["dv-data"]
    missing = docker(agent, "volume", "rm", "dv-nosuch")
    assert missing.returncode == 1 and "get dv-nosuch: no such volume" in missing.stderr

    image = agent.image()
    assert docker(agent, "create", "--name", "dv-user", "-v", "dv-data:/data", image, "true").returncode == 0
    dangling = docker(agent, "volume", "ls", "-q", "--filter", "dangling=true")
    assert dangling.stdout.split() == ["dv-other"]
    in_use = docker(agent, "volume", "rm", "dv-data")
    assert in_use.returncode == 1 and "volume is in use" in in_use.stderr, in_use.stderr
    pruned = docker(agent, "volume", "prune", "-a", "-f")
    assert pruned.returncode == 0 and "dv-other" in pruned.stdout and "dv-data" not in pruned.stdout
    assert docker(agent, "rm", "dv-user").returncode == 0
    assert docker(agent, "volume", "rm", "dv-data").stdout == "dv-data\n"
    assert docker(agent, "volume", "ls", "-q").stdout == ""


@needs_docker
def test_system_df_and_events(agent: Agent) -> None:
    image = agent.image()
    assert docker(agent, "volume", "create", "de-vol").returncode == 0
    (agent.root / "volumes" / "de-vol" / "_data" / "blob").write_bytes(b"x" * 10_000)
    assert docker(agent, "create", "--name", "de-c", "-v", "de-vol:/v", image, "true").returncode == 0
    started = time.time()
    assert docker(agent, "network", "create", "de-net").returncode == 0
    assert docker(agent, "tag", image, "de/tagged:1").returncode == 0
    assert docker(agent, "rmi", "de/tagged:1").returncode == 0
    assert docker(agent, "network", "rm", "de-net").returncode == 0
    assert docker(agent, "volume", "create", "de-gone").returncode == 0
    assert docker(agent, "volume", "rm", "de-gone").returncode == 0
    until = time.time() + 0.001

    df = docker(agent, "system", "df", "--format", "{{json .}}")
    assert df.returncode == 0, df.stderr
    rows = {row["Type"]: row for row in map(json.loads, df.stdout.splitlines())}
    assert (rows["Images"]["TotalCount"], rows["Images"]["Active"]) == ("1", "1")
    assert (rows["Containers"]["TotalCount"], rows["Containers"]["Active"]) == ("1", "0")
    assert (rows["Local Volumes"]["TotalCount"], rows["Local Volumes"]["Active"]) == ("1", "1")
    assert rows["Local Volumes"]["Size"] == "10kB"
    verbose = docker(agent, "system", "df", "-v")
    assert verbose.returncode == 0 and "de-vol" in verbose.stdout and "de-c" in verbose.stdout, verbose.stderr

    events = docker(
        agent,
        "events",
        "--since",
        f"{started:.6f}",
        "--until",
        f"{until:.6f}",
        "--format",
        "{{json .}}",
    )
    assert events.returncode == 0, events.stderr
    seen = [json.loads(line) for line in events.stdout.splitlines()]
    assert [(e["Type"], e["Action"], e["Actor"]["Attributes"].get("name") or e["Actor"]["ID"]) for e in seen] == [
        ("network", "create", "de-net"),
        ("image", "tag", "de/tagged:1"),
        ("image", "untag", "de/tagged:1"),
        ("network", "destroy", "de-net"),
        ("volume", "create", "de-gone"),
        ("volume", "destroy", "de-gone"),
    ], events.stdout
    only = docker(
        agent,
        "events",
        "--since",
        f"{started:.6f}",
        "--until",
        f"{until:.6f}",
        "--filter",
        "type=network",
        "--filter",
        "event=destroy",
        "--format",
        "{{.Actor.Attributes.name}}",
    )
    assert only.stdout.split() == ["de-net"]


def test_the_docker_sdk_for_python(agent: Agent) -> None:
    import docker as docker_sdk

    client = docker_sdk.DockerClient(base_url=f"unix://{agent.docker_socket}", timeout=60)
    try:
        network = client.networks.create("dp-net", labels={"by": "py"})
        assert network.id and network.name == "dp-net"
        assert {n.name for n in client.networks.list()} == {"bridge", "host", "none", "dp-net"}
        assert [n.id for n in client.networks.list(names=["dp-net"])] == [network.id]
        assert client.networks.get(network.id[:12]).attrs["Labels"] == {"by": "py"}
        with pytest.raises(docker_sdk.errors.NotFound):
            client.networks.get("dp-nosuch")
        network.remove()

        volume = client.volumes.create("dp-vol", labels={"by": "py"})
        assert (volume.name, volume.attrs["Labels"]) == ("dp-vol", {"by": "py"})
        anonymous = client.volumes.create()
        assert re.fullmatch(r"[0-9a-f]{64}", anonymous.name)
        assert {v.name for v in client.volumes.list()} == {"dp-vol", anonymous.name}
        assert client.volumes.get("dp-vol").attrs["Mountpoint"].endswith("/volumes/dp-vol/_data")
        assert client.volumes.prune()["VolumesDeleted"] == [anonymous.name]
        volume.remove()
        assert client.volumes.list() == []
    finally:
        client.close()


@needs_docker
def test_system_prune_uses_every_prune_endpoint(agent: Agent) -> None:
    image = agent.image()
    assert docker(agent, "network", "create", "sp-net").returncode == 0
    assert docker(agent, "volume", "create", "sp-named").returncode == 0
    anonymous = docker(agent, "volume", "create").stdout.strip()
    assert docker(agent, "tag", image, "sp/extra:1").returncode == 0
    assert docker(agent, "create", "--name", "sp-stopped", image, "true").returncode == 0

    pruned = docker(agent, "system", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert "sp-net" in pruned.stdout and "sp-stopped" not in docker(agent, "ps", "-a").stdout
    listed = docker(agent, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(listed) == sorted([image, "sp/extra:1"])  # created in the same second: any order

    everything = docker(agent, "system", "prune", "-a", "-f", "--volumes")
    assert everything.returncode == 0, everything.stderr
    assert anonymous in everything.stdout and "untagged: sp/extra:1" in everything.stdout
    assert docker(agent, "images", "-q").stdout == ""
    assert docker(agent, "volume", "ls", "-q").stdout.split() == ["sp-named"]  # named volumes stay


@needs_docker
def test_events_follow_until_the_client_goes(agent: Agent) -> None:
    follower = follow_events(agent, "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}")
    try:
        lines = Lines(follower)
        for attempt in range(50):  # created until one arrives: the follower may not be subscribed yet
            assert docker(agent, "volume", "create", f"ef-{attempt}").returncode == 0
            if lines.until(bool, timeout=0.5, strict=False):
                break
        assert docker(agent, "volume", "create", "ef-last").returncode == 0
        found = lines.until(lambda seen: "create ef-last" in seen)
        assert all(line.startswith("create ef-") for line in found), found
    finally:
        follower.kill()
        follower.wait(timeout=10)
    assert docker(agent, "volume", "prune", "-a", "-f").returncode == 0


@needs_docker
def test_container_events_live_and_replayed(agent: Agent) -> None:
    image = agent.image()
    started = time.time()
    follower = follow_events(
        agent,
        "--filter",
        "type=container",
        "--filter",
        "container=ce-one",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
    )
    try:
        lines = Lines(follower)
        time.sleep(1)  # subscribed (the CLI prints nothing until an event comes)
        ran = docker(agent, "run", "-d", "--name", "ce-one", image, "sh", "-c", "exit 3")
        assert ran.returncode == 0, ran.stderr
        assert docker(agent, "wait", "ce-one").stdout.strip() == "3"
        # containers are looked at every half second: each step is seen before the next
        lines.until(lambda seen: any(line.startswith("die") for line in seen))
        assert docker(agent, "rm", "ce-one").returncode == 0
        assert lines.until(lambda seen: seen[-1].startswith("destroy")) == [
            "create ce-one <no value>",
            "start ce-one <no value>",
            "die ce-one 3",
            "destroy ce-one <no value>",
        ]
    finally:
        follower.kill()
        follower.wait(timeout=10)

    assert docker(agent, "run", "-d", "--name", "ce-two", image, "echo").returncode == 0
    assert docker(agent, "wait", "ce-two").stdout.strip() == "0"
    replayed = docker(
        agent,
        "events",
        "--since",
        f"{started:.6f}",
        "--until",
        f"{time.time():.6f}",
        "--filter",
        "container=ce-two",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    )
    assert replayed.stdout.splitlines() == ["create ce-two", "start ce-two", "die ce-two"], replayed.stdout


@needs_docker
def test_prune_filters_until_and_label(agent: Agent, tmp_path: Path) -> None:
    image = agent.image()
    assert docker(agent, "network", "create", "--label", "keep=no", "pf-a").returncode == 0
    assert docker(agent, "network", "create", "pf-b").returncode == 0
    kept = docker(agent, "network", "prune", "-f", "--filter", "until=1h")  # both younger than an hour
    assert kept.returncode == 0 and "pf-" not in kept.stdout, kept.stdout + kept.stderr
    labelled = docker(agent, "network", "prune", "-f", "--filter", "label=keep=no")
    assert labelled.returncode == 0 and "pf-a" in labelled.stdout and "pf-b" not in labelled.stdout
    assert "pf-b" in docker(agent, "network", "prune", "-f", "--filter", "until=0s").stdout

    directory = tmp_path / "context"
    directory.mkdir()
    (directory / "Containerfile").write_text(f"FROM {image}\nLABEL purpose=scratch\n")
    built = docker(agent, "build", "-q", "-t", "pf/labelled:1", "-f", str(directory / "Containerfile"), str(directory))
    assert built.returncode == 0, built.stderr
    young = docker(agent, "image", "prune", "-a", "-f", "--filter", "until=1h")
    assert young.returncode == 0 and "untagged" not in young.stdout, young.stdout + young.stderr
    by_label = docker(agent, "image", "prune", "-a", "-f", "--filter", "label=purpose=scratch")
    assert by_label.returncode == 0 and "untagged: pf/labelled:1" in by_label.stdout, by_label.stdout
    assert docker(agent, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == [image]
    bad = docker(agent, "image", "prune", "-a", "-f", "--filter", "until=yesterday")
    assert bad.returncode == 1 and "invalid until filter" in bad.stderr


def test_network_create_bodies() -> None:
    from reconciler.dockerapi.errors import DockerError
    from reconciler.dockerapi.networks import create_request

    compose = {
        "Name": "p_front",
        "Driver": None,
        "Options": {},
        "IPAM": {"Driver": None, "Config": [], "Options": None},
        "Internal": False,
        "Labels": {"com.docker.compose.network": "front"},
        "CheckDuplicate": True,
        "Attachable": False,
    }
    assert create_request(compose) == {"name": "p_front", "internal": False, "labels": compose["Labels"]}
    full = create_request(
        {
            "Name": "n",
            "IPAM": {"Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.254", "IPRange": "10.9.0.128/25"}]},
            "Options": {"com.docker.network.driver.mtu": "1400"},
            "Internal": True,
        }
    )
    assert full == {
        "name": "n",
        "internal": True,
        "subnet": "10.9.0.0/24",
        "gateway": "10.9.0.254",
        "ip_range": "10.9.0.128/25",
        "mtu": 1400,
        "labels": {},
    }
    refused = {
        "a driver": {"Name": "n", "Driver": "overlay"},
        "IPv6": {"Name": "n", "EnableIPv6": True},
        "ingress": {"Name": "n", "Ingress": True},
        "two subnets": {"Name": "n", "IPAM": {"Config": [{"Subnet": "10.1.0.0/24"}, {"Subnet": "10.2.0.0/24"}]}},
        "a bad config": {"Name": "n", "IPAM": {"Config": ["10.1.0.0/24"]}},
        "an option": {"Name": "n", "Options": {"com.docker.network.bridge.name": "br0"}},
        "no name": {"Driver": "bridge"},
        "a bad MTU": {"Name": "n", "Options": {"com.docker.network.driver.mtu": "big"}},
    }
    for why, body in refused.items():
        with pytest.raises(DockerError) as caught:
            create_request(body)
        assert caught.value.status == 400, why
