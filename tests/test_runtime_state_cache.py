"""The state store's read cache: a rewritten state is seen at once (by this store or
any other process writing it), a removed one is gone, a caller's changes to what it
read never show in another read, and the kernel check of listing still corrects a
container whose process and monitor are gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.runtime import state as statemod
from reconciler.runtime.containers import Runtime
from reconciler.runtime.state import ContainerState, StateStore, process_start


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StateStore:
    # every state counts as old enough to cache: the tests write and read at once
    monkeypatch.setattr(statemod, "FRESH_NS", -(10**18))
    return StateStore(str(tmp_path))


def _spec() -> dict[str, object]:
    return {"config": {"argv": ["sleep", "1000"], "env": ["A=1"]}, "image": {"name": "busybox"}, "labels": {}}


def _write_elsewhere(root: str, name: str, **changes: object) -> None:
    """Rewrite ``name``'s state from another process, as the monitor does."""
    code = (
        "import sys; from reconciler.runtime.state import StateStore\n"
        "store = StateStore(sys.argv[1]); s = store.read(sys.argv[2]); assert s is not None\n"
        "for k, v in __import__('json').loads(sys.argv[3]).items(): setattr(s, k, v)\n"
        "store.write(s)\n"
    )
    repo = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code, root, name, json.dumps(changes)], check=True, cwd=repo)


def test_reads_are_served_from_the_cache_while_the_file_is_unchanged(store: StateStore) -> None:
    store.write(ContainerState("a", status="running", pid=5, spec=_spec()))
    first = store.read("a")
    assert first is not None and "a" in store._cache
    key, _ = store._cache["a"]
    second = store.read("a")
    assert second is not None and second is not first
    assert vars(second) == vars(first)
    assert store._cache["a"][0] == key


def test_a_rewritten_state_is_seen_at_once(store: StateStore) -> None:
    store.write(ContainerState("a", status="running", pid=5, spec=_spec()))
    assert [s.status for s in store.read_all()] == ["running"]
    state = store.read("a")
    assert state is not None
    state.status = "paused"  # same size as "exited" below: only the inode tells them apart
    store.write(state)
    assert store.read("a").status == "paused"  # type: ignore[union-attr]
    state.status = "exited"
    store.write(state)
    assert [s.status for s in store.read_all()] == ["exited"]


def test_a_state_rewritten_by_another_process_is_seen_at_once(store: StateStore, tmp_path: Path) -> None:
    store.write(ContainerState("a", status="running", pid=5, spec=_spec()))
    assert store.read("a").status == "running"  # type: ignore[union-attr]
    _write_elsewhere(str(tmp_path), "a", status="exited", exit_code=3)
    again = store.read("a")
    assert again is not None and (again.status, again.exit_code) == ("exited", 3)
    assert [(s.name, s.exit_code) for s in store.read_all()] == [("a", 3)]


def test_a_removed_state_is_gone(store: StateStore, tmp_path: Path) -> None:
    for name in ("a", "b"):
        store.write(ContainerState(name, spec=_spec()))
    assert [s.name for s in store.read_all()] == ["a", "b"]
    store.remove("a")
    assert store.read("a") is None
    assert [s.name for s in store.read_all()] == ["b"]
    # removed behind the store's back (another engine process): gone too, and forgotten
    os.unlink(store.path("b", "state.json"))
    assert store.read_all() == []
    assert store.read("b") is None
    assert store._cache == {}


def test_a_state_mutated_by_a_caller_does_not_leak_into_the_next_read(store: StateStore) -> None:
    store.write(ContainerState("a", status="running", pid=5, spec=_spec()))
    for read in (lambda: store.read("a"), lambda: store.read_all()[0]):
        state = read()
        assert state is not None
        state.status = "exited"
        state.spec["config"]["argv"].append("mutated")
        state.spec["labels"]["x"] = "y"
        state.spec["new"] = 1
        fresh = read()
        assert fresh is not None
        assert fresh.status == "running"
        assert fresh.spec == _spec()


def test_a_state_written_just_now_is_parsed_not_cached(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))  # the real freshness margin
    store.write(ContainerState("a", spec=_spec()))
    assert store.read("a") is not None
    assert "a" not in store._cache


def test_process_start_is_that_of_proc_stat(tmp_path: Path) -> None:
    with open(f"/proc/{os.getpid()}/stat") as handle:
        expected = int(handle.read().rsplit(")", 1)[1].split()[19])
    assert process_start(os.getpid()) == expected > 0
    assert process_start(0) == 0
    child = subprocess.Popen(["sleep", "0"])
    while True:  # a zombie counts as gone
        with open(f"/proc/{child.pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
    assert process_start(child.pid) == 0
    child.wait()
    assert process_start(child.pid) == 0


def test_listing_still_corrects_a_container_whose_process_and_monitor_are_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statemod, "FRESH_NS", -(10**18))
    runtime = Runtime(str(tmp_path), cgroup_parent="reconcile-test-state-cache-none")
    monkeypatch.setattr(runtime, "_reap", lambda name: False)  # no cgroup was ever made
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = os.getpid()
    runtime.store.write(ContainerState("dead", status="running", pid=gone.pid, pid_start=12345, monitor_pid=0))
    runtime.store.write(ContainerState("live", status="running", pid=me, pid_start=process_start(me), monitor_pid=0))
    runtime.store.write(ContainerState("done", status="exited", exit_code=0))
    assert runtime.store.read("dead").status == "running"  # type: ignore[union-attr]  # cached as running
    listed = {s.name: s for s in runtime.containers()}
    assert (listed["dead"].status, listed["live"].status, listed["done"].status) == ("exited", "running", "exited")
    assert "monitor are gone" in (listed["dead"].error or "")
    assert runtime.store.read("dead").status == "exited"  # type: ignore[union-attr]  # recorded, cache or not
    assert runtime.inspect("dead").status == "exited"


def test_an_update_never_brings_back_a_removed_container(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    state = ContainerState("a", status="running", pid=5, spec=_spec())
    store.write(state)
    store.remove("a")
    state.status = "exited"  # a listing's correction or a monitor's exit, arriving late
    assert store.write(state, create=False) is False
    assert store.names() == [] and store.read("a") is None
