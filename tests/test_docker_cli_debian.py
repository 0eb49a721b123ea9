"""Debian's ``docker.io`` client (20.10, API 1.41) against our Docker API: the older
client negotiates down to 1.41 and its everyday commands work end to end. The 28.x
client (API 1.50) is covered by ``test_docker_cli.py`` and the other Docker tests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests import agent_fixtures
from tests.agent_fixtures import Agent, make_agent

pytestmark = pytest.mark.requires_root

agents = agent_fixtures.agents  # the fixture

DOCKER = "/usr/bin/docker"  # Debian's docker.io


def docker(agent: Agent, *args: str, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(agent.base),
        "DOCKER_HOST": f"unix://{agent.docker_socket}",
        "DOCKER_CONFIG": str(agent.base / "docker-config"),
        "DOCKER_BUILDKIT": "0",
    }
    return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, input=stdin, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result.stdout


@pytest.fixture
def agent(agents: list[Agent], tmp_path: Path) -> Agent:
    if not os.path.exists(DOCKER):
        pytest.fail(f"Debian's docker.io client is missing at {DOCKER} (.ci/run installs it)")
    made = make_agent(agents, tmp_path / "agent")
    made.image()  # busybox:local
    return made


def test_the_debian_client_negotiates_1_41_and_runs_containers(agent: Agent) -> None:
    version = json.loads(ok(docker(agent, "version", "--format", "{{json .}}")))
    assert version["Client"]["ApiVersion"] == "1.41" and version["Server"]["ApiVersion"] == "1.50"
    assert ok(docker(agent, "run", "--rm", "busybox:local", "echo", "hello from 20.10")) == "hello from 20.10\n"
    assert docker(agent, "run", "--rm", "busybox:local", "sh", "-c", "exit 7").returncode == 7
    assert ok(docker(agent, "run", "--rm", "-i", "busybox:local", "cat", stdin="piped\n")) == "piped\n"

    ok(
        docker(
            agent, "run", "-d", "--name", "old-client", "-e", "K=V", "busybox:local", "sh", "-c", "echo up; sleep 600"
        )
    )
    assert ok(docker(agent, "ps", "--format", "{{.Names}} {{.Image}}")).split("\n")[0] == "old-client busybox:local"
    assert "up" in ok(docker(agent, "logs", "old-client"))
    assert ok(docker(agent, "exec", "old-client", "sh", "-c", "echo $K")) == "V\n"
    state = json.loads(ok(docker(agent, "inspect", "old-client")))[0]
    assert state["State"]["Running"] and state["Name"] == "/old-client" and "K=V" in state["Config"]["Env"]
    ok(docker(agent, "stop", "-t", "1", "old-client"))
    ok(docker(agent, "rm", "old-client"))
    assert ok(docker(agent, "ps", "-a", "-q")) == ""

    assert "busybox" in ok(docker(agent, "images"))
    ok(docker(agent, "volume", "create", "old-vol"))
    assert "old-vol" in ok(docker(agent, "volume", "ls", "-q")).split()
    ok(docker(agent, "volume", "rm", "old-vol"))
    assert {"bridge", "host", "none"} <= set(ok(docker(agent, "network", "ls", "--format", "{{.Name}}")).split())
    missing = docker(agent, "inspect", "nosuch")
    assert missing.returncode != 0 and "No such object" in missing.stderr, missing.stderr
