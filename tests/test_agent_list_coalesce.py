"""Read-your-writes through the agent while identical lists are coalesced (root): a
container created (or removed) just before a list is always in (or out of) that
list, even while other clients keep lists of the same arguments in flight, through
the real client (``RemoteEngine`` over the UNIX socket)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from reconciler.client.remote import RemoteEngine
from reconciler.runtime.containers import Runtime
from tests import agent_fixtures
from tests.agent_fixtures import Agent, make_agent

agents = agent_fixtures.agents  # the fixture

pytestmark = pytest.mark.requires_root

#: Containers there before the clients start (reserved ones, as an engine killed
#: while preparing leaves: cheap to make): a listing then takes long enough for lists
#: to overlap, and a list that joined one already under way would miss news.
BACKGROUND = 300
WRITERS = 6
ROUNDS = 10
LISTERS = 6


def test_a_container_created_just_before_a_list_is_in_it_under_concurrent_lists(
    agents: list[Agent], tmp_path: Path
) -> None:
    agent = make_agent(agents, tmp_path / "a")
    image = agent.image()
    prefix = f"lc{uuid.uuid4().hex[:6]}"
    client = RemoteEngine(agent.host)
    runtime = Runtime(str(agent.root))
    for i in range(BACKGROUND):
        runtime.reserve(f"{prefix}-bg-{i}")

    stop = threading.Event()
    failures: list[str] = []
    listed = [0]

    def lister() -> None:  # keeps identical lists in flight the whole time
        remote = RemoteEngine(agent.host)
        try:
            while not stop.is_set():
                remote.containers.list(all=True)
                listed[0] += 1
        except BaseException as exc:
            failures.append(f"lister: {type(exc).__name__}: {exc}")

    def writer(index: int) -> None:
        remote = RemoteEngine(agent.host)  # one per thread, as separate CLI processes would be
        try:
            for round_ in range(ROUNDS):
                name = f"{prefix}-{index}-{round_}"
                remote.containers.create({"image": image, "name": name, "command": ["true"]})
                names = [row["name"] for row in remote.containers.list(all=True)]
                if name not in names:
                    failures.append(f"{name} not in the list right after its create")
                remote.containers.remove(name, force=True)
                names = [row["name"] for row in remote.containers.list(all=True)]
                if name in names:
                    failures.append(f"{name} still in the list right after its removal")
        except BaseException as exc:
            failures.append(f"writer {index}: {type(exc).__name__}: {exc}")

    listers = [threading.Thread(target=lister, daemon=True) for _ in range(LISTERS)]
    writers = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(WRITERS)]
    for thread in listers + writers:
        thread.start()
    hung = time.monotonic() + 300  # a hung client fails the test, it does not hang it
    for thread in writers:
        thread.join(timeout=max(0.0, hung - time.monotonic()))
    stop.set()
    for thread in listers:
        thread.join(timeout=max(0.0, hung - time.monotonic()))
    assert not [t.name for t in listers + writers if t.is_alive()], "clients still running (a request hangs)"

    assert failures == []
    assert listed[0] > 0
    rows = client.containers.list(all=True)
    assert sorted(row["name"] for row in rows) == sorted(f"{prefix}-bg-{i}" for i in range(BACKGROUND))
    assert "Traceback" not in agent.log.read_text()
