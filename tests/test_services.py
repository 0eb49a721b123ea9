"""Services end to end (root, real kernel): three busybox httpd replicas behind a
published port converge; a start-first rolling update is seen by a client loop
with zero failed requests; an update to a broken template is rolled back and the
old replicas serve throughout; scaling down and up keeps names NAME-1…N; a dead
replica is replaced on the next pass; the stack goes away cleanly."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.registry_fixtures import free_port
from tests.test_cli_containers import assert_no_mounts_under, busybox_tarball, reconcile
from tests.test_cli_containers import engine as engine  # a fixture, used by name

pytestmark = pytest.mark.requires_root

SERVICE = """apiVersion: reconcile/v1
kind: Image
metadata: {{name: base}}
spec: {{import: {{path: base.tar}}, tag: "svc-test:1"}}
---
apiVersion: reconcile/v1
kind: Network
metadata: {{name: svctest}}
spec: {{subnet: 10.213.111.0/24}}
---
apiVersion: reconcile/v1
kind: Service
metadata: {{name: site}}
spec:
  replicas: {replicas}
  update: {{order: start-first, max_surge: 1, parallelism: 1, monitor: 0.3s}}
  template:
    image: base
    init: true
    stop_grace_period: 1s
    command: {command}
    env: {{VERSION: "{version}"}}
    networks: [svctest]
    ports: ["{port}:80"]
    volumes: ["{www}:/www:ro"]
    healthcheck: {{test: "busybox wget -q -O /dev/null http://127.0.0.1/", interval: 0.2s}}
"""
HTTPD = '["busybox", "httpd", "-f", "-p", "80", "-h", "/www"]'


class Client(threading.Thread):
    """Requests in a loop against the published port, counting failures."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.ok, self.failed, self.stop = port, 0, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=3) as response:
                    response.read()
                self.ok += 1
            except OSError:
                self.failed += 1
            time.sleep(0.02)


def replicas(env: dict[str, str]) -> list[str]:
    return sorted(c["name"] for c in json.loads(reconcile(env, "ps", "-o", "json").stdout) if c["status"] == "running")


def test_rolling_updates_rollback_scale_and_heal(engine: dict[str, str], tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    busybox_tarball(stack / "base.tar")
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello\n")
    (stack / "stack.yaml").write_text("name: svcstack\n")
    port = free_port()

    def write(version: str, *, replicas: int = 3, command: str = HTTPD) -> None:
        text = SERVICE.format(replicas=replicas, command=command, version=version, port=port, www=www)
        (stack / "objects.yaml").write_text(text)

    links_before = {n for n in os.listdir("/sys/class/net") if n.startswith(("rc-", "rv"))}
    client = Client(port)
    try:
        write("1")
        first = reconcile(engine, "--once", str(stack))
        assert first.returncode == 2, first.stderr
        assert replicas(engine) == ["site-1", "site-2", "site-3"]
        client.start()
        time.sleep(0.3)

        write("2")  # a template change: start-first rollout
        rolled = reconcile(engine, "--once", str(stack))
        assert rolled.returncode == 2, rolled.stderr
        time.sleep(0.3)
        assert client.ok > 0 and client.failed == 0
        hashes = {
            json.loads(reconcile(engine, "inspect", name).stdout)[0]["Config"]["Env"].count("VERSION=2")
            for name in replicas(engine)
        }
        assert hashes == {1} and len(replicas(engine)) == 3

        serving = replicas(engine)
        write("3", command='["sh", "-c", "exit 3"]')  # broken: never healthy
        broken = reconcile(engine, "--once", str(stack))
        assert broken.returncode == 1 and "rolled back" in broken.stderr
        time.sleep(0.3)
        assert replicas(engine) == serving and client.failed == 0

        write("2", replicas=1)  # back to the good template, scaled down
        assert reconcile(engine, "--once", str(stack)).returncode == 2
        assert replicas(engine) == ["site-1"]
        write("2", replicas=2)
        assert reconcile(engine, "--once", str(stack)).returncode == 2
        assert replicas(engine) == ["site-1", "site-2"]

        assert reconcile(engine, "kill", "site-2").returncode == 0  # a replica dies: replaced
        time.sleep(0.3)
        assert reconcile(engine, "--once", str(stack)).returncode == 2
        assert replicas(engine) == ["site-1", "site-2"]
        assert client.failed == 0
    finally:
        client.stop.set()
        (stack / "objects.yaml").unlink(missing_ok=True)
        reconcile(engine, "--once", str(stack), "--prune-volumes")
    assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"
    assert {n for n in os.listdir("/sys/class/net") if n.startswith(("rc-", "rv"))} == links_before
    assert_no_mounts_under(Path(engine["RECONCILE_ROOT"]))


def test_a_stop_first_rollout_keeps_all_but_max_unavailable_running(engine: dict[str, str], tmp_path: Path) -> None:
    stack = tmp_path / "stopfirst"
    stack.mkdir()
    busybox_tarball(stack / "base.tar")
    (stack / "stack.yaml").write_text("name: stopfirst\n")

    def write(version: str) -> None:
        (stack / "objects.yaml").write_text(
            "apiVersion: reconcile/v1\nkind: Image\nmetadata: {name: base}\n"
            'spec: {import: {path: base.tar}, tag: "sf:1"}\n'
            "---\napiVersion: reconcile/v1\nkind: Service\nmetadata: {name: worker}\nspec:\n  replicas: 3\n"
            "  update: {order: stop-first, parallelism: 3, max_unavailable: 1, monitor: 0.2s}\n"
            "  template: {image: base, init: true, network_mode: none, stop_grace_period: 1s,\n"
            f"             command: [sleep, '3600'], env: {{V: '{version}'}}}}\n"
        )

    lowest = [3]
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            lowest[0] = min(lowest[0], len(replicas(engine)))
            time.sleep(0.02)

    try:
        write("1")
        assert reconcile(engine, "--once", str(stack)).returncode == 2
        assert replicas(engine) == ["worker-1", "worker-2", "worker-3"]
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        write("2")
        assert reconcile(engine, "--once", str(stack)).returncode == 2
        watching.set()
        watcher.join()
        assert lowest[0] >= 2  # parallelism 3, but max_unavailable 1: one at a time
        assert replicas(engine) == ["worker-1", "worker-2", "worker-3"]
    finally:
        watching.set()
        (stack / "objects.yaml").unlink(missing_ok=True)
        reconcile(engine, "--once", str(stack))
    assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"
