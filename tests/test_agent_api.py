"""The agent serving the engine API, and the CLI as its client: real agents in
subprocesses, real containers, the real CLI with ``--host`` and contexts (root)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.engine import errors
from tests import agent_fixtures
from tests.agent_fixtures import REPO, make_agent

agents = agent_fixtures.agents  # the fixture

pytestmark = pytest.mark.requires_root


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_socket_is_0660_and_answers_pings(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a")
    assert stat.S_IMODE(os.stat(agent.socket).st_mode) == 0o660
    status, body = agent.request("GET", "/_ping")
    assert (status, body) == (200, "OK")
    assert agent.stop() == 0
    assert not agent.socket.exists()  # a stopped agent takes its socket with it
    assert "Traceback" not in agent.log.read_text()


def test_a_world_writable_socket_directory_is_refused(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a", start=False)
    os.chmod(agent.socket.parent, 0o777)
    with pytest.raises(AssertionError, match="world-writable"):
        agent.start()


def test_a_socket_directory_owned_by_another_user_is_refused(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a", start=False)
    os.chown(agent.socket.parent, 65534, 65534)  # nobody's
    with pytest.raises(AssertionError, match="owned by uid 65534"):
        agent.start()
    assert not agent.socket.exists()


def test_a_second_agent_on_the_same_root_is_refused(agents, tmp_path):
    first = make_agent(agents, tmp_path / "a")
    second = make_agent(agents, tmp_path / "b", start=False)
    second.env["RECONCILE_ROOT"] = str(first.root)
    with pytest.raises(AssertionError, match="another agent"):
        second.start()
    assert first.answers()


def test_plain_tcp_needs_insecure_tcp_and_is_warned_about(agents, tmp_path):
    port = _free_port()
    refused = make_agent(agents, tmp_path / "a", "--tcp", f"127.0.0.1:{port}", start=False)
    with pytest.raises(AssertionError, match="--tls-cert"):
        refused.start()
    agent = make_agent(agents, tmp_path / "b", "--tcp", f"127.0.0.1:{port}", "--insecure-tcp")
    assert "plain TCP" in agent.log.read_text()
    result = agent.cli(
        "system", "version", "-o", "json", remote=False, env={**agent.env, "RECONCILE_HOST": f"tcp://127.0.0.1:{port}"}
    )
    assert result.returncode == 0, result.stderr


def test_bad_requests_get_json_errors_and_the_agent_keeps_serving(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a", "--max-body", "2048")
    status, body = agent.request("GET", "/v1/nothing-here")
    assert status == 404 and body["code"] == "not_found"
    json_header = {"Content-Type": "application/json"}
    status, body = agent.request("POST", "/v1/containers", b"{not json", json_header)
    assert status == 400 and "malformed JSON" in body["message"]
    status, body = agent.request("POST", "/v1/containers", json.dumps({"image": "x", "imgae": 1}).encode(), json_header)
    assert status == 400 and "imgae: unknown field" in body["message"]
    status, body = agent.request("POST", "/v1/containers", json.dumps({"image": 5}).encode(), json_header)
    assert status == 400 and "image" in body["message"]
    status, body = agent.request("POST", "/v1/containers", json.dumps({"image": "x" * 4096}).encode(), json_header)
    assert status == 413 and body["code"] == "too_large"
    for path in ("/v1/containers/..", "/v1/containers/%2E%2E", "/v1/containers/a%2Fb", "/v1/containers/-x"):
        status, body = agent.request("GET", path)
        assert status in (400, 404), (path, status, body)
        assert body["code"] in ("invalid", "not_found")
    status, body = agent.request("GET", "/v1/containers/nosuch")
    assert status == 404 and body == {"code": "not_found", "message": body["message"]} and "nosuch" in body["message"]
    status, _ = agent.request("GET", "/v1/containers?all=maybe")
    assert status == 400
    assert agent.request("GET", "/_ping") == (200, "OK")
    assert "Traceback" not in agent.log.read_text()


def test_the_cli_runs_containers_through_the_agent(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a")
    image = agent.image()
    result = agent.cli("run", "--rm", image, "echo", "hello from the agent")
    assert (result.returncode, result.stdout) == (0, "hello from the agent\n"), result.stderr
    result = agent.cli("run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    result = agent.cli("run", "-i", "--rm", image, "cat", input="through stdin\n")
    assert (result.returncode, result.stdout) == (0, "through stdin\n"), result.stderr
    result = agent.cli("run", "--rm", image, "/no/such/thing")
    assert result.returncode == 127, result.stderr
    assert "Traceback" not in result.stderr

    result = agent.cli("run", "-d", "--name", "sleeper", image, "sh", "-c", "echo started; sleep 600")
    assert (result.returncode, result.stdout) == (0, "sleeper\n"), result.stderr
    rows = json.loads(agent.cli("ps", "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("sleeper", "running")]
    local = json.loads(agent.cli("ps", "-o", "json", remote=False).stdout)  # the same root, in-process
    assert [r["name"] for r in local] == ["sleeper"]
    _wait(lambda: agent.cli("logs", "sleeper").stdout == "started\n", what="the log line")
    result = agent.cli("exec", "sleeper", "sh", "-c", "echo inside; exit 4")
    assert (result.returncode, result.stdout) == (4, "inside\n")
    document = json.loads(agent.cli("inspect", "sleeper").stdout)
    assert document[0]["State"]["Running"] is True
    assert agent.cli("stats", "-o", "json").returncode == 0
    assert agent.cli("stop", "-t", "1", "sleeper").returncode == 0
    assert agent.cli("rm", "sleeper").returncode == 0
    assert json.loads(agent.cli("ps", "-a", "-o", "json").stdout) == []
    missing = agent.cli("rm", "sleeper")
    assert missing.returncode == 1 and "no such container" in missing.stderr


def test_ctrl_c_on_an_attached_run_stops_the_container(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a")
    image = agent.image()
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "--host",
            agent.host,
            "run",
            "--rm",
            "--init",
            "--name",
            "fg",
            image,
            "sleep",
            "600",
        ],
        env=agent.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(lambda: '"running"' in agent.cli("ps", "-o", "json").stdout, what="the container to run")
        client.send_signal(signal.SIGINT)
        # forwarded as docker run --sig-proxy does; the init passes it on to sleep, which dies of it
        assert client.wait(timeout=30) == 130  # 128 + SIGINT
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    _wait(lambda: json.loads(agent.cli("ps", "-a", "-o", "json").stdout) == [], what="the --rm container to go")


def test_killing_the_agent_leaves_containers_running_and_cuts_streams_cleanly(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a")
    image = agent.image()
    assert agent.cli("run", "-d", "--name", "survivor", image, "sh", "-c", "echo up; sleep 600").returncode == 0
    pid = json.loads(agent.cli("ps", "-o", "json").stdout)[0]["pid"]
    follower = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "--host", agent.host, "logs", "-f", "survivor"],
        env=agent.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    agent.stop(signal.SIGKILL)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode != 0 and "Traceback" not in err
    assert out == "up\n"
    os.kill(pid, 0)  # still running
    agent.start()
    rows = json.loads(agent.cli("ps", "-o", "json").stdout)
    assert [(r["name"], r["status"], r["pid"]) for r in rows] == [("survivor", "running", pid)]
    assert agent.cli("rm", "-f", "survivor").returncode == 0


def test_two_agents_driven_by_context_with_the_same_names(agents, tmp_path):
    first = make_agent(agents, tmp_path / "a")
    second = make_agent(agents, tmp_path / "b")
    second.env["RECONCILE_CONFIG"] = first.env["RECONCILE_CONFIG"]  # one user, one CLI configuration
    for agent in (first, second):
        agent.image()
    cli = first
    assert cli.cli("context", "create", "one", "--host", first.host, remote=False).returncode == 0
    assert cli.cli("context", "create", "two", "--host", second.host, remote=False).returncode == 0
    listing = json.loads(cli.cli("context", "ls", "-o", "json", remote=False).stdout)
    assert [row["name"] for row in listing] == ["default", "one", "two"]
    for name in ("one", "two"):
        result = cli.cli(
            "--context", name, "run", "-d", "--name", "same", "busybox:local", "sleep", "600", remote=False
        )
        assert result.returncode == 0, result.stderr
    assert cli.cli("context", "use", "two", remote=False).returncode == 0
    on_two = json.loads(cli.cli("ps", "-o", "json", remote=False).stdout)
    on_one = json.loads(cli.cli("--context", "one", "ps", "-o", "json", remote=False).stdout)
    assert [r["name"] for r in on_one] == [r["name"] for r in on_two] == ["same"]
    assert on_one[0]["pid"] != on_two[0]["pid"]
    info = json.loads(cli.cli("system", "info", "-o", "json", remote=False).stdout)
    assert info["host"] == second.host
    for name in ("one", "two"):
        assert cli.cli("--context", name, "rm", "-f", "same", remote=False).returncode == 0


def test_metrics_count_containers_and_requests(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a")
    image = agent.image()
    assert agent.cli("run", "-d", "--name", "counted", image, "sleep", "600").returncode == 0
    status, text = agent.request("GET", "/metrics")
    assert status == 200
    assert 'reconcile_containers{state="running"} 1.0' in text
    assert "reconcile_api_request_duration_seconds_count" in text
    assert agent.cli("rm", "-f", "counted").returncode == 0


def _certificates(directory: Path) -> dict[str, str]:
    """A CA, a server certificate and a client certificate, made with openssl."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    )
    for name in ("server", "client", "stranger"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
        )
    for name in ("server", "client"):
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "1",
        )
    run("req", "-x509", "-key", "stranger.key", "-in", "stranger.csr", "-out", "stranger.pem", "-days", "1")
    return {name: str(directory / name) for name in os.listdir(directory)}


