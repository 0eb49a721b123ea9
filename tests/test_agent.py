"""`reconcile agent` (root, real kernel): it converges at start, applies an edit
within a couple of seconds, brings back a container killed by hand on resync,
applies nothing from an invalid manifest, and, killed and started again, adopts
what runs without restarting it. SIGTERM ends it and leaves containers running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli_containers import REPO, assert_no_mounts_under, busybox_tarball, reconcile
from tests.test_cli_containers import engine as engine  # a fixture, used by name

pytestmark = pytest.mark.requires_root

STACK = """apiVersion: reconcile/v1
kind: Image
metadata: {{name: base}}
spec: {{import: {{path: base.tar}}, tag: "agent-base:1"}}
---
apiVersion: reconcile/v1
kind: Container
metadata: {{name: ticker}}
spec:
  image: base
  init: true
  network_mode: none
  stop_grace_period: 1s
  command: ["sleep", "{seconds}"]
"""


def wait_until(predicate, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def container(env: dict[str, str]) -> dict[str, object] | None:
    found = json.loads(reconcile(env, "inspect", "ticker").stdout or "[]")
    return found[0] if found else None


def running_pid_of(env: dict[str, str], name: str) -> int:
    found = json.loads(reconcile(env, "inspect", name).stdout or "[]")
    return int(found[0]["State"]["Pid"]) if found and found[0]["State"]["Running"] else 0


def running_pid(env: dict[str, str]) -> int:
    state = container(env)
    return int(state["State"]["Pid"]) if state and state["State"]["Running"] else 0  # type: ignore[index]


@pytest.fixture
def stack(engine: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "stack"
    directory.mkdir()
    busybox_tarball(directory / "base.tar")
    (directory / "stack.yaml").write_text("name: agentstack\n")
    (directory / "objects.yaml").write_text(STACK.format(seconds=3600))
    try:
        yield directory
    finally:
        (directory / "objects.yaml").unlink(missing_ok=True)
        reconcile(engine, "--once", str(directory), "--prune-volumes")
        assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"
        assert_no_mounts_under(Path(engine["RECONCILE_ROOT"]))


def start_agent(env: dict[str, str], directory: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "agent",
                str(directory),
                "--socket",
                str(log.parent / "agent.sock"),
                "--resync",
                "1",
                "--debounce",
                "200",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=output,
        )


def passes(log: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == "pass"]


def test_the_agent_converges_follows_edits_and_heals(engine: dict[str, str], stack: Path, tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    agent = start_agent(engine, stack, log)
    try:
        wait_until(lambda: running_pid(engine) != 0)
        first = running_pid(engine)

        (stack / "objects.yaml").write_text(STACK.format(seconds=3601))  # a commit lands
        wait_until(lambda: (container(engine) or {}).get("Args") == ["3601"] and running_pid(engine) != 0, 10)
        edited = running_pid(engine)
        assert edited != first

        assert reconcile(engine, "kill", "ticker").returncode == 0  # drift: killed by hand
        wait_until(lambda: running_pid(engine) not in (0, edited), 10)
        healed = running_pid(engine)

        (stack / "objects.yaml").write_text("kind: Container\nmetadata: {name: [broken\n")  # half-written
        count = len(passes(log))
        wait_until(lambda: len(passes(log)) > count + 1)
        assert passes(log)[-1]["outcome"] == "failed" and running_pid(engine) == healed  # nothing applied

        (stack / "objects.yaml").write_text(STACK.format(seconds=3601))
        agent.send_signal(signal.SIGKILL)  # killed mid-whatever: a new agent adopts, restarts nothing
        agent.wait()
        agent = start_agent(engine, stack, log)
        count = len(passes(log))
        wait_until(lambda: len(passes(log)) > count)
        assert passes(log)[-1]["outcome"] == "unchanged" and running_pid(engine) == healed

        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
        assert running_pid(engine) == healed  # containers outlive the agent
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert os.path.exists(log)


PROBED = """apiVersion: reconcile/v1
kind: Image
metadata: {name: base}
spec: {import: {path: base.tar}, tag: "agent-base:1"}
---
apiVersion: reconcile/v1
kind: Container
metadata: {name: probed}
spec:
  image: base
  init: true
  network_mode: none
  stop_grace_period: 1s
  restart: always
  command: ["sh", "-c", "touch /ok; exec sleep 3600"]
  healthcheck: {test: "test -f /ok", interval: 0.2s, timeout: 2s, retries: 2}
