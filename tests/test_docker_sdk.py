"""The docker SDK for Python (docker-py 7.x, from PyPI) against our agent's Docker
API: the high-level containers API and the low-level ``APIClient.attach``."""

from __future__ import annotations

import docker
import pytest
from docker.errors import APIError, ImageNotFound, NotFound

from tests.docker_fixtures import DockerAgent
from tests.docker_fixtures import client as client  # a fixture, used by name
from tests.docker_fixtures import docker_agent as docker_agent  # a fixture, used by name

pytestmark = pytest.mark.requires_root


def test_negotiation_and_ping(client: docker.DockerClient) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.50"
    assert client.api.api_version == "1.50"


def test_containers_run_list_get_logs_exec_stop_remove(client: docker.DockerClient, docker_agent: DockerAgent) -> None:
    name = docker_agent.name("py")
    container = client.containers.run(
        docker_agent.image,
        ["sh", "-c", "echo py-out; exec sleep 1000"],
        detach=True,
        name=name,
        labels={"suite": "sdk"},
        environment={"K": "V"},
    )
    try:
        assert container.name == name and len(container.id) == 64
        assert name in [c.name for c in client.containers.list()]
        assert [c.name for c in client.containers.list(filters={"label": "suite=sdk"})] == [name]
        fetched = client.containers.get(name)
        assert fetched.id == container.id and fetched.status == "running" and fetched.labels == {"suite": "sdk"}
        assert "K=V" in fetched.attrs["Config"]["Env"]
        assert client.containers.get(container.id[:10]).name == name
        fetched.exec_run("true")  # the first line has been written once a later exec returns
        assert fetched.logs() == b"py-out\n"
        result = fetched.exec_run("echo exec-out")
        assert (result.exit_code, result.output) == (0, b"exec-out\n")
        result = fetched.exec_run(["sh", "-c", "echo to-stderr >&2; exit 3"])
        assert (result.exit_code, result.output) == (3, b"to-stderr\n")
        fetched.stop(timeout=0)
        assert fetched.wait(timeout=30) == {"StatusCode": 137, "Error": None}
        fetched.reload()
        assert fetched.status == "exited"
        assert name in [c.name for c in client.containers.list(all=True)]
        assert name not in [c.name for c in client.containers.list()]
    finally:
        container.remove(force=True)
    with pytest.raises(NotFound):
        client.containers.get(name)


def test_run_attached_returns_output(client: docker.DockerClient, docker_agent: DockerAgent) -> None:
    name = docker_agent.name("once")
    assert client.containers.run(docker_agent.image, ["echo", "hi-run"], name=name, remove=True) == b"hi-run\n"
    with pytest.raises(NotFound):
        client.containers.get(name)
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run(docker_agent.image, ["sh", "-c", "exit 4"], remove=True)
    assert failed.value.exit_status == 4


def test_low_level_attach(client: docker.DockerClient, docker_agent: DockerAgent) -> None:
    api = client.api
    ident = api.create_container(
        docker_agent.image, ["sh", "-c", "echo attached-out; echo attached-err >&2"], name=docker_agent.name("att")
    )["Id"]
    try:
        stream = api.attach(ident, stream=True, logs=True, demux=True)
        api.start(ident)
        received = {"stdout": b"", "stderr": b""}
        for out, err in stream:
            received["stdout"] += out or b""
            received["stderr"] += err or b""
        assert received == {"stdout": b"attached-out\n", "stderr": b"attached-err\n"}
        assert api.wait(ident, timeout=30)["StatusCode"] == 0
    finally:
        api.remove_container(ident, force=True)


def test_errors(client: docker.DockerClient) -> None:
    with pytest.raises(ImageNotFound):
        client.containers.create("no-such-image:1", ["true"])
    with pytest.raises(NotFound):
        client.containers.get("no-such-container")
    with pytest.raises(APIError) as refused:
        client.api.rename("no-such-container", "x")
    assert refused.value.status_code == 404
