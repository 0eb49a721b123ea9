"""A real agent in a subprocess, on a socket and root of the test's own, driven by the
real CLI with ``--host``; everything it made is removed afterwards, even on failure."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import linux
from tests.test_cli_containers import busybox_tarball, clean_engine

REPO = Path(__file__).resolve().parent.parent


class Agent:
    """One agent: its root, socket, cgroup parent and log."""

    def __init__(self, base: Path, *extra: str) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.root = base / "root"
        run = base / "run"
        run.mkdir(mode=0o755, exist_ok=True)
        self.socket = run / "reconcile.sock"
        self.docker_socket = run / "docker.sock"  # the Docker API's (the agent's default: beside the socket)
        self.cgroup_parent = f"reconcile-test-{uuid.uuid4().hex[:8]}"
        self.log = base / "agent.log"
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "RECONCILE_ROOT": str(self.root),
            "RECONCILE_CGROUP_PARENT": self.cgroup_parent,
            "RECONCILE_CONFIG": str(base / "config"),
            "NO_COLOR": "1",
        }
        for key in ("RECONCILE_HOST", "RECONCILE_CONTEXT", "RECONCILE_SOCKET", "RECONCILE_DOCKER_SOCKET"):
            self.env.pop(key, None)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 20.0) -> Agent:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "agent", "--socket", str(self.socket), *self.extra],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the agent exited with {self.process.returncode}: {self.log.read_text()}")
            if self.answers():
                return self
            time.sleep(0.05)
        raise AssertionError(f"the agent did not answer within {timeout}s: {self.log.read_text()}")

    def answers(self) -> bool:
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(self.socket))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def cli(
        self, *args: str, remote: bool = True, timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        host = ["--host", self.host] if remote else []
        env = kwargs.pop("env", self.env)
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *host, *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        from reconciler.client.transport import UnixConnection

        connection = UnixConnection(str(self.socket), timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def image(self) -> str:
        tarball = busybox_tarball(self.base / "busybox.tar")
        result = self.cli("image", "import", str(tarball), "busybox:local")
        assert result.returncode == 0, result.stderr
        return "busybox:local"

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        clean_engine(str(self.root), self.cgroup_parent)
        remove_networks(self.root)


def tear_down_networks(engine: Any) -> None:
    """Every endpoint detached and every network removed (the DNS daemon and the
    nftables table go with the last one), whatever state a test left them in."""
    from reconciler.network import ipam

    manager = engine.wiring.network_manager()
    owners = {e.container for e in manager.db.list_endpoints()}
    owners |= {
        lease.owner.removeprefix("container/")
        for lease in manager.db.list_leases()
        if lease.owner != ipam.GATEWAY_OWNER
    }
    for container in owners:
        with contextlib.suppress(Exception):
            manager.detach(container)
    for record in manager.networks():
        with contextlib.suppress(Exception):
            manager.remove(record.name)


def remove_networks(root: Path) -> None:
    """Whatever networks a test's agent made (the default bridge of a ``docker run``,
    a build's): endpoints, bridges, the nftables table and the DNS daemon go with the
    last one. A DNS daemon left behind is killed and reported: as a detached child of
    this subreaper it would otherwise outlive the test and slow every later cleanup."""
    if (root / "state.db").exists():
        from reconciler.engine.core import Engine
        from reconciler.engine.wiring import EngineConfig

        engine = Engine(EngineConfig(root=str(root)))
        try:
            tear_down_networks(engine)
        finally:
            engine.close()
    pid_file = root / "dns.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
        raise AssertionError(f"the DNS daemon of {root} was left running")


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[Agent]]:
    """Agents a test makes with ``make(name, *flags)``; all cleaned up after it."""
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # detached monitors are reaped here
    made: list[Agent] = []
    try:
        yield made
    finally:
        for agent in made:
            agent.cleanup()


def make_agent(agents: list[Agent], base: Path, *extra: str, start: bool = True) -> Agent:
    agent = Agent(base, *extra)
    agents.append(agent)
    return agent.start() if start else agent
