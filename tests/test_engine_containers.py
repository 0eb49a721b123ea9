"""The engine's containers group in-process (root, busybox): the lifecycle round trip,
driver failures as the engine's errors, an attached run from a worker thread (as the
agent runs it), and the remote client's calls against the route table. Nothing is
left on the host afterwards."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import errors
from reconciler.engine.core import Engine
from reconciler.engine.models.containers import ContainersAPI, RunRequest, Stdio
from reconciler.engine.wiring import EngineConfig
from reconciler.runtime import linux
from tests.test_cli_containers import busybox_tarball, clean_engine

IMAGE = "busybox:engine"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # detached monitors are reaped here
    config = EngineConfig(root=str(tmp_path / "root"), cgroup_parent=f"reconcile-test-{uuid.uuid4().hex[:8]}")
    made = Engine(config)
    try:
        made.wiring.image_store().import_tarball(str(busybox_tarball(tmp_path / "busybox.tar")), IMAGE)
        yield made
    finally:
        made.close()
        clean_engine(config.root, config.cgroup_parent)


def wait_for(predicate: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def request(*command: str, **flags: Any) -> RunRequest:
    return {"image": IMAGE, "command": list(command), **flags}  # type: ignore[typeddict-item]


@pytest.mark.requires_root
def test_create_start_list_inspect_logs_stop_remove(engine: Engine) -> None:
    containers: ContainersAPI = engine.containers
    made = containers.create(request("sh", "-c", "echo started; exec sleep 60", name="web"))
    assert made["name"] == "web" and len(made.get("id", "")) == 64  # create answers the ID too
    assert [(c["name"], c["status"]) for c in containers.list(all=True)] == [("web", "created")]
    assert containers.list() == []  # created is not running
    containers.start("web")
    (row,) = containers.list()
    assert (row["name"], row["status"], row["image"], row["command"][:2]) == ("web", "running", IMAGE, ["sh", "-c"])
    document = containers.inspect("web")
    assert document["State"]["Running"] is True and document["Config"]["Image"] == IMAGE
    (usage,) = containers.stats()
    assert usage["name"] == "web" and usage["memory_usage"] > 0 and usage["pids"] >= 1
    assert containers.stats(["other"]) == []
    wait_for(lambda: [e["text"] for e in containers.logs("web")] == ["started\n"])
    (entry,) = containers.logs("web")
    assert entry["stream"] == "stdout" and entry["time_ns"] > 0

    exec_r, exec_w = os.pipe()
    try:
        result = containers.exec("web", {"command": ["hostname"]}, Stdio(os.open(os.devnull, os.O_RDONLY), exec_w, 2))
        os.close(exec_w)
        assert result == {"name": "web", "exit_code": 0}
        assert os.read(exec_r, 100) == b"web\n"
    finally:
        os.close(exec_r)

    assert containers.stop("web", grace=0.2) == {"name": "web"}
    assert containers.wait("web") == {"name": "web", "exit_code": 137}  # pid 1 ignores SIGTERM: killed after 0.2 s
    follow = list(containers.logs("web", follow=True))  # it has exited: follow ends
    assert [e["text"] for e in follow] == ["started\n"]
    containers.start("web")  # an exited container starts again as it was
    assert containers.inspect("web")["State"]["Running"] is True
    containers.remove("web", force=True)
    assert containers.list(all=True) == []


@pytest.mark.requires_root
def test_driver_failures_are_engine_errors(engine: Engine) -> None:
    containers = engine.containers
    with pytest.raises(errors.NotFound, match="no such container: ghost"):
        containers.inspect("ghost")
    with pytest.raises(errors.NotFound, match="no such container: ghost"):
        containers.logs("ghost")  # at once, before any entry is asked for
    with pytest.raises(errors.NotFound, match="no such image: nosuch:image") as missing_image:
        containers.run({"image": "nosuch:image", "command": ["true"]})
    assert missing_image.value.exit_code == 125

    containers.run(request("sleep", "60", name="busy"), detach=True)
    with pytest.raises(errors.Conflict, match="'busy' is running: stop it first"):
        containers.remove("busy")
    with pytest.raises(errors.Conflict, match="already exists"):
        containers.create(request("true", name="busy"))
    with pytest.raises(errors.InvalidRequest, match="unknown signal 'NOPE'"):
        containers.kill("busy", signal="NOPE")
    with pytest.raises(errors.Conflict, match="not paused"):
        containers.unpause("busy")
    containers.pause("busy")
    assert containers.inspect("busy")["State"]["Paused"] is True
    with pytest.raises(errors.Conflict, match="paused"):
        containers.pause("busy")
    containers.unpause("busy")
    containers.kill("busy", signal="KILL")
    assert containers.wait("busy")["exit_code"] == 137
    with pytest.raises(errors.Conflict, match="not running"):
        containers.kill("busy")

    with pytest.raises(errors.InvalidRequest, match="invalid size 'lots'") as bad_memory:
        containers.create(request("true", memory="lots"))
    assert bad_memory.value.exit_code == 125
    with pytest.raises(errors.InvalidRequest, match="minimum memory limit allowed is 6m"):
        containers.create(request("true", memory="1m"))
    with pytest.raises(errors.InvalidRequest, match="unknown capability"):
        containers.create(request("true", cap_add=["NOT_A_CAP"]))
    with pytest.raises(errors.InvalidRequest, match="invalid container name"):
        containers.create(request("true", name="a/b"))
    with pytest.raises(errors.InvalidRequest, match="--rm and -d"):
        containers.run(request("true", remove=True), detach=True)
    with pytest.raises(errors.StartFailed, match="executable not found in container: /bin/nope") as not_found:
        containers.run(request("/bin/nope", remove=True), Stdio(os.open(os.devnull, os.O_RDONLY), 1, 2))
    assert not_found.value.exit_code == 127
    assert [c["name"] for c in containers.list(all=True)] == ["busy"]  # the refused ones left nothing
    containers.remove("busy")


@pytest.mark.requires_root
def test_an_attached_run_from_a_worker_thread_with_pipes(engine: Engine) -> None:
    """As the agent runs it: not the main thread (no signal handlers can be set),
    the container's stdio are pipes the caller reads and writes."""
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    results: list[Any] = []

    def work() -> None:
        try:
            results.append(
                engine.containers.run(
                    request("sh", "-c", "read line; echo got $line; echo oops >&2; exit 7", name="att", remove=True),
                    Stdio(stdin_r, out_w, err_w),
                )
            )
        except BaseException as exc:  # reported below, in the test's thread
            results.append(exc)
        finally:
            for fd in (stdin_r, out_w, err_w):
                os.close(fd)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        os.write(stdin_w, b"hello\n")
        os.close(stdin_w)
        out = b"".join(iter(lambda: os.read(out_r, 4096), b""))
        err = b"".join(iter(lambda: os.read(err_r, 4096), b""))
    finally:
        worker.join(timeout=30)
        os.close(out_r)
        os.close(err_r)
    assert not worker.is_alive()
    assert results == [{"name": "att", "exit_code": 7}], results
    assert (out, err) == (b"got hello\n", b"oops\n")
    assert engine.containers.list(all=True) == []  # --rm


