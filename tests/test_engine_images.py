"""The engine's images group in-process (import, tag, list, inspect, history, save/load,
remove, prune, build, push/pull through Debian's docker-registry on loopback, with the
progress events recorded), its errors as engine errors, its route table against its
signatures, and the image commands through a real agent."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.client.images import RemoteImages
from reconciler.client.transport import Transport
from reconciler.engine import errors
from reconciler.engine.core import Engine
from reconciler.engine.images import PULL_STATUS, PUSH_STATUS, Images
from reconciler.engine.models.images import ImagesAPI
from reconciler.engine.wiring import EngineConfig
from reconciler.runtime import cgroups
from reconciler.wire.routes import images as image_routes
from tests import agent_fixtures
from tests.agent_fixtures import make_agent
from tests.registry_fixtures import docker_registry
from tests.test_cli_containers import assert_no_mounts_under, busybox_tarball

pytestmark = pytest.mark.requires_root

agents = agent_fixtures.agents  # the fixture


def _engine(root: Path) -> Engine:
    return Engine(EngineConfig(root=str(root), cgroup_parent=f"reconcile-test-{uuid.uuid4().hex[:8]}"))


def _cleanup(engine: Engine) -> None:
    engine.close()
    assert_no_mounts_under(Path(engine.config.root))
    parents = cgroups.new_cgroup("x", parent=engine.config.cgroup_parent).parent_dirs()
    for directory in parents:
        with contextlib.suppress(OSError):
            os.rmdir(directory)
    assert not any(os.path.exists(d) for d in parents), "cgroups left behind"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = _engine(tmp_path / "root")
    try:
        yield made
    finally:
        _cleanup(made)


def blobs(engine: Engine) -> set[str]:
    directory = Path(engine.config.root, "images", "blobs", "sha256")
    return set(os.listdir(directory)) if directory.exists() else set()


def ingests(engine: Engine) -> list[str]:
    directory = Path(engine.config.root, "images", "ingest")
    return os.listdir(directory) if directory.exists() else []


def imported(engine: Engine, tmp_path: Path, reference: str = "busybox:1") -> str:
    return engine.images.import_tarball(str(busybox_tarball(tmp_path / "busybox.tar")), reference)["id"]


def use(engine: Engine, name: str, reference: str) -> None:
    """Record a container made from ``reference``, as ``create`` leaves it for the image store."""
    runtime = engine.wiring.runtime()
    digest = engine.images.inspect(reference)["Manifest"]["Digest"]
    runtime.reserve(name)
    state = runtime.store.read(name)
    assert state is not None
    state.spec = {"image": {"name": reference, "manifest": digest}}
    runtime.store.write(state)


def forget(engine: Engine, name: str) -> None:
    shutil.rmtree(engine.wiring.runtime().store.path(name))


# --- in-process ---------------------------------------------------------------------


def test_import_tag_list_inspect_and_history(engine: Engine, tmp_path: Path) -> None:
    summary = engine.images.import_tarball(str(busybox_tarball(tmp_path / "b.tar")), "busybox")
    assert (summary["repository"], summary["tag"]) == ("busybox", "latest")
    assert summary["id"].startswith("sha256:") and summary["size"] > 0
    tagged = engine.images.tag("busybox", "mirror/busybox:stable")
    assert tagged == {"reference": "mirror/busybox:stable", "id": summary["id"], "digest": summary["digest"]}
    rows = engine.images.list()
    assert [(r["repository"], r["tag"], r["id"]) for r in rows] == [
        ("busybox", "latest", summary["id"]),
        ("mirror/busybox", "stable", summary["id"]),
    ]
    assert json.loads(json.dumps(rows)) == rows  # JSON as it is
    document = engine.images.inspect(summary["id"][:19])  # an ID prefix
    assert document["Id"] == summary["id"]
    assert document["RepoTags"] == ["busybox:latest", "mirror/busybox:stable"]
    assert document["Manifest"]["Digest"] == summary["digest"]
    history = engine.images.history("mirror/busybox:stable")
    assert len(history) == 1 and "reconcile image import b.tar" in history[0]["created_by"]
    untagged = engine.images.import_tarball(str(tmp_path / "b.tar"))
    assert (untagged["repository"], untagged["tag"]) == ("<none>", "<none>")


def test_save_and_load_round_trip(engine: Engine, tmp_path: Path) -> None:
    image_id = imported(engine, tmp_path)
    for format in ("oci-archive", "docker-archive"):
        archive = tmp_path / f"{format}.tar"
        assert engine.images.save(["busybox:1"], format=format, destination=str(archive)) == str(archive)
        assert tarfile.is_tarfile(archive)
    spooled = engine.images.save(["busybox:1"])  # a temporary file the caller owns
    try:
        assert tarfile.is_tarfile(spooled)
    finally:
        os.unlink(spooled)
    assert engine.images.remove("busybox:1")["untagged"] == ["busybox:1"]
    assert blobs(engine) == set() and engine.images.list() == []
    assert engine.images.load(str(tmp_path / "oci-archive.tar")) == {"loaded": ["busybox:1"]}
    assert engine.images.load(str(tmp_path / "docker-archive.tar"), tag="other") == {"loaded": ["busybox:1"]}
    assert [r["id"] for r in engine.images.list()] == [image_id]
    with pytest.raises(errors.NotFound, match="no such image: nope:1"):
        engine.images.save(["busybox:1", "nope:1"], destination=str(tmp_path / "never.tar"))
    assert not (tmp_path / "never.tar").exists()
    with pytest.raises(errors.InvalidRequest, match="unknown archive format"):
        engine.images.save(["busybox:1"], format="zip", destination=str(tmp_path / "never.tar"))  # type: ignore[arg-type]


def test_unknown_images_are_not_found(engine: Engine) -> None:
    for call in (
        lambda: engine.images.remove("nope:1"),
        lambda: engine.images.inspect("nope:1"),
        lambda: engine.images.history("nope:1"),
        lambda: engine.images.tag("nope:1", "other:1"),
        lambda: engine.images.push("127.0.0.1:1/nope:1"),  # never reaches the registry
    ):
        with pytest.raises(errors.NotFound, match="no such image"):
            call()


def test_an_image_a_container_uses_is_a_conflict_to_remove_and_never_collected(engine: Engine, tmp_path: Path) -> None:
    imported(engine, tmp_path)
    use(engine, "user", "busybox:1")
    try:
        before = blobs(engine)
        with pytest.raises(errors.Conflict, match="used by a container"):
            engine.images.remove("busybox:1")
        pruned = engine.images.prune(all=True)
        assert pruned["untagged"] == [] and blobs(engine) == before
        forced = engine.images.remove("busybox:1", force=True)
        assert forced["untagged"] == ["busybox:1"] and forced["blobs"] == 0
        assert blobs(engine) == before and engine.images.list() == []
    finally:
        forget(engine, "user")
    pruned = engine.images.prune()
    assert pruned["blobs"] == len(before) and pruned["bytes_freed"] > 0 and blobs(engine) == set()


def test_prune_all_untags_unused_images_and_reports_what_it_freed(engine: Engine, tmp_path: Path) -> None:
    imported(engine, tmp_path)
    engine.images.tag("busybox:1", "busybox:2")
    size = sum(os.path.getsize(Path(engine.config.root, "images", "blobs", "sha256", b)) for b in blobs(engine))
    assert engine.images.prune() == {"untagged": [], "blobs": 0, "snapshots": 0, "ingests": 0, "bytes_freed": 0}
    pruned = engine.images.prune(all=True)
    assert pruned["untagged"] == ["busybox:1", "busybox:2"]
    assert (pruned["blobs"], pruned["snapshots"], pruned["bytes_freed"]) == (3, 1, size)
    assert engine.images.fsck() == {"problems": []}


def test_corrupt_tarballs_and_archives_are_invalid_requests(engine: Engine, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar file at all\n" * 100)
    with pytest.raises(errors.InvalidRequest, match="cannot import"):
        engine.images.import_tarball(str(garbage), "broken:1")
    with pytest.raises(errors.InvalidRequest, match=r"not a tar|cannot|invalid"):
        engine.images.load(str(garbage))
    imported(engine, tmp_path)
    archive = tmp_path / "saved.tar"
    engine.images.save(["busybox:1"], destination=str(archive))
    engine.images.remove("busybox:1")
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(errors.InvalidRequest):
        engine.images.load(str(truncated))
    assert engine.images.list() == [] and ingests(engine) == []
    with pytest.raises(errors.InvalidRequest, match="No such file"):
        engine.images.import_tarball(str(tmp_path / "missing.tar"), "missing:1")


def test_malformed_references_and_arguments_are_invalid_requests(engine: Engine, tmp_path: Path) -> None:
    imported(engine, tmp_path)
    tarball = str(tmp_path / "busybox.tar")
    context = tmp_path / "context"
    context.mkdir()
    for call in (
        lambda: engine.images.tag("busybox:1", "Not A Reference"),
        lambda: engine.images.tag("busybox:1", "busybox:-1"),
        lambda: engine.images.import_tarball(tarball, "bad name"),
        lambda: engine.images.pull("bad name:1"),
        lambda: engine.images.pull("busybox:1", platform="linux"),
        lambda: engine.images.push("Bad/Name"),
        lambda: engine.images.build(str(context), tags=["Bad Tag"]),
        lambda: engine.images.build(str(context), build_args=["NOVALUE"]),
        lambda: engine.images.build(str(context), containerfile="../Containerfile"),
    ):
        with pytest.raises(errors.InvalidRequest):
            call()
    assert [r["tag"] for r in engine.images.list()] == ["1"]


def test_build_streams_its_output_as_progress_lines(engine: Engine, tmp_path: Path) -> None:
    imported(engine, tmp_path)
    context = tmp_path / "context"
    context.mkdir()
    (context / "greeting.txt").write_text("hello\n")
    (context / "Containerfile").write_text(
        "\n".join(
            [
                "FROM busybox:1",
                "ARG WHO",
                "COPY greeting.txt /greeting.txt",
                "RUN echo built for $WHO",
                'CMD ["cat", "/greeting.txt"]',
            ]
        )
    )
    events: list[dict[str, Any]] = []
    built = engine.images.build(str(context), tags=["app"], build_args=["WHO=tests"], progress=events.append)
    assert built["tags"] == ["app:latest"] and built["id"].startswith("sha256:")
    assert all(event["status"] == "line" for event in events)
    lines = [event["text"] for event in events]
    assert "STEP 4/5: RUN echo built for $WHO" in lines and "built for tests" in lines and "COMMIT app" in lines
    assert engine.images.inspect("app")["Id"] == built["id"]
    assert engine.images.history("app")[0]["created_by"].startswith("/bin/sh -c #(nop)")

    (context / "Broken").write_text("FROM busybox:1\nRUN exit 3\n")
    with pytest.raises(errors.InvalidRequest, match=r"^Broken:2: RUN exit 3: .*3"):
        engine.images.build(str(context), tags=["broken:1"], containerfile="Broken")
    assert "broken" not in [r["repository"] for r in engine.images.list()]
    with pytest.raises(errors.InvalidRequest, match="not a directory"):
        engine.images.build(str(tmp_path / "nowhere"))


def test_push_and_pull_through_a_registry_report_progress(engine: Engine, tmp_path: Path) -> None:
    imported(engine, tmp_path)
    other = _engine(tmp_path / "other-root")
    try:
        with docker_registry(str(tmp_path / "registry")) as registry:
            remote = f"{registry.host}/tools/busybox:1"
            engine.images.tag("busybox:1", remote)
            pushing: list[dict[str, Any]] = []
            pushed = engine.images.push(remote, progress=pushing.append)
            assert pushed["reference"] == remote and pushed["digest"].startswith("sha256:")
            assert {event["status"] for event in pushing} <= set(PUSH_STATUS.values())
            assert any(event["status"] == "Pushed" for event in pushing)

            pulling: list[dict[str, Any]] = []
            pulled = other.images.pull(remote, progress=pulling.append)
            assert (pulled["repository"], pulled["tag"], pulled["digest"]) == (
                f"{registry.host}/tools/busybox",
                "1",
                pushed["digest"],
            )
            layers = {layer for layer in other.images.inspect(remote)["RootFS"]["Layers"]}
            assert len(layers) == 1
            by_blob: dict[str, list[dict[str, Any]]] = {}
            for event in pulling:
                assert set(event) == {"id", "digest", "phase", "status", "current", "total"}
                assert event["id"] == event["digest"].removeprefix("sha256:")[:12]
                assert event["status"] == PULL_STATUS[event["phase"]]
                assert 0 <= event["current"] <= event["total"]
                by_blob.setdefault(event["digest"], []).append(event)
            assert len(by_blob) == 2  # the config and the one layer
            layer_events = [events for events in by_blob.values() if events[-1]["phase"] == "unpacked"]
            assert len(layer_events) == 1
            phases = [event["phase"] for event in layer_events[0]]
            assert phases[0] == "downloading" and {"done", "unpacking"} <= set(phases)
            assert len(phases) <= 110  # thinned: about one event per percent
            again: list[dict[str, Any]] = []
            other.images.pull(remote, progress=again.append)  # everything is there already
            assert {event["phase"] for event in again} == {"exists"}

            with pytest.raises(errors.NotFound, match="manifest unknown"):
                other.images.pull(f"{registry.host}/tools/busybox:nope")
        with pytest.raises(errors.Unavailable, match=registry.host):
            other.images.pull(remote)  # the registry is gone now
        assert [r["digest"] for r in other.images.list()] == [pushed["digest"]]
    finally:
        _cleanup(other)


def test_garbage_collection_waits_for_content_being_written(engine: Engine, tmp_path: Path) -> None:
    """A pull's blobs are committed before its tag: a prune meanwhile must wait."""
    images = engine.images
    assert isinstance(images, Images)
    imported(engine, tmp_path)
    pruned = threading.Event()
    with images._store_lock.shared():  # what a pull holds while it writes
        worker = threading.Thread(target=lambda: (images.prune(all=True), pruned.set()))
        worker.start()
        assert not pruned.wait(0.3)
        assert engine.images.list() != []
    assert pruned.wait(30)
    worker.join()
    assert engine.images.list() == []


