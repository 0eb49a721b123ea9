"""``docker run --restart`` through our Docker API: the agent starts a container
again when it exits, as its policy says (``dockerapi/restarts.py``)."""

from __future__ import annotations

import time

import docker
import pytest

from tests.docker_fixtures import DockerAgent, wait_until
from tests.docker_fixtures import client as client  # a fixture, used by name
from tests.docker_fixtures import docker_agent as docker_agent  # a fixture, used by name

pytestmark = pytest.mark.requires_root


def _state(client: docker.DockerClient, name: str) -> tuple[str, int]:
    document = client.api.inspect_container(name)
    return document["State"]["Status"], int(document["RestartCount"])


def test_on_failure_restarts_up_to_its_maximum(client: docker.DockerClient, docker_agent: DockerAgent) -> None:
    name = docker_agent.name("onfail")
    policy = {"Name": "on-failure", "MaximumRetryCount": 2}
    client.containers.run(docker_agent.image, ["sh", "-c", "exit 3"], name=name, detach=True, restart_policy=policy)
    try:
        wait_until(lambda: _state(client, name) == ("exited", 2), "two restarts, then exited")
        time.sleep(2.5)  # past the next backoff: no third
        assert _state(client, name) == ("exited", 2)
        assert client.api.inspect_container(name)["HostConfig"]["RestartPolicy"] == policy
    finally:
        client.api.remove_container(name, force=True)


def test_always_restarts_until_stopped_and_no_never(client: docker.DockerClient, docker_agent: DockerAgent) -> None:
    always, never = docker_agent.name("always"), docker_agent.name("never")
    client.containers.run(
        docker_agent.image, ["sh", "-c", "sleep 0.2"], name=always, detach=True, restart_policy={"Name": "always"}
    )
    client.containers.run(docker_agent.image, ["sh", "-c", "exit 1"], name=never, detach=True)
    try:
        wait_until(lambda: _state(client, always)[1] >= 2, "restarted after clean exits")
        client.containers.get(always).stop(timeout=1)  # the user's stop is final
        status, count = _state(client, always)
        time.sleep(2.5)
        assert _state(client, always) == ("exited", count) and status == "exited"
        assert _state(client, never) == ("exited", 0)  # no policy: never again
    finally:
        for name in (always, never):
            client.api.remove_container(name, force=True)
