"""``docker run --health-cmd …`` through our Docker API: the agent probes the
container as dockerd does, and ``inspect`` shows ``State.Health``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import docker
import pytest
from docker.errors import APIError

from tests.docker_fixtures import DockerAgent
from tests.docker_fixtures import docker_agent as docker_agent  # a fixture, used by name

pytestmark = pytest.mark.requires_root

SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def client(docker_agent: DockerAgent) -> Iterator[docker.DockerClient]:
    made = docker.DockerClient(base_url=docker_agent.base_url, timeout=30)
    try:
        yield made
    finally:
        made.close()


def _until(predicate: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)


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
        _until(lambda: _health(client, good).get("Status") == "healthy", "healthy")
        _until(lambda: _health(client, bad).get("Status") == "unhealthy", "unhealthy")
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