@pytest.mark.requires_root
def test_run_rm_takes_its_anonymous_volumes_and_binds_are_made(engine: Engine, tmp_path: Path) -> None:
    host = tmp_path / "made-by-run"
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        result = engine.containers.run(
            request("sh", "-c", "touch /scratch/f /host/g", volumes=["/scratch", f"{host}:/host"], remove=True),
            Stdio(devnull, 1, 2),
        )
    finally:
        os.close(devnull)
    assert result["exit_code"] == 0 and (host / "g").exists()
    assert engine.wiring.volumes().list() == []
    with pytest.raises(errors.InvalidRequest, match="bad name"):
        engine.containers.create(request("true", volumes=["bad name:/x"]))
    assert engine.containers.list(all=True) == []


class RecordingTransport:
    """Stands in for ``client.transport.Transport``: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def call(self, op: str, **kwargs: Any) -> Any:
        self.sent.append(("call", op, kwargs))
        return {"name": "x", "exit_code": 0}

    def lines(self, op: str, **kwargs: Any) -> Iterator[Any]:
        self.sent.append(("lines", op, kwargs))
        return iter(())

    def attach(self, op: str, stdio: Any, **kwargs: Any) -> int:
        self.sent.append(("attach", op, kwargs))
        return 3


def test_the_remote_client_sends_what_the_routes_take() -> None:
    from reconciler.client.containers import RemoteContainers
    from reconciler.wire.routes.containers import ROUTES

    transport = RecordingTransport()
    remote: ContainersAPI = RemoteContainers(transport)  # type: ignore[arg-type]
    remote.create({"image": "i"})
    remote.start("c")
    assert remote.run({"image": "i", "name": "c"}, Stdio()) == {"name": "c", "exit_code": 3}
    remote.run({"image": "i"}, detach=True)
    remote.stop("c", grace=1.5)
    remote.kill("c", signal="TERM")
    remote.pause("c")
    remote.unpause("c")
    remote.remove("c", force=True)
    remote.inspect("c")
    remote.list(all=True)
    list(remote.logs("c", follow=True, tail=5, since_ns=1))
    assert remote.exec("c", {"command": ["true"]}, Stdio()) == {"name": "c", "exit_code": 3}
    remote.stats(["c"])
    remote.wait("c")
    routes = {route.op: route for route in ROUTES}
    assert {op for _, op, _ in transport.sent} == set(routes)
    for how, op, kwargs in transport.sent:
        route = routes[op]
        upgrade = "call" if kwargs.get("detach") else "attach"  # a detached run is one JSON answer
        assert how == {"json": "call", "lines": "lines", "upgrade": upgrade}[route.kind], op
        allowed = {*route.placeholders(), *(name for name, _ in route.query), *([route.body[0]] if route.body else [])}
        assert set(kwargs) <= allowed, (op, kwargs)
        assert set(route.placeholders()) <= set(kwargs), op


def test_relative_bind_sources_are_made_absolute_by_the_cli() -> None:
    from reconciler.cli.container_commands import _absolute_source

    assert _absolute_source("./data:/d:ro", "/work/x") == "/work/x/data:/d:ro"
    assert _absolute_source("..:/d", "/work/x") == "/work:/d"
    assert _absolute_source("~:/home", "/") == f"{os.path.expanduser('~')}:/home"
    for unchanged in ("/abs:/d", "named:/d", "/anonymous"):
        assert _absolute_source(unchanged, "/work/x") == unchanged
