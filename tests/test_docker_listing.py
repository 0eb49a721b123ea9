"""``GET /containers/json`` kept between requests (``dockerapi/listing.py``): never
stale, whether a container is made, stopped, relabelled in its Docker record or
killed behind the engine's back, and its ``Status`` moves with the clock."""

from __future__ import annotations

import os
import signal
import time

import docker
import pytest

from reconciler.runtime.state import StateStore
from tests.docker_fixtures import DockerAgent, wait_until
from tests.docker_fixtures import client as client  # a fixture, used by name
from tests.docker_fixtures import docker_agent as docker_agent  # a fixture, used by name

pytestmark = pytest.mark.requires_root


def _rows(client: docker.DockerClient, all: bool = True) -> dict[str, dict[str, object]]:
    return {row["Names"][0].lstrip("/"): row for row in client.api.containers(all=all)}


def test_the_kept_listing_follows_every_change(client: docker.DockerClient, docker_agent: DockerAgent) -> None:
    one, two = docker_agent.name("kept-one"), docker_agent.name("kept-two")
    client.containers.run(docker_agent.image, ["sleep", "600"], name=one, detach=True, network_mode="none")
    try:
        wait_until(lambda: one in _rows(client, all=False), "the first container listed")
        time.sleep(0.1)  # older than the clock's granularity: the rows may be kept now
        assert _rows(client) == _rows(client)  # kept (Status alike within the second)
        client.containers.run(docker_agent.image, ["sleep", "600"], name=two, detach=True, network_mode="none")
        assert two in _rows(client, all=False)  # made: seen at once
        client.containers.get(one).stop(timeout=0)
        assert _rows(client)[one]["State"] == "exited" and one not in _rows(client, all=False)
        # killed behind the engine's back (its monitor first): the listing finds out
        store = StateStore(str(docker_agent.agent.root))
        state = store.read(two)
        assert state is not None
        os.kill(state.monitor_pid, signal.SIGKILL)
        os.kill(state.pid, signal.SIGKILL)
        wait_until(lambda: _rows(client)[two]["State"] == "exited", "the killed container listed as exited")
        status = str(_rows(client)[one]["Status"])
        assert status.startswith("Exited (")
    finally:
        for name in (one, two):
            client.api.remove_container(name, force=True)
    assert one not in _rows(client) and two not in _rows(client)
