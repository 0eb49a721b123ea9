"""A real agent serving the Docker API on a socket of the test module's own, with a
busybox image, for the docker CLI and docker-py tests. One agent per module (the
suite stays quick); everything it made (containers, the bridge, its links and
nftables tables, mounts, cgroups) is removed afterwards and checked gone."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from reconciler.runtime import linux
from tests.agent_fixtures import Agent

IMAGE = "dtest:1"
APPLETS = ("sh", "echo", "sleep", "cat", "true", "false", "ls", "hostname", "env", "id")


def busybox_rootfs(path: Path) -> Path:
    with tarfile.open(path, "w") as archive:
        archive.add("/bin/busybox", arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
        for directory in ("tmp", "data"):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777
            archive.addfile(entry)
    return path


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def nft_tables_naming(word: str) -> list[str]:
    """The nftables tables whose rules name ``word`` (our bridge): checked by name,
    as other tests on this host make and remove tables of their own meanwhile."""
    try:
        listing = subprocess.run(["nft", "list", "ruleset"], capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    found, table = [], ""
    for line in listing.decode(errors="replace").splitlines():
        if line.startswith("table "):
            table = line.split()[2]
        elif word in line and table not in found:
            found.append(table)
    return found


def bridges(agent: Agent) -> list[str]:
    """The host bridges of the agent's networks (Docker's bridge, once a container used it)."""
    result = agent.cli("network", "inspect", "bridge")
    if result.returncode != 0:
        return []
    return [str(n.get("Options", {}).get("bridge")) for n in json.loads(result.stdout) if n.get("Options")]


class DockerAgent:
    """The agent, its Docker socket, the image, and a unique prefix for names."""

    def __init__(self, agent: Agent, base: Path) -> None:
        self.agent = agent
        self.socket = str(agent.docker_socket)
        self.base_url = f"unix://{self.socket}"
        self.config = base / "docker-config"
        self.config.mkdir(exist_ok=True)
        self.prefix = f"dk{uuid.uuid4().hex[:6]}"
        self.image = IMAGE

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """One HTTP request on the Docker socket; the status and the decoded JSON body."""
        from reconciler.client.transport import UnixConnection

        connection = UnixConnection(self.socket, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def names(self) -> list[str]:
        status, listing = self.request("GET", "/containers/json?all=1")
        assert status == 200, listing
        return [row["Names"][0].lstrip("/") for row in listing]


@pytest.fixture(scope="module")
def docker_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerAgent]:
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # detached monitors are reaped here
    base = tmp_path_factory.mktemp("docker-api")
    agent = Agent(base)
    made: list[str] = []
    try:
        agent.start()
        tarball = busybox_rootfs(base / "busybox.tar")
        result = agent.cli("image", "import", str(tarball), IMAGE)
        assert result.returncode == 0, result.stderr
        yield DockerAgent(agent, base)
    finally:
        try:
            if agent.process is not None and agent.process.poll() is None:
                for name in agent.cli("ps", "-a", "-q").stdout.split():
                    agent.cli("rm", "-f", name)
                made.extend(bridges(agent))
                agent.cli("network", "rm", "bridge")
                assert agent.stop() == 0
        finally:
            agent.cleanup()
        assert not agent.docker_socket.exists(), "the Docker socket was left behind"
        for bridge in made:
            assert not link_exists(bridge), f"the bridge {bridge} was left behind"
            assert nft_tables_naming(bridge) == [], f"nftables rules for {bridge} were left behind"


@pytest.fixture(scope="module")
def client(docker_agent: DockerAgent) -> Iterator[docker.DockerClient]:
    """A docker SDK client on the module's agent."""
    made = docker.DockerClient(base_url=docker_agent.base_url, timeout=30)
    try:
        yield made
    finally:
        made.close()


def wait_until(predicate: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)