# --- the wire -------------------------------------------------------------------------


def test_every_route_names_the_arguments_of_its_operation() -> None:
    """Route parameters = the method's parameters, for the engine, the remote client
    and the Protocol alike (``progress`` is the stream; ``destination`` is local to
    ``save``, whose download route returns the file)."""
    ops = {route.op.split(".", 1)[1] for route in image_routes.ROUTES}
    protocol = {name for name in dir(ImagesAPI) if not name.startswith("_")}
    assert ops == protocol
    for route in image_routes.ROUTES:
        assert route.path.startswith("/v1/images") and route.op.startswith("images.")
        sent = {*route.placeholders(), *(name for name, _ in route.query), *([route.body[0]] if route.body else [])}
        name = route.op.split(".", 1)[1]
        for implementation in (Images, RemoteImages, ImagesAPI):
            parameters = set(inspect.signature(getattr(implementation, name)).parameters) - {"self", "progress"}
            assert parameters - {"destination"} == sent, (implementation.__name__, name)
            takes_progress = "progress" in inspect.signature(getattr(implementation, name)).parameters
            assert takes_progress == (route.kind == "progress"), (implementation.__name__, name)


# --- through an agent ------------------------------------------------------------------


def binary_cli(agent: agent_fixtures.Agent, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """The CLI through the agent with bytes in and out (an archive on stdin or stdout)."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "--host", agent.host, *args],
        env=agent.env,
        cwd=agent_fixtures.REPO,
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def test_the_image_commands_through_an_agent(agents: list[agent_fixtures.Agent], tmp_path: Path) -> None:
    agent = make_agent(agents, tmp_path / "agent")
    image = agent.image()  # `image import` through the agent
    assert agent.cli("tag", image, "mirror/busybox:stable").returncode == 0
    rows = json.loads(agent.cli("images", "-o", "json").stdout)
    assert [(r["repository"], r["tag"]) for r in rows] == [("busybox", "local"), ("mirror/busybox", "stable")]
    document = json.loads(agent.cli("image", "inspect", "mirror/busybox:stable").stdout)[0]
    assert document["RepoTags"] == ["busybox:local", "mirror/busybox:stable"]
    assert "reconcile image import" in agent.cli("history", image).stdout

    archive = tmp_path / "saved.tar"
    assert agent.cli("image", "save", "-o", str(archive), image).returncode == 0
    streamed = binary_cli(agent, "image", "save", "--format", "docker-archive", image)
    assert streamed.returncode == 0 and streamed.stdout[257:262] == b"ustar"
    removed = agent.cli("image", "rm", image, "mirror/busybox:stable")
    assert (removed.returncode, removed.stdout) == (0, "Untagged: busybox:local\nUntagged: mirror/busybox:stable\n")
    loaded = agent.cli("image", "load", "-i", str(archive))
    assert (loaded.returncode, loaded.stdout) == (0, "Loaded image: busybox:local\n"), loaded.stderr
    loaded = binary_cli(agent, "image", "load", "--tag", "piped", stdin=streamed.stdout)
    assert (loaded.returncode, loaded.stdout) == (0, b"Loaded image: busybox:local\n"), loaded.stderr
    garbage = binary_cli(agent, "image", "load", stdin=b"not an archive" * 100)
    assert garbage.returncode == 1 and garbage.stderr.startswith(b"reconcile: ")

    context = tmp_path / "context"
    context.mkdir()
    (context / "greeting.txt").write_text("hello through the agent\n")
    (context / "Containerfile").write_text(f'FROM {image}\nCOPY greeting.txt /g.txt\nCMD ["cat", "/g.txt"]\n')
    built = agent.cli("build", "-t", "app:1", str(context))
    assert built.returncode == 0 and "COMMIT app:1" in built.stderr, built.stderr
    ran = agent.cli("run", "--rm", "app:1")
    assert (ran.returncode, ran.stdout) == (0, "hello through the agent\n"), ran.stderr
    outside = tmp_path / "Outside.containerfile"
    outside.write_text(f"FROM {image}\nRUN exit 3\n")
    failed = agent.cli("build", "-q", "-f", str(outside), "-t", "broken:1", str(context))
    assert failed.returncode == 1 and f"{outside}:2: RUN exit 3" in failed.stderr, failed.stderr

    missing = agent.cli("image", "rm", "nope:1")
    assert missing.returncode == 1 and "no such image: nope:1" in missing.stderr
    pruned = agent.cli("image", "prune", "-a")
    assert pruned.returncode == 0 and "Untagged: app:1" in pruned.stdout
    assert agent.cli("image", "fsck").returncode == 0
    assert "Traceback" not in agent.log.read_text()


def test_pull_progress_crosses_the_wire(agents: list[agent_fixtures.Agent], tmp_path: Path) -> None:
    agent = make_agent(agents, tmp_path / "agent")
    image = agent.image()
    remote_images = RemoteImages(Transport(agent.host))
    with docker_registry(str(tmp_path / "registry")) as registry:
        reference = f"{registry.host}/tools/busybox:1"
        remote_images.tag(image, reference)
        pushed = remote_images.push(reference)
        remote_images.remove(reference)
        remote_images.remove(image)
        assert remote_images.list() == []
        events: list[dict[str, Any]] = []
        pulled = remote_images.pull(reference, progress=events.append)
        assert pulled["digest"] == pushed["digest"]
        # the agent answers once the blobs are stored: the layers are unpacked after (unpack_after_pull)
        assert {"downloading", "done"} <= {event["phase"] for event in events}
        with pytest.raises(errors.NotFound, match="manifest unknown"):
            remote_images.pull(f"{registry.host}/tools/busybox:nope")
    status, metrics = agent.request("GET", "/metrics")
    pulled_bytes = next(line for line in metrics.splitlines() if line.startswith("reconcile_pull_bytes_total "))
    assert status == 200 and float(pulled_bytes.split()[1]) >= 1_000_000  # busybox-static's layer, compressed
    assert "Traceback" not in agent.log.read_text()