"""


def health_of(env: dict[str, str]) -> str | None:
    rows = json.loads(reconcile(env, "status", "-o", "json").stdout)
    return next((r["health"] for r in rows if r["key"] == "container/probed"), None)


def test_an_unhealthy_container_is_replaced(engine: dict[str, str], tmp_path: Path) -> None:
    directory = tmp_path / "probed"
    directory.mkdir()
    busybox_tarball(directory / "base.tar")
    with tarfile.open(directory / "base.tar", "a") as archive:
        for applet in ("touch", "test", "rm"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
    (directory / "stack.yaml").write_text("name: probedstack\n")
    (directory / "objects.yaml").write_text(PROBED)
    agent = start_agent(engine, directory, tmp_path / "agent.log")
    try:
        wait_until(lambda: health_of(engine) == "healthy", 30)
        before = json.loads(reconcile(engine, "inspect", "probed").stdout)[0]["State"]["Pid"]
        assert reconcile(engine, "exec", "probed", "rm", "/ok").returncode == 0  # the check starts failing
        wait_until(lambda: health_of(engine) == "unhealthy", 30)
        wait_until(lambda: running_pid_of(engine, "probed") not in (0, before), 30)
        wait_until(lambda: health_of(engine) == "healthy", 30)  # the replacement passes its check again
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        (directory / "objects.yaml").unlink()
        reconcile(engine, "--once", str(directory))
    assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"


MIDPASS = """apiVersion: reconcile/v1
kind: Image
metadata: {name: base}
spec: {import: {path: base.tar}, tag: "agent-base:1"}
---
apiVersion: reconcile/v1
kind: Container
metadata: {name: slowjob}
spec:
  image: base
  network_mode: none
  restart: "no"
  command: ["sleep", "2"]
---
apiVersion: reconcile/v1
kind: Container
metadata: {name: after}
spec:
  image: base
  init: true
  network_mode: none
  stop_grace_period: 1s
  command: ["sleep", "3600"]
  depends_on: {slowjob: {condition: completed}}
"""


def test_an_agent_killed_mid_pass_is_completed_by_the_next(engine: dict[str, str], tmp_path: Path) -> None:
    directory = tmp_path / "midpass"
    directory.mkdir()
    busybox_tarball(directory / "base.tar")
    (directory / "stack.yaml").write_text("name: midpass\n")
    (directory / "objects.yaml").write_text(MIDPASS)
    log = tmp_path / "agent.log"
    agent = start_agent(engine, directory, log)
    try:
        # the pass waits for the one-shot to complete before it starts `after`: kill it there
        wait_until(lambda: running_pid_of(engine, "slowjob") != 0, 30)
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        assert running_pid_of(engine, "after") == 0
        agent = start_agent(engine, directory, log)
        wait_until(lambda: running_pid_of(engine, "after") != 0, 30)
        names = sorted(c["name"] for c in json.loads(reconcile(engine, "ps", "-a", "-o", "json").stdout))
        assert names == ["after", "slowjob"]  # nothing duplicated, nothing left half-made
        job = json.loads(reconcile(engine, "inspect", "slowjob").stdout)[0]["State"]
        assert (job["Status"], job["ExitCode"]) == ("exited", 0)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        (directory / "objects.yaml").unlink()
        reconcile(engine, "--once", str(directory))
    assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"


def test_a_failing_pass_is_retried_with_backoff_sooner_than_the_resync(engine: dict[str, str], tmp_path: Path) -> None:
    directory = tmp_path / "retry"
    directory.mkdir()
    (directory / "stack.yaml").write_text("name: retry\n")
    (directory / "objects.yaml").write_text(
        "apiVersion: reconcile/v1\nkind: Container\nmetadata: {name: lonely}\n"
        "spec: {image: 'nothere:1', network_mode: none, command: [sleep, '60']}\n"
    )
    log = tmp_path / "agent.log"
    with open(log, "ab") as output:
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "agent",
                str(directory),
                "--socket",
                str(log.parent / "agent.sock"),
                "--resync",
                "60",
                "--debounce",
                "200",
            ],
            env=engine,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
    try:
        wait_until(lambda: len(passes(log)) >= 3, 20)  # start, then retries after 1 s and 2 s: not 60 s apart
        assert [p["outcome"] for p in passes(log)[:3]] == ["failed"] * 3
        assert [p["reason"] for p in passes(log)[1:3]] == ["retry", "retry"]
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
        (directory / "objects.yaml").unlink()
        reconcile(engine, "--once", str(directory))
