"""The agent against its own OpenAPI document, fuzzed with Schemathesis (root): a
real agent on plain TCP on loopback (Schemathesis speaks HTTP over TCP), requests
generated from the document, valid ones and invalid ones. No answer may be a
server error, and every answer must be one the document lists, of its media type
and, for JSON, of its schema.

Only operations that stay on this host and leave its networking alone are sent:
every GET answering JSON, the GET streams that can be told not to follow (``follow``
fixed to false, so none waits for a container; ``events.follow`` never ends),
container create and remove, volume create and remove. Never pulls, pushes,
builds, stacks (an apply may pull), network create/remove/prune, attach, uploads or
downloads. ``create`` does not pull, so generated image names fail NotFound; what
generated requests do create (containers, volumes) is removed afterwards.

Derandomized, so every run sends the same requests; for a deeper search with new
requests each time: ``RECONCILE_API_EXAMPLES=200 .venv/bin/pytest tests/test_api_schemathesis.py``.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from reconciler.api import openapi
from reconciler.client.remote import RemoteEngine
from reconciler.wire.route import Route
from reconciler.wire.routes import BY_OP
from tests import agent_fixtures
from tests.agent_fixtures import Agent, make_agent

agents = agent_fixtures.agents  # the fixture

pytestmark = pytest.mark.requires_root

EXAMPLES = int(os.environ.get("RECONCILE_API_EXAMPLES", "25"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="RECONCILE_API_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

#: Operations other than GETs that may be sent: they touch only the agent's root.
MUTATIONS = {"containers.create", "containers.remove", "volumes.create", "volumes.remove"}
#: Never, even a GET: a stack's operations may pull images.
EXCLUDED_GROUPS = {"stacks"}
#: Answered by the server itself, not by a route of the table.
SERVER_ROUTES = {"system.ping", "system.health", "system.metrics"}
#: Objects that exist while the fuzzing runs, so reads reach the engine past "no such".
PROBE = "probe"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _follows(route: Route) -> bool:
    return any(name == "follow" for name, _ in route.query)


def _sent(route: Route) -> bool:
    if route.op.split(".")[0] in EXCLUDED_GROUPS:
        return False
    if route.op in MUTATIONS:
        return True
    if route.method != "GET":
        return False
    # A stream is sent only when it can be told not to follow (events.follow never ends).
    return route.kind == "json" or (route.kind == "lines" and _follows(route))


def test_sent_operations_stay_on_the_host() -> None:
    """The selection, spelled out: a new route is fuzzed only if it is a plain read
    or one of the mutations named here."""
    sent = {op for op, route in BY_OP.items() if _sent(route)}
    assert sent >= MUTATIONS
    for op in sent:
        route = BY_OP[op]
        assert route.kind in ("json", "lines"), op
        assert not op.startswith(("images.pull", "images.push", "images.build", "networks.create")), op
        assert route.kind == "json" or _follows(route), op
    assert "events.follow" not in sent


def _fixed_query(route: Route | None) -> dict[str, Any]:
    if route is not None and _follows(route):
        return {"follow": False}  # a followed stream would wait for its container's exit
    return {}


def _probes(agent: Agent) -> None:
    """An exited container with a log line, and a volume, both named ``PROBE``."""
    image = agent.image()
    engine = RemoteEngine(agent.host)
    engine.containers.run({"image": image, "name": PROBE, "command": ["echo", "probe"]}, detach=True)
    engine.containers.wait(PROBE)
    engine.volumes.create({"name": PROBE})


def _remove_what_was_made(agent: Agent) -> None:
    engine = RemoteEngine(agent.host)
    for row in engine.containers.list(all=True):  # a volume in use cannot go
        engine.containers.remove(row["name"], force=True)
    for row in engine.volumes.list():
        engine.volumes.remove(row["name"], force=True)
    assert engine.volumes.list() == []


def test_the_api_answers_as_its_openapi_document_says(agents: list[Agent], tmp_path: Path) -> None:
    port = _free_port()
    agent = make_agent(agents, tmp_path / "a", "--tcp", f"127.0.0.1:{port}", "--insecure-tcp")
    base_url = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: loopback only
    try:
        served = session.get(f"{base_url}/openapi.json", timeout=30).json()
        assert served == openapi.document()
        _probes(agent)
        schema = schemathesis.openapi.from_dict(served)
        failures: list[str] = []
        tried: list[str] = []
        for result in schema.get_all_operations():
            operation = result.ok()
            op = schema.get_operation_id(operation)
            route = BY_OP.get(op or "")
            if not (op in SERVER_ROUTES or (route is not None and _sent(route))):
                continue
            tried.append(op or operation.label)
            variants: list[dict[str, Any]] = [{}]
            if route is not None and route.placeholders() == ["name"] and route.method == "GET":
                variants.append({"path_parameters": {"name": PROBE}})  # reads of an object that exists
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                for variant in variants:
                    strategy = operation.as_strategy(generation_mode=mode, query=_fixed_query(route), **variant)

                    @PROFILE
                    @hypothesis.given(case=strategy)
                    def fuzz(case: schemathesis.Case) -> None:
                        case.call_and_validate(base_url=base_url, session=session, checks=CHECKS, timeout=60)

                    try:
                        fuzz()
                    except hypothesis.errors.Unsatisfiable:
                        assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label  # nothing to negate
                    except (Exception, BaseExceptionGroup) as exc:  # every operation is tried, all failures reported
                        failures.append(f"{operation.label} ({mode.value}, {variant or 'generated'}):\n{exc}")
        assert set(tried) >= MUTATIONS
        assert failures == [], "\n\n".join(failures)
        assert session.get(f"{base_url}/_ping", timeout=30).text == "OK"
        assert "Traceback" not in agent.log.read_text()
    finally:
        session.close()
        if agent.answers():
            _remove_what_was_made(agent)


def test_what_the_fuzzing_found_stays_fixed(agents: list[Agent], tmp_path: Path) -> None:
    """Each request here was a 500, a text/plain answer or a traceback in the log."""
    agent = make_agent(agents, tmp_path / "a")
    _probes(agent)
    json_header = {"Content-Type": "application/json"}
    # a reference whose digest is not one named no image (was BlobError, a 500)
    status, body = agent.request("GET", "/v1/images/inspect?reference=busybox%40nonsense")
    assert status == 404 and body["code"] == "not_found", (status, body)
    status, body = agent.request("POST", "/v1/containers", json.dumps({"image": "x@nonsense"}).encode(), json_header)
    assert status == 404 and body["code"] == "not_found", (status, body)
    # a required query parameter left out (was a TypeError, a 500)
    status, body = agent.request("GET", "/v1/images/history")
    assert status == 400 and "reference" in body["message"], (status, body)
    # integers beyond 64 bits (an OverflowError), a negative tail (a ValueError): Docker's "all"
    status, body = agent.request("GET", f"/v1/containers/{PROBE}/logs?tail={2**70}")
    assert status == 400 and body["code"] == "invalid", (status, body)
    status, body = agent.request("GET", f"/v1/containers/{PROBE}/logs?tail=-3")
    assert status == 200 and body["text"] == "probe\n", body  # one JSON line: the one entry
    # a request line or header longer than aiohttp reads (text/plain, and a traceback logged)
    status, body = agent.request("GET", "/v1/containers?all=" + "1" * 9000)
    assert status == 400 and body["code"] == "invalid", (status, body)
    status, body = agent.request("GET", "/v1/containers", headers={"X-Long": "x" * 9000})
    assert status == 400 and body["code"] == "invalid", (status, body)
    assert agent.request("GET", "/_ping") == (200, "OK")
    assert "Traceback" not in agent.log.read_text()
    _remove_what_was_made(agent)
