"""The engine's container listing kept between requests (``engine.container_listing``)
and the pidfd watch it asks (``runtime.pidwatch``): a kept answer is never stale,
whether a state file changed or a process ended with nobody writing it down."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.core import Engine
from reconciler.runtime.pidwatch import ProcessWatch
from reconciler.runtime.state import process_start
from tests.test_engine_containers import engine, request, wait_for  # noqa: F401  (fixture)


def test_the_watch_tells_which_processes_ended() -> None:
    watch = ProcessWatch()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        alive = (sleeper.pid, process_start(sleeper.pid))
        impostor = (sleeper.pid, alive[1] + 1)  # the same pid, another start time: a reused pid
        assert watch.ended([alive]) == set()
        assert watch.ended([alive, impostor]) == {impostor}
        assert watch.ended([alive]) == set()  # asked again: from its pidfd
        sleeper.kill()
        sleeper.wait()
        assert watch.ended([alive]) == {alive}
        assert watch.ended([(2**22 + 7, 1)]) == {(2**22 + 7, 1)}  # no such pid
        assert watch.ended([]) == set()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        watch.close()


def test_a_zombie_has_ended() -> None:
    watch = ProcessWatch()
    child = subprocess.Popen(["sleep", "60"])
    try:
        process = (child.pid, process_start(child.pid))
        assert watch.ended([process]) == set()
        os.kill(child.pid, signal.SIGKILL)  # not reaped yet: a zombie
        deadline = time.monotonic() + 10
        while not watch.ended([process]):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
        watch.close()


@pytest.mark.requires_root
def test_a_kept_listing_follows_writes_and_processes_that_end_unrecorded(engine: Engine, tmp_path: Path) -> None:  # noqa: F811
    containers = engine.containers
    assert containers.list(all=True) == []
    containers.run(request("sleep", "600", name="one"), detach=True)
    containers.run(request("sleep", "600", name="two"), detach=True)
    time.sleep(0.1)  # older than the clock's granularity: now the listing may be kept
    first = containers.list()
    assert [(r["name"], r["status"]) for r in first] == [("one", "running"), ("two", "running")]
    first[0]["status"] = "mangled by a caller"
    assert containers.list() == containers.list()  # kept, and each caller has its own rows
    assert containers.list()[0]["status"] == "running"
    kept = containers.list(all=True).cache_key  # type: ignore[attr-defined]
    assert kept is not None and containers.list(all=True).cache_key == kept  # type: ignore[attr-defined]

    containers.stop("one", grace=0)  # a write: seen at once
    after = containers.list(all=True)
    assert [(r["name"], r["status"]) for r in after] == [("one", "exited"), ("two", "running")]
    assert after.cache_key != kept  # type: ignore[attr-defined]  # what serialized the old listing is not reused

    # the process and its monitor killed: no one records the exit, the listing finds out
    state = engine.wiring.runtime().inspect("two")
    os.kill(state.monitor_pid, signal.SIGKILL)
    os.kill(state.pid, signal.SIGKILL)
    wait_for(lambda: containers.list() == [])
    two = containers.list(all=True)[1]
    assert (two["name"], two["status"]) == ("two", "exited")
    containers.remove("one")
    containers.remove("two")
    assert containers.list(all=True) == []


def test_a_container_made_and_removed_around_a_listing_is_never_kept() -> None:
    """The keys before a listing are [] (no container), one is made while the states
    are read, and removed later: the keys are [] again, but the rows read showed it.
    Such rows must not be kept (this once left removed containers in `ps`)."""
    from types import SimpleNamespace

    from reconciler.engine.container_listing import Listing
    from reconciler.runtime.state import ContainerState

    made = ContainerState(name="ghost")
    made.spec, made.status = {"config": {"argv": ["true"]}}, "exited"
    key = ("ghost", (1, 1, 1))
    world: dict[str, list[Any]] = {"keys": [], "states": []}

    def read() -> list[ContainerState]:
        world["keys"], world["states"] = [key], [made]  # made while the states are read
        return [made]

    store = SimpleNamespace(keys=lambda: list(world["keys"]))
    runtime = SimpleNamespace(store=store, containers=read)
    listing = Listing()
    assert [row["name"] for row in listing.rows(runtime)] == ["ghost"]  # type: ignore[arg-type]
    world["keys"] = []  # removed: the keys are what they were before the first listing
    runtime.containers = lambda: []
    assert listing.rows(runtime) == []  # type: ignore[arg-type]  # built again, not the kept ghost