def test_tcp_with_client_certificates(agents, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    files = _certificates(certs)
    port = _free_port()
    agent = make_agent(
        agents,
        tmp_path / "a",
        "--tcp",
        f"127.0.0.1:{port}",
        "--tls-cert",
        files["server.pem"],
        "--tls-key",
        files["server.key"],
        "--tls-ca",
        files["ca.pem"],
    )
    host = f"tcp://127.0.0.1:{port}"
    tls = ["--tls-ca", files["ca.pem"], "--tls-cert", files["client.pem"], "--tls-key", files["client.key"]]
    assert agent.cli("context", "create", "secure", "--host", host, *tls, remote=False).returncode == 0
    result = agent.cli("--context", "secure", "system", "version", "-o", "json", remote=False)
    assert result.returncode == 0, result.stderr
    stranger = ["--tls-ca", files["ca.pem"], "--tls-cert", files["stranger.pem"], "--tls-key", files["stranger.key"]]
    result = agent.cli("--host", host, *stranger, "system", "version", remote=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    plain = agent.cli("--host", host, "system", "version", remote=False)
    assert plain.returncode != 0 and "Traceback" not in plain.stderr


STACK = """apiVersion: reconcile/v1
kind: Image
metadata: {name: base}
spec: {import: {path: base.tar}, tag: "remote-base:1"}
---
apiVersion: reconcile/v1
kind: Container
metadata: {name: ticker}
spec:
  image: base
  network_mode: none
  command: ["sleep", "600"]
"""


def test_once_through_the_agent_sends_the_manifests_and_keeps_paths_and_exit_codes(agents, tmp_path):
    from tests.test_cli_containers import busybox_tarball

    agent = make_agent(agents, tmp_path / "a")
    directory = tmp_path / "stack"
    directory.mkdir()
    busybox_tarball(directory / "base.tar")
    (directory / "stack.yaml").write_text("name: remote\n")
    (directory / "objects.yaml").write_text(STACK.replace("image: base", "imgae: base"))
    broken = agent.cli("--once", str(directory))
    assert broken.returncode == 1
    assert f"{directory}/objects.yaml:10:3: container/ticker: spec.imgae: unknown field" in broken.stderr
    first = agent.cli("--once", str(directory), "-o", "json")
    assert first.returncode == 1  # still the broken file: nothing applied
    (directory / "objects.yaml").write_text(STACK)
    applied = agent.cli("--once", str(directory))
    assert applied.returncode == 2, applied.stderr
    assert "stack remote: 2 created" in applied.stdout
    rows = json.loads(agent.cli("ps", "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("ticker", "running")]
    again = agent.cli("--once", str(directory), "-o", "json")
    assert again.returncode == 0, again.stderr
    status = json.loads(agent.cli("status", "-o", "json").stdout)
    assert {row["key"] for row in status} >= {"image/base", "container/ticker"}
    (directory / "objects.yaml").unlink()
    down = agent.cli("--once", str(directory))
    assert down.returncode == 2, down.stderr
    assert json.loads(agent.cli("ps", "-a", "-o", "json").stdout) == []
    assert "Traceback" not in agent.log.read_text()


def test_an_agent_with_manifests_reconciles_and_serves_the_api(agents, tmp_path):
    from tests.test_cli_containers import busybox_tarball

    directory = tmp_path / "stack"
    directory.mkdir()
    busybox_tarball(directory / "base.tar")
    (directory / "stack.yaml").write_text("name: served\n")
    (directory / "objects.yaml").write_text(STACK)
    agent = make_agent(agents, tmp_path / "a", str(directory), "--resync", "1")
    _wait(lambda: '"running"' in agent.cli("ps", "-o", "json").stdout, what="the agent's pass")
    rows = json.loads(agent.cli("ps", "-o", "json").stdout)
    assert [r["name"] for r in rows] == ["ticker"]
    assert agent.cli("kill", "ticker").returncode == 0  # drift: the loop heals it
    _wait(lambda: '"running"' in agent.cli("ps", "-o", "json").stdout, what="the healed container")
    status, metrics = agent.request("GET", "/metrics")
    assert status == 200 and "reconcile_passes_total" in metrics
    assert agent.stop() == 0
    (directory / "objects.yaml").unlink()
    down = agent.cli("--once", str(directory), remote=False)
    assert down.returncode == 2, down.stderr


def _run_in_terminal(argv: list[str], env: dict[str, str], keys: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as its stdin, stdout and stderr, typing
    ``keys`` once it prints something; its exit code and all it printed."""
    import pty
    import select

    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(REPO)
        os.execvpe(argv[0], argv, env)
    output = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break  # the child closed the terminal: it exited
                if not chunk:
                    break
                output += chunk
            if not typed and (output or time.monotonic() > deadline - timeout + 3):
                os.write(master, keys)
                typed = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    return os.waitstatus_to_exitcode(status), output


def test_run_and_exec_with_a_terminal_through_the_agent(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a")
    image = agent.image()
    command = [sys.executable, "-m", "reconciler", "--host", agent.host]
    code, output = _run_in_terminal(
        [*command, "run", "-it", "--rm", image, "sh"], agent.env, b"tty | grep -q pts && echo IN-A-TTY; exit 5\r"
    )
    assert code == 5 and b"IN-A-TTY" in output, output
    assert agent.cli("run", "-d", "--name", "box", image, "sleep", "600").returncode == 0
    code, output = _run_in_terminal(
        [*command, "exec", "-it", "box", "sh"], agent.env, b"echo $((6 * 7)); [ -t 0 ] && echo IS-A-TTY; exit 3\r"
    )
    assert code == 3 and b"42" in output and b"IS-A-TTY" in output, output
    assert agent.cli("rm", "-f", "box").returncode == 0


def test_clients_that_go_away_mid_stream_or_mid_upload_leave_the_agent_serving(agents, tmp_path):
    agent = make_agent(agents, tmp_path / "a")
    image = agent.image()
    assert (
        agent.cli(
            "run", "-d", "--name", "talker", image, "sh", "-c", "while true; do echo x; sleep 0.1; done"
        ).returncode
        == 0
    )
    for _ in range(5):  # followers that hang up
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(agent.socket))
        sock.sendall(b"GET /v1/containers/talker/logs?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.close()
    for _ in range(3):  # uploads cut half-way
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(agent.socket))
        sock.sendall(
            b"POST /v1/images/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
            b"Content-Length: 10485760\r\n\r\n" + b"\0" * 65536
        )
        sock.close()
    sock = socket.socket(socket.AF_UNIX)  # an attached run whose client vanishes: the container runs on
    sock.connect(str(agent.socket))
    body = json.dumps({"image": image, "name": "orphan", "command": ["sh", "-c", "sleep 1; echo done"]}).encode()
    sock.sendall(
        b"POST /v1/containers/run HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    sock.close()
    _wait(lambda: '"exited"' in agent.cli("ps", "-a", "-o", "json").stdout, what="the orphaned run to finish")
    assert json.loads(agent.cli("inspect", "orphan").stdout)[0]["State"]["ExitCode"] == 0
    assert agent.request("GET", "/_ping") == (200, "OK")
    _wait(lambda: not list(agent.root.glob("upload-*")), what="the cut uploads' spool files to go")
    assert "Traceback" not in agent.log.read_text()
    for name in ("talker", "orphan"):
        assert agent.cli("rm", "-f", name).returncode == 0


def test_removals_through_the_api_during_passes_leave_nothing_half_made(agents, tmp_path):
    """The API's ``rm -f`` and the reconcile loop's passes take the same per-container
    locks: removing what a pass is making, again and again, never leaves a half-made
    container or a deadlock, and the loop brings every container back."""
    from tests.test_cli_containers import busybox_tarball

    directory = tmp_path / "stack"
    directory.mkdir()
    busybox_tarball(directory / "base.tar")
    (directory / "stack.yaml").write_text("name: contended\n")
    names = [f"c{index}" for index in range(4)]
    containers = "".join(
        f"---\napiVersion: reconcile/v1\nkind: Container\nmetadata: {{name: {name}}}\n"
        f"spec: {{image: base, network_mode: none, command: [sleep, '600']}}\n"
        for name in names
    )
    (directory / "objects.yaml").write_text(STACK.split("---")[0] + containers)
    agent = make_agent(agents, tmp_path / "a", str(directory), "--resync", "0.5", "--debounce", "50")
    from reconciler.client.remote import RemoteEngine

    client = RemoteEngine(agent.host)
    for round_ in range(15):  # bounded: each removal races the next pass's re-creation
        for name in names:
            with contextlib.suppress(errors.NotFound):
                client.containers.remove(name, force=True)
        rows = client.containers.list(all=True)
        assert len({row["name"] for row in rows}) == len(rows), rows  # no duplicates
        time.sleep(0.1 * (round_ % 3))

    def converged() -> bool:
        rows = client.containers.list(all=True)
        return sorted((r["name"], r["status"]) for r in rows) == [(name, "running") for name in names]

    _wait(converged, timeout=60, what="the loop to bring every container back")
    assert agent.request("GET", "/_ping") == (200, "OK")
    log = agent.log.read_text()
    assert "Traceback" not in log
    assert agent.stop() == 0
    (directory / "objects.yaml").unlink()
    assert agent.cli("--once", str(directory), remote=False).returncode == 2
