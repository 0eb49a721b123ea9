"""Pulls through the agent: answered once the blobs are verified and stored, the
layers unpacked right after in the background (``EngineConfig.unpack_after_pull``).
A ``run`` straight after the pull works (it unpacks what is not yet there itself),
and a layer that cannot be unpacked is the clear error of the first run, logged by
the agent, with nothing else of the store lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.images.store import ImageStore
from tests import agent_fixtures
from tests.agent_fixtures import make_agent
from tests.registry_fixtures import busybox_tar, fake_registry, make_image

agents = agent_fixtures.agents  # the fixture

pytestmark = pytest.mark.requires_root


def _wait(predicate, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_pulled_image_runs_at_once_and_its_layers_are_unpacked_after(agents, tmp_path: Path) -> None:
    agent = make_agent(agents, tmp_path / "a")
    maker = ImageStore(str(tmp_path / "maker"))
    image = make_image(maker, None, [busybox_tar(), busybox_tar({"etc/second": b"2\n"})], compress=True)
    with fake_registry() as fake:
        fake.add_store_image("1", maker, image)
        reference = f"{fake.host}/org/app:1"
        result = agent.cli("pull", "-q", reference)
        assert result.returncode == 0, result.stderr
        run = agent.cli(
            "run", "--rm", reference, "sh", "-c", "read line < /etc/second; echo $line"
        )  # at once: unpacked by now, or by the run
        assert (run.returncode, run.stdout) == (0, "2\n"), run.stderr
        snapshots = agent.root / "images" / "snapshots"
        wanted = {diff_id.removeprefix("sha256:") for diff_id in image.diff_ids}
        _wait(lambda: wanted <= {p.name for p in snapshots.iterdir()}, "the layers unpacked")
        assert not [p for p in snapshots.iterdir() if ".tmp-" in p.name]  # no half-made layer left


def test_a_layer_that_cannot_be_unpacked_fails_the_first_run_by_name(agents, tmp_path: Path) -> None:
    agent = make_agent(agents, tmp_path / "a")
    good = agent.image()
    maker = ImageStore(str(tmp_path / "maker"))
    image = make_image(maker, None, [busybox_tar(), b"this is not a tar archive" * 40])
    with fake_registry() as fake:
        fake.add_store_image("1", maker, image)
        reference = f"{fake.host}/org/broken:1"
        assert agent.cli("pull", "-q", reference).returncode == 0  # digests verified: the blobs are what was asked
        _wait(lambda: "unpacking its layers failed" in agent.log.read_text(), "the agent's warning")
        run = agent.cli("run", "--rm", reference, "true")
        assert run.returncode == 125, run.stderr
        assert image.layers[1].digest in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    still = agent.cli("run", "--rm", good, "echo", "fine")  # nothing else lost
    assert (still.returncode, still.stdout) == (0, "fine\n"), still.stderr
    assert agent.cli("image", "rm", reference).returncode == 0
    assert not [p for p in (agent.root / "images" / "snapshots").iterdir() if ".tmp-" in p.name]
