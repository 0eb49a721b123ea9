"""The engine's services group (read-only): a stack with a 2-replica Service applied,
then ``services.list``/``inspect`` in-process (replicas by number, running, on the
recorded template, the image an Image of the stack resolves to) and NotFound for a
service never applied; the same through an agent (``service ls``/``inspect``, which
read as locally, and a 404 for a missing one). Every stack is taken down."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.engine import errors
from reconciler.engine.core import Engine
from reconciler.engine.wiring import EngineConfig
from reconciler.runtime import linux
from tests.agent_fixtures import Agent, make_agent
from tests.agent_fixtures import agents as agents  # a fixture, used by name
from tests.test_cli_containers import busybox_tarball, clean_engine

pytestmark = pytest.mark.requires_root

OBJECTS = """\
apiVersion: reconcile/v1
kind: Image
metadata: {name: base}
spec: {import: {path: base.tar}, tag: "svcq-base:1"}
---
apiVersion: reconcile/v1
kind: Service
metadata: {name: svcq}
spec:
  replicas: 2
  update: {order: start-first, max_surge: 1}
  template:
    image: base
    init: true
    network_mode: none
    stop_grace_period: 1s
    command: [sleep, "600"]
"""


def write_stack(directory: Path) -> Path:
    directory.mkdir(parents=True)
    busybox_tarball(directory / "base.tar")
    (directory / "stack.yaml").write_text("name: svcqstack\n")
    (directory / "objects.yaml").write_text(OBJECTS)
    return directory


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # detached monitors are reaped here
    config = EngineConfig(root=str(tmp_path / "root"), cgroup_parent=f"svcqtest-{uuid.uuid4().hex[:8]}")
    made = Engine(config)
    try:
        yield made
    finally:
        made.close()
        clean_engine(config.root, config.cgroup_parent)


def test_list_and_inspect_a_service_in_process(engine: Engine, tmp_path: Path) -> None:
    stack = write_stack(tmp_path / "stack")
    assert engine.services.list() == []
    try:
        report = engine.stacks.apply(str(stack), timeout=60)
        assert report["exit_code"] == 2, report

        (summary,) = engine.services.list()
        applied_at = summary.pop("applied_at")  # type: ignore[misc]
        assert isinstance(applied_at, float) and applied_at > 0
        assert summary == {
            "name": "svcq",
            "stack": "svcqstack",
            "replicas_desired": 2,
            "replicas_running": 2,
            "image": "svcq-base:1",
            "ports": [],
            "update_order": "start-first",
        }

        document = engine.services.inspect("svcq")
        assert {key: document[key] for key in summary} == summary  # type: ignore[literal-required]
        assert [r["name"] for r in document["replicas"]] == ["svcq-1", "svcq-2"]
        assert document["replicas_updated"] == 2 and len(document["template"]) == 16
        for replica in document["replicas"]:
            assert replica["status"] == "running" and replica["pid"] > 0
            assert replica["health"] is None  # no healthcheck
            assert replica["template"] == document["template"] and replica["updated"] is True
        assert document["spec"]["replicas"] == 2 and document["spec"]["template"]["image"] == "base"
        json.dumps(document)  # JSON as it is

        with pytest.raises(errors.NotFound, match="no such service: nope"):
            engine.services.inspect("nope")
        with pytest.raises(errors.NotFound):
            engine.services.inspect("svcq-1")  # a replica is no service
    finally:
        down = engine.stacks.down("svcqstack", timeout=60)
    assert down["exit_code"] == 2, down
    assert engine.services.list() == []
    assert engine.containers.list(all=True) == []


def test_service_commands_through_an_agent(agents: list[Agent], tmp_path: Path) -> None:
    agent = make_agent(agents, tmp_path / "a")
    stack = write_stack(tmp_path / "stack")
    try:
        applied = agent.cli("apply", str(stack))
        assert applied.returncode == 2, applied.stderr

        listed = agent.cli("service", "ls", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        (row,) = json.loads(listed.stdout)
        assert (row["name"], row["replicas_running"], row["replicas_desired"]) == ("svcq", 2, 2)
        assert listed.stdout == agent.cli("service", "ls", "-o", "json", remote=False).stdout

        table = agent.cli("service", "ls")
        assert table.returncode == 0, table.stderr
        header, line = table.stdout.splitlines()
        assert header.split() == ["NAME", "STACK", "REPLICAS", "IMAGE"]
        assert line.split() == ["svcq", "svcqstack", "2/2", "svcq-base:1"]

        inspected = agent.cli("service", "inspect", "svcq")
        assert inspected.returncode == 0, inspected.stderr
        (document,) = json.loads(inspected.stdout)
        assert [r["name"] for r in document["replicas"]] == ["svcq-1", "svcq-2"]
        assert inspected.stdout == agent.cli("service", "inspect", "svcq", remote=False).stdout

        missing = agent.cli("service", "inspect", "svcq", "nope")
        assert missing.returncode == 1 and "no such service: nope" in missing.stderr
        assert [d["name"] for d in json.loads(missing.stdout)] == ["svcq"]
        status, body = agent.request("GET", "/v1/services/nope")
        assert status == 404 and "no such service" in json.dumps(body)
    finally:
        (stack / "objects.yaml").unlink()
        down = agent.cli("apply", str(stack))
    assert down.returncode == 2, down.stderr
    assert json.loads(agent.cli("service", "ls", "-o", "json").stdout) == []
    assert json.loads(agent.cli("ps", "-a", "-o", "json").stdout) == []
