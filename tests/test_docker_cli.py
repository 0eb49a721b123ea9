"""The real ``docker`` CLI (28.x, ``/usr/local/bin/docker``) against our agent's
Docker API: version negotiation, attached and detached runs, the lifecycle, logs,
inspect, exec, cp both ways, top, stats; and Docker's error answers on bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_fixtures import DockerAgent
from tests.docker_fixtures import docker_agent as docker_agent  # a fixture, used by name

pytestmark = pytest.mark.requires_root

DOCKER = os.environ.get("RECONCILE_TEST_DOCKER", "/usr/local/bin/docker")


@pytest.fixture(scope="module")
def cli(docker_agent: DockerAgent) -> Iterator[DockerAgent]:
    if not os.access(DOCKER, os.X_OK):
        pytest.skip(f"no docker CLI at {DOCKER}")  # a failure under CI=true (conftest)
    yield docker_agent


def environment(agent: DockerAgent) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(agent.config),
        "DOCKER_CONFIG": str(agent.config),
        "DOCKER_HOST": agent.base_url,
    }


def docker(
    agent: DockerAgent, *args: str, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args], env=environment(agent), capture_output=True, text=True, timeout=timeout, input=input
    )  # a timeout kills it (SIGKILL): nothing is left running


def ok(agent: DockerAgent, *args: str, **kwargs: object) -> str:
    result = docker(agent, *args, **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.returncode} {result.stdout} {result.stderr}"
    return result.stdout


def inspect(agent: DockerAgent, name: str) -> dict[str, object]:
    document = json.loads(ok(agent, "inspect", name))
    assert isinstance(document, list) and len(document) == 1
    return document[0]  # type: ignore[no-any-return]


def test_version_and_info(cli: DockerAgent) -> None:
    version = ok(cli, "version", "--format", "{{json .}}")
    server = json.loads(version)["Server"]
    assert server["ApiVersion"] == "1.50" and server["MinAPIVersion"] == "1.24"
    info = json.loads(ok(cli, "info", "--format", "{{json .}}"))
    assert info["OSType"] == "linux" and info["Swarm"]["LocalNodeState"] == "inactive"


def test_attached_run_propagates_output_and_exit_code(cli: DockerAgent) -> None:
    assert docker(cli, "run", "--rm", cli.image, "true").returncode == 0
    result = docker(cli, "run", "--rm", cli.image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    tty = docker(cli, "run", "--rm", "-t", cli.image, "sh", "-c", "echo on-a-tty; exit 2")
    assert tty.returncode == 2 and "on-a-tty" in tty.stdout
    missing = docker(cli, "run", "--rm", cli.image, "no-such-command")  # --rm: removed though it never started
    assert missing.returncode == 127 and "executable file not found" in missing.stderr
    piped = docker(cli, "run", "-i", "--rm", cli.image, "sh", "-c", "cat; echo done >&2; exit 6", input="in\n")
    assert (piped.returncode, piped.stdout, piped.stderr) == (6, "in\n", "done\n")
    assert not [n for n in cli.names() if n.startswith(cli.prefix)], "--rm left a container"
    named = cli.name("kept")
    result = docker(cli, "run", "--name", named, cli.image, "sh", "-c", "echo kept-output; exit 4")
    assert (result.returncode, result.stdout) == (4, "kept-output\n")
    assert ok(cli, "logs", named) == "kept-output\n"  # what an attached run printed is in its log too
    assert inspect(cli, named)["State"] == {**inspect(cli, named)["State"], "Status": "exited", "ExitCode": 4}  # type: ignore[dict-item]
    ok(cli, "rm", named)


def test_detached_container_lifecycle(cli: DockerAgent) -> None:
    name = cli.name("web")
    ident = ok(cli, "run", "-d", "--name", name, "-e", "K=V", "--label", "suite=docker", cli.image,
               "sh", "-c", "echo started; echo oops >&2; exec sleep 1000").strip()  # fmt: skip
    try:
        assert len(ident) == 64
        assert ident[:12] in ok(cli, "ps", "-q").split()
        assert ident[:12] in ok(cli, "ps", "-a", "-q").split()
        assert ok(cli, "ps", "--filter", f"name={name}", "--format", "{{.Names}}").split() == [name]
        assert ok(cli, "ps", "--filter", "label=suite=docker", "--format", "{{.Names}} {{.State}}").split() == [
            name,
            "running",
        ]
        assert ok(cli, "ps", "-a", "--filter", "name=nothing-is-called-this", "-q") == ""
        logs = docker(cli, "logs", name)
        assert (logs.stdout, logs.stderr) == ("started\n", "oops\n")
        stamped = ok(cli, "logs", "-t", "--tail", "1", name)
        assert stamped.endswith(" started\n") or docker(cli, "logs", "-t", "--tail", "1", name).stderr.endswith(
            " oops\n"
        )
        document = inspect(cli, name)
        state = document["State"]
        assert isinstance(state, dict) and state["Running"] and state["Status"] == "running" and state["Pid"] > 0
        assert document["Id"] == ident and document["Name"] == f"/{name}"
        config = document["Config"]
        assert isinstance(config, dict) and config["Image"] == cli.image and "K=V" in config["Env"]
        assert config["Labels"] == {"suite": "docker"} and config["Tty"] is False
        networks = document["NetworkSettings"]["Networks"]  # type: ignore[index]
        assert networks["bridge"]["IPAddress"]  # Docker's default network
        assert document["HostConfig"]["LogConfig"]["Type"] == "json-file"  # type: ignore[index]
        assert ok(cli, "inspect", "-f", "{{.State.Status}}", ident[:12]).strip() == "running"  # a prefix is an id

        exec_result = docker(cli, "exec", "-e", "X=1", "-w", "/tmp", name, "sh", "-c", "echo $X $(pwd); exit 7")
        assert (exec_result.returncode, exec_result.stdout) == (7, "1 /tmp\n")
        assert ok(cli, "exec", "-i", name, "cat", input="from stdin\n") == "from stdin\n"

        top = ok(cli, "top", name)
        assert "PID" in top and "sleep 1000" in top
        stats = ok(cli, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}")
        assert f"{name} 1" in stats.splitlines()

        ok(cli, "pause", name)
        assert inspect(cli, name)["State"]["Paused"] is True  # type: ignore[index]
        ok(cli, "unpause", name)
        assert inspect(cli, name)["State"]["Paused"] is False  # type: ignore[index]

        pid = inspect(cli, name)["State"]["Pid"]  # type: ignore[index]
        ok(cli, "restart", "-t", "0", name)
        restarted = inspect(cli, name)["State"]
        assert restarted["Running"] and restarted["Pid"] != pid  # type: ignore[index]

        ok(cli, "stop", "-t", "0", name)
        stopped = inspect(cli, name)["State"]
        assert stopped["Status"] == "exited" and stopped["Running"] is False  # type: ignore[index]
        ok(cli, "stop", name)  # already stopped: 304, which is no error
        ok(cli, "start", name)
        ok(cli, "kill", name)
        assert inspect(cli, name)["State"]["ExitCode"] == 137  # type: ignore[index]
        ok(cli, "start", name)
        refused = docker(cli, "rm", name)
        assert refused.returncode == 1 and "container is running" in refused.stderr
    finally:
        ok(cli, "rm", "-f", name)
    missing = docker(cli, "inspect", name)
    assert missing.returncode == 1 and "No such object" in missing.stderr


def test_create_start_wait(cli: DockerAgent) -> None:
    name = cli.name("batch")
    ident = ok(cli, "create", "--name", name, cli.image, "sh", "-c", "echo from-create; exit 5").strip()
    try:
        again = docker(cli, "create", "--name", name, cli.image, "true")
        assert again.returncode == 1 and f'is already in use by container "{ident}"' in again.stderr
        assert ok(cli, "ps", "-a", "--filter", f"name={name}", "--format", "{{.State}}").strip() == "created"
        ok(cli, "start", name)
        assert ok(cli, "wait", name).strip() == "5"
        assert ok(cli, "logs", name) == "from-create\n"
        attached = docker(cli, "start", "-a", name)
        assert (attached.returncode, attached.stdout) == (5, "from-create\n")
    finally:
        ok(cli, "rm", name)


def test_cp_both_ways(cli: DockerAgent, tmp_path: Path) -> None:
    running, created = cli.name("cp-run"), cli.name("cp-created")
    (tmp_path / "in.txt").write_text("into the container\n")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "deep.txt").write_text("deep\n")
    ok(cli, "run", "-d", "--name", running, cli.image, "sleep", "1000")
    ok(cli, "create", "--name", created, cli.image, "cat", "/data/in.txt")
    try:
        ok(cli, "cp", str(tmp_path / "in.txt"), f"{running}:/tmp/")
        assert ok(cli, "exec", running, "cat", "/tmp/in.txt") == "into the container\n"
        ok(cli, "cp", str(tmp_path / "tree"), f"{running}:/tmp/")
        ok(cli, "cp", f"{running}:/tmp/tree", str(tmp_path / "back"))
        assert (tmp_path / "back" / "sub" / "deep.txt").read_text() == "deep\n"
        ok(cli, "cp", f"{running}:/bin/busybox", str(tmp_path / "busybox"))
        assert (tmp_path / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
        missing = docker(cli, "cp", f"{running}:/no/such/file", str(tmp_path / "x"))
        assert missing.returncode == 1 and "Could not find the file" in missing.stderr

        ok(cli, "cp", str(tmp_path / "in.txt"), f"{created}:/data/")  # not started: into its upper layer
        ok(cli, "cp", f"{created}:/data/in.txt", str(tmp_path / "created.txt"))
        assert (tmp_path / "created.txt").read_text() == "into the container\n"
        result = docker(cli, "start", "-a", created)
        assert (result.returncode, result.stdout) == (0, "into the container\n")
        ok(cli, "cp", f"{created}:/data/in.txt", str(tmp_path / "exited.txt"))  # exited
        assert (tmp_path / "exited.txt").read_text() == "into the container\n"
    finally:
        ok(cli, "rm", "-f", running, created)


def test_errors_as_docker_clients_expect(cli: DockerAgent) -> None:
    status, body = cli.request("GET", "/v1.50/no/such/endpoint")
    assert (status, body) == (404, {"message": "page not found"})
    status, body = cli.request("GET", "/v1.51/version")
    assert status == 400 and "too new" in body["message"]
    status, body = cli.request("GET", "/v1.12/version")
    assert status == 400 and "too old" in body["message"]
    status, body = cli.request(
        "POST", "/v1.50/containers/create", body=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and "message" in body
    status, body = cli.request(
        "POST", "/v1.50/containers/create", body=b'{"Image": "no-such-image:1"}', headers={"Content-Type": "x"}
    )
    assert (status, body) == (404, {"message": "No such image: no-such-image:1"})
    status, body = cli.request("GET", "/v1.50/swarm")
    assert status == 503 and "not a swarm manager" in body["message"]
    status, body = cli.request("GET", "/v1.50/containers/no-such-container/json")
    assert (status, body) == (404, {"message": "No such container: no-such-container"})
    result = docker(cli, "rm", "no-such-container")
    assert result.returncode == 1 and "No such container: no-such-container" in result.stderr


def test_ctrl_c_reaches_an_attached_run(cli: DockerAgent) -> None:
    """The CLI forwards SIGINT as ``POST /containers/{id}/kill?signal=INT``."""
    name = cli.name("ctrl-c")
    script = "trap 'echo got-int; exit 130' INT; echo ready; while true; do sleep 0.1; done"
    process = subprocess.Popen(
        [DOCKER, "run", "--rm", "--name", name, cli.image, "sh", "-c", script],
        env=environment(cli),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
        assert (process.returncode, rest) == (130, "got-int\n")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
            docker(cli, "rm", "-f", name)
    assert name not in cli.names()


def test_container_prune_removes_stopped_ones_only(cli: DockerAgent) -> None:
    stopped, running = cli.name("pruned"), cli.name("kept-running")
    ok(cli, "run", "--name", stopped, cli.image, "true")
    ok(cli, "run", "-d", "--name", running, cli.image, "sleep", "1000")
    try:
        ok(cli, "container", "prune", "-f")
        names = cli.names()
        assert stopped not in names and running in names
    finally:
        docker(cli, "rm", "-f", stopped, running)
