"""``docker run --health-cmd …`` through our Docker API: the agent probes the
container as dockerd does, and ``inspect`` shows ``State.Health``."""

from __future__ import annotations

import docker
import pytest
from docker.errors import APIError

from tests.docker_fixtures import DockerAgent, wait_until
from tests.docker_fixtures import client as client  # a fixture, used by name
from tests.docker_fixtures import docker_agent as docker_agent  # a fixture, used by name

pytestmark = pytest.mark.requires_root

SECOND = 1_000_000_000


def _health(client: docker.DockerClient, name: str) -> dict[str, object]:
    return dict(client.api.inspect_container(name)["State"].get("Health") or {})


def test_a_passing_check_is_healthy_and_a_failing_one_unhealthy(
    client: docker.DockerClient, docker_agent: DockerAgent
) -> None:
    good, bad = docker_agent.name("healthy"), docker_agent.name("unhealthy")
    check = {"interval": SECOND, "timeout": 5 * SECOND, "retries": 2}
    client.containers.run(
        docker_agent.image,
        ["sleep", "600"],
        name=good,
        detach=True,
        healthcheck={"test": ["CMD-SHELL", "true"], **check},
    )
    client.containers.run(
        docker_agent.image,
        ["sleep", "600"],
        name=bad,
        detach=True,
        healthcheck={"test": ["CMD-SHELL", "echo sick; exit 1"], **check},
    )
    try:
        assert _health(client, good)["Status"] in ("starting", "healthy")
        wait_until(lambda: _health(client, good).get("Status") == "healthy", "healthy")
        wait_until(lambda: _health(client, bad).get("Status") == "unhealthy", "unhealthy")
        failing = _health(client, bad)
        assert failing["FailingStreak"] >= 2
        log = failing["Log"]
        assert isinstance(log, list) and log[-1]["ExitCode"] == 1 and "sick" in log[-1]["Output"]
    finally:
        for name in (good, bad):
            client.api.remove_container(name, force=True)


def test_a_container_without_a_check_has_no_health_and_a_bad_check_is_refused(
    client: docker.DockerClient, docker_agent: DockerAgent
) -> None:
    plain = docker_agent.name("plain")
    client.containers.run(docker_agent.image, ["sleep", "600"], name=plain, detach=True)
    try:
        assert "Health" not in client.api.inspect_container(plain)["State"]
    finally:
        client.api.remove_container(plain, force=True)
    with pytest.raises(APIError, match="invalid healthcheck"):
        client.api.create_container(
            docker_agent.image, ["true"], healthcheck={"test": ["CMD-SHELL", "true"], "retries": -3}
        )
