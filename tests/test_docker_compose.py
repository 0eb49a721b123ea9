"""Debian's docker-compose 1.29 against the agent's Docker API: a project of a busybox
httpd service, a named volume and a network goes ``up -d``, shows in ``ps``, its
output in ``logs``, serves its page on its address in the project's network, and
``down -v`` takes all of it away. Every compose call has a timeout; the agent and
what it made are gone afterwards. Traffic goes only to the container's address in
the network the project made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.network.manager import table_for
from tests import agent_fixtures
from tests.agent_fixtures import Agent, make_agent
from tests.test_cli_networks import nft_tables, our_links

pytestmark = pytest.mark.requires_root

agents = agent_fixtures.agents  # the fixture

COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
needs_compose = pytest.mark.skipif(not os.path.exists(COMPOSE), reason="docker-compose missing (apt-get install)")

PROJECT = """\
version: "3.7"
services:
  web:
    image: busybox:local
    command:
      - sh
      - -c
      - echo serving; echo hello-compose > /www/index.html; exec /bin/busybox httpd -f -p 80 -h /www
    volumes:
      - www:/www
    networks:
      - front
volumes:
  www:
networks:
  front:
"""


def compose(agent: Agent, directory: Path, project: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(agent.base),
        "DOCKER_HOST": f"unix://{agent.docker_socket}",
        "DOCKER_CONFIG": str(agent.base / "docker-config"),
        "COMPOSE_PROJECT_NAME": project,
        "COMPOSE_INTERACTIVE_NO_CLI": "1",
    }
    return subprocess.run(
        [COMPOSE, "--ansi", "never", *args], cwd=directory, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def agent(agents: list[Agent], tmp_path: Path) -> Iterator[Agent]:
    made = make_agent(agents, tmp_path / "agent")
    made.image()
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


def fetch(address: str) -> str:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/", timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@needs_compose
def test_compose_up_ps_logs_down(agent: Agent, tmp_path: Path) -> None:
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "docker-compose.yml").write_text(PROJECT)
    project = f"dc{uuid.uuid4().hex[:8]}"
    try:
        up = compose(agent, directory, project, "up", "-d")
        assert up.returncode == 0, up.stderr
        assert f'Creating network "{project}_front"' in up.stderr
        assert f'Creating volume "{project}_www"' in up.stderr

        ps = compose(agent, directory, project, "ps")
        assert ps.returncode == 0, ps.stderr
        row = next(line for line in ps.stdout.splitlines() if line.startswith(f"{project}_web_1"))
        assert " Up " in f" {row} ", ps.stdout

        deadline = time.monotonic() + 15
        while "serving" not in (logs := compose(agent, directory, project, "logs", "--no-color")).stdout:
            assert time.monotonic() < deadline, logs.stdout + logs.stderr
            time.sleep(0.1)
        assert "web_1  | serving" in logs.stdout

        inspected = json.loads(agent.cli("inspect", f"{project}_web_1").stdout)[0]
        networks = inspected["NetworkSettings"]["Networks"]
        address = networks[f"{project}_front"]["IPAddress"]
        assert fetch(address) == "hello-compose\n"
        again = compose(agent, directory, project, "up", "-d")  # nothing changed: nothing recreated
        assert again.returncode == 0 and "is up-to-date" in again.stderr, again.stderr
    finally:
        down = compose(agent, directory, project, "down", "-v")
    assert down.returncode == 0, down.stderr
    assert json.loads(agent.cli("ps", "-a", "-o", "json").stdout) == []
    volumes = json.loads(agent.cli("volume", "ls", "-o", "json").stdout or "[]")
    assert [volume["Name"] for volume in volumes] == []
    networks = json.loads(agent.cli("network", "ls", "-o", "json").stdout or "[]")
    assert f"{project}_front" not in {network["Name"] for network in networks}
