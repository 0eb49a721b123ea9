"""The no-op shortcut's record (``control.converged``), on plain directories: every
input a pass depends on changes the fingerprint, a record is only kept when nothing
moved during the pass, and anything odd about it means "do a full pass"."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.control import converged
from reconciler.control.observe import observe
from reconciler.runtime.state import ContainerState, process_start
from reconciler.state.db import ObjectRecord

KEY = {"version": "test", "prune": True}
REPORT = {"stack": "s", "dry_run": False, "plan": {}, "results": [{"key": "container/a", "outcome": "unchanged"}]}


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, Path]:
    root, directory = tmp_path / "root", tmp_path / "stack"
    (root / "containers" / "a").mkdir(parents=True)
    (root / "containers" / "a" / "state.json").write_text(json.dumps({"name": "a", "status": "exited"}))
    (root / "volumes" / "v").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "images" / "refs.json").write_text("{}")
    directory.mkdir()
    (directory / "stack.yaml").write_text("name: s\n")
    (directory / "objects.yaml").write_text("kind: Container\n")
    (directory / "app.env").write_text("A=1\n")
    return root, directory


def take(root: Path, directory: Path) -> dict[str, Any]:
    return converged.fingerprint(str(root), str(directory), [str(directory / "app.env")], KEY)


def recorded(root: Path, directory: Path) -> dict[str, Any] | None:
    now = take(root, directory)
    assert converged.record(str(root), now, now, REPORT)
    return converged.still_converged(str(root), str(directory), KEY)


def replace(path: Path, text: str) -> None:
    """As the engine writes its files: a new file renamed over the old one."""
    path.with_suffix(".tmp").write_text(text)
    os.replace(path.with_suffix(".tmp"), path)


def test_an_unchanged_host_gets_the_recorded_report_back(host: tuple[Path, Path]) -> None:
    root, directory = host
    assert recorded(root, directory) == REPORT
    assert converged.still_converged(str(root), str(directory), KEY) == REPORT


@pytest.mark.parametrize(
    "change",
    [
        "edit a manifest",
        "edit it back to the same size and time",
        "add a manifest",
        "add a manifest in a subdirectory",
        "edit the env file",
        "edit stack.yaml",
        "rewrite a state file",
        "remove a container",
        "add a container",
        "a health status changes",
        "add a volume",
        "remove a volume's data",
        "retag an image",
        "write to the state database",
        "the DNS daemon restarts",
    ],
)
def test_every_input_of_a_pass_invalidates_the_record(host: tuple[Path, Path], change: str) -> None:
    root, directory = host
    assert recorded(root, directory) == REPORT
    manifest = directory / "objects.yaml"
    if change == "edit a manifest":
        manifest.write_text("kind: Container\n# more\n")
    elif change == "edit it back to the same size and time":
        before = manifest.stat()
        manifest.write_text("kind: Volume!!\n")
        os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))  # only ctime tells
    elif change == "add a manifest":
        (directory / "more.yml").write_text("kind: Volume\n")
    elif change == "add a manifest in a subdirectory":
        (directory / "sub").mkdir()
        (directory / "sub" / "more.yaml").write_text("kind: Volume\n")
    elif change == "edit the env file":
        (directory / "app.env").write_text("A=2\n")
    elif change == "edit stack.yaml":
        (directory / "stack.yaml").write_text("name: t\n")
    elif change == "rewrite a state file":
        replace(root / "containers" / "a" / "state.json", json.dumps({"name": "a", "status": "exited"}))
    elif change == "remove a container":
        (root / "containers" / "a" / "state.json").unlink()
    elif change == "add a container":
        (root / "containers" / "b").mkdir()
        (root / "containers" / "b" / "state.json").write_text("{}")
    elif change == "a health status changes":
        replace(root / "containers" / "a" / "health.json", json.dumps({"status": "unhealthy"}))
    elif change == "add a volume":
        (root / "volumes" / "w").mkdir()
    elif change == "remove a volume's data":
        (root / "volumes" / "v" / "_data").mkdir()  # the volume's directory changes either way
    elif change == "retag an image":
        replace(root / "images" / "refs.json", '{"a": {}}')
    elif change == "write to the state database":
        (root / "state.db-wal").write_bytes(b"frames")
    elif change == "the DNS daemon restarts":
        replace(root / "dns.pid", "4242")
    assert converged.still_converged(str(root), str(directory), KEY) is None


def test_the_same_directory_named_relatively_gets_the_record(
    host: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, directory = host
    assert recorded(root, directory) == REPORT
    monkeypatch.chdir(directory.parent)
    assert converged.still_converged(str(root), directory.name, KEY) == REPORT


def test_a_probe_that_keeps_the_health_status_keeps_the_record(host: tuple[Path, Path]) -> None:
    """health.json is rewritten after every probe: only its status counts."""
    root, directory = host
    replace(root / "containers" / "a" / "health.json", json.dumps({"status": "healthy", "log": [1]}))
    assert recorded(root, directory) == REPORT
    replace(root / "containers" / "a" / "health.json", json.dumps({"status": "healthy", "log": [1, 2]}))
    assert converged.still_converged(str(root), str(directory), KEY) == REPORT


def test_an_empty_write_ahead_log_is_the_same_as_none(host: tuple[Path, Path]) -> None:
    """SQLite creates it empty on open: an engine process holding the database open
    (the agent) must not make every host look changed."""
    root, directory = host
    assert recorded(root, directory) == REPORT
    (root / "state.db-wal").write_bytes(b"")
    assert converged.still_converged(str(root), str(directory), KEY) == REPORT


def test_a_write_ahead_log_chowned_but_not_written_keeps_the_record(host: tuple[Path, Path]) -> None:
    """SQLite run as root chowns the log on every open (the DNS daemon and the agent
    hold it open): its ctime moves, its content does not."""
    root, directory = host
    (root / "state.db-wal").write_bytes(b"frames")
    assert recorded(root, directory) == REPORT
    stat = (root / "state.db-wal").stat()
    os.chown(root / "state.db-wal", stat.st_uid, stat.st_gid)
    assert (root / "state.db-wal").stat().st_ctime_ns != stat.st_ctime_ns or os.geteuid() != 0
    assert converged.still_converged(str(root), str(directory), KEY) == REPORT


@pytest.mark.parametrize("whose", ["a running container's pid 1", "the DNS daemon"])
def test_a_process_that_is_gone_invalidates_the_record(host: tuple[Path, Path], whose: str) -> None:
    """Killed with its monitor, nobody rewrote the container's state file (nor the
    daemon's pid file): /proc tells."""
    root, directory = host
    process = subprocess.Popen(["sleep", "60"])
    try:
        if whose == "the DNS daemon":
            (root / "dns.pid").write_text(f"{process.pid}\n")
        else:
            state = {"name": "a", "status": "running", "pid": process.pid, "pid_start": process_start(process.pid)}
            replace(root / "containers" / "a" / "state.json", json.dumps(state))
        assert recorded(root, directory) == REPORT
        assert converged.still_converged(str(root), str(directory), KEY) == REPORT
    finally:
        process.kill()
        process.wait()
    assert converged.still_converged(str(root), str(directory), KEY) is None


