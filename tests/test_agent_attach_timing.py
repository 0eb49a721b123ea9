"""Attached runs through the agent whatever the timing of the client's input, and
the exit reported before ``--rm``'s cleanup is done.

The container's outer process is a fork of the agent. Forked while the agent held
the write end of the container's stdin (the client's input not ended yet), it once
kept that end open for the container's whole life: ``cat`` never saw its end of file
and the run hung. Input that ends only after the container started is the case.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests import agent_fixtures
from tests.agent_fixtures import make_agent

agents = agent_fixtures.agents  # the fixture

pytestmark = pytest.mark.requires_root


def test_input_that_ends_after_the_start_reaches_the_container_and_ends_it(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a")
    image = agent.image()
    for _ in range(3):
        stdin_r, stdin_w = os.pipe()
        client = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "--host", agent.host, "run", "-i", "--rm", image, "cat"],
            stdin=stdin_r,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=agent.env,
        )
        os.close(stdin_r)
        try:
            deadline = time.monotonic() + 30
            while not any(r["status"] == "running" for r in _containers(agent)):  # the container runs first
                assert time.monotonic() < deadline, "the container never started"
                time.sleep(0.05)
            os.write(stdin_w, b"late input\n")
            os.close(stdin_w)
            stdin_w = -1
            out, err = client.communicate(timeout=30)
        finally:
            if stdin_w >= 0:
                os.close(stdin_w)
            if client.poll() is None:
                client.kill()
                client.communicate()
        assert (client.returncode, out) == (0, b"late input\n"), err
    assert _containers(agent) == []  # --rm: gone, and its name free again


def test_a_name_is_free_again_as_soon_as_run_rm_returns(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a")
    image = agent.image()
    for code in (3, 4, 5):
        result = agent.cli("run", "--rm", "--name", "again", image, "sh", "-c", f"exit {code}")
        assert result.returncode == code, result.stderr
    assert _containers(agent) == []
    assert not list((agent.root / "containers").glob(".removed-*"))  # deleted after the exit was reported


def _containers(agent) -> list[dict[str, object]]:
    status, body = agent.request("GET", "/v1/containers?all=1")
    assert status == 200, body
    return list(body)