def test_no_record_when_the_host_moved_during_the_pass(host: tuple[Path, Path]) -> None:
    root, directory = host
    before = take(root, directory)
    replace(root / "containers" / "a" / "state.json", json.dumps({"name": "a", "status": "running"}))
    after = take(root, directory)
    assert not converged.record(str(root), before, after, REPORT)
    assert not (root / converged.RECORD).exists()


@pytest.mark.parametrize("spoil", ["other arguments", "older format", "corrupt", "truncated", "switched off"])
def test_anything_odd_about_the_record_means_a_full_pass(
    host: tuple[Path, Path], spoil: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, directory = host
    assert recorded(root, directory) == REPORT
    path = root / converged.RECORD
    key = KEY
    if spoil == "other arguments":
        key = {**KEY, "prune": False}
    elif spoil == "older format":
        document = json.loads(path.read_text())
        document["fingerprint"]["format"] = converged.FORMAT - 1
        path.write_text(json.dumps(document))
    elif spoil == "corrupt":
        path.write_text("{not json")
    elif spoil == "truncated":
        path.write_text(json.dumps({"fingerprint": {}}))
    elif spoil == "switched off":
        monkeypatch.setenv("RECONCILE_NO_SHORTCUT", "1")
    assert converged.still_converged(str(root), str(directory), key) is None


class _Fakes:
    """Just enough of the state store, runtime and stores for observe()."""

    def __init__(self, root: Path, record: ObjectRecord, state: ContainerState) -> None:
        self.root, self.record, self.state = str(root), record, state
        self.db = self

    def list_objects(self) -> list[ObjectRecord]:
        return [self.record]

    def containers(self) -> list[ContainerState]:
        return [self.state]

    def networks(self) -> list[Any]:
        return []

    def list(self) -> list[Any]:
        return []


def test_observe_names_containers_left_exited_only_until_their_backoff_ends(tmp_path: Path) -> None:
    """Such a pass's verdict depends on the time: it must not be recorded."""
    manifest = {"spec": {"restart": {"name": "on-failure"}}}
    record = ObjectRecord(kind="Container", name="crashy", stack="s", manifest=manifest)
    crashed = ContainerState("crashy", status="exited", exit_code=1, restart_count=3, finished_at=time.time())
    fakes: Any = _Fakes(tmp_path, record, crashed)
    later: list[str] = []
    seen = observe(fakes, fakes, fakes, fakes, fakes, later=later)
    assert [o.name for o in seen.objects] == ["crashy"] and later == ["crashy"]  # present, for now

    crashed.finished_at = 0.0  # the backoff is over: restarted now, nothing "later"
    later = []
    assert observe(fakes, fakes, fakes, fakes, fakes, later=later).objects == [] and later == []

    crashed.exit_code = 0  # on-failure after a clean exit: done for good
    later = []
    assert len(observe(fakes, fakes, fakes, fakes, fakes, later=later).objects) == 1 and later == []
