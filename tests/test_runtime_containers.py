"""Detached containers, for real (root, busybox): they outlive the engine that
started them, their exit code is recorded with no engine alive, and stop, kill,
pause and delete behave as Docker's. Nothing is left on the host afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime import cgroups, linux, logread, spawn
from reconciler.runtime.containers import ContainerError, Runtime

pytestmark = pytest.mark.requires_root
ROOT_OF_REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    # orphaned monitors come to us, as they would to an agent that is a subreaper
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    rt = Runtime(str(tmp_path / "state"), cgroup_parent=f"reconcile-test-{uuid.uuid4().hex[:8]}")
    try:
        yield rt
    finally:
        for state in rt.containers():
            for pid in (state.pid, state.monitor_pid):
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # reap the monitors and outer processes
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.02)
        for name in rt.store.names():
            with contextlib.suppress(cgroups.CgroupError):
                cgroups.new_cgroup(name, parent=rt.cgroup_parent).destroy()
        parents = cgroups.new_cgroup("x", parent=rt.cgroup_parent).parent_dirs()
        for directory in parents:
            if os.path.isdir(directory):
                os.rmdir(directory)
        assert not any(os.path.exists(d) for d in parents), "cgroups left behind"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    root.chmod(0o755)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "sleep", "echo", "cat"):
        (root / "bin" / applet).symlink_to("busybox")
    return root


def config(rootfs: Path, script: str) -> spawn.Config:
    return spawn.Config(rootfs=str(rootfs), argv=["sh", "-c", script], env=["PATH=/bin"], hostname="c")


def wait_for(predicate, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def start_from_another_process(runtime: Runtime, rootfs: Path, name: str, script: str) -> None:
    """An engine process that creates and starts a container, then exits."""
    engine = (
        "import sys\n"
        "from reconciler.runtime import containers, spawn, cgroups\n"
        f"rt = containers.Runtime({runtime.root!r}, cgroup_parent={runtime.cgroup_parent!r})\n"
        f"cfg = spawn.Config(rootfs={str(rootfs)!r}, argv=['sh', '-c', {script!r}], env=['PATH=/bin'])\n"
        f"rt.create({name!r}, cfg, cgroups.Limits(memory=64 << 20, pids=32))\n"
        f"print(rt.start({name!r}).status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", engine], capture_output=True, text=True, cwd=ROOT_OF_REPO, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "running"


def test_a_container_outlives_its_engine_logs_both_streams_and_stops(runtime: Runtime, rootfs: Path) -> None:
    start_from_another_process(runtime, rootfs, "web", "echo out; echo err >&2; exec sleep 60")
    state = runtime.inspect("web")
    assert state.status == "running" and os.path.exists(f"/proc/{state.pid}")
    log = runtime.store.path("web", "container.log")
    wait_for(lambda: len(logread.read(log)) == 2)
    assert [(e.stream, e.text) for e in logread.read(log)] == [("stdout", "out\n"), ("stderr", "err\n")]
    # pid 1 ignores SIGTERM it has no handler for: the grace period runs out, then SIGKILL
    stopped = runtime.stop("web", grace=0.3)
    assert (stopped.status, stopped.exit_code) == ("exited", 137)
    runtime.delete("web")
    assert runtime.containers() == []


def test_the_exit_code_is_recorded_with_no_engine_alive(runtime: Runtime, rootfs: Path) -> None:
    start_from_another_process(runtime, rootfs, "job", "sleep 0.2; exit 7")
    wait_for(lambda: runtime.inspect("job").status == "exited")
    state = runtime.inspect("job")
    assert state.exit_code == 7 and state.oom_killed is False and state.finished_at is not None


def test_an_oom_kill_is_recorded(runtime: Runtime, rootfs: Path) -> None:
    (rootfs / "bin" / "head").symlink_to("busybox")
    (rootfs / "bin" / "tr").symlink_to("busybox")
    runtime.create(
        "hog",
        config(rootfs, "x=$(head -c 67108864 /dev/zero | tr '\\0' a)"),
        cgroups.Limits(memory=16 << 20, memory_swap=16 << 20),
    )
    runtime.start("hog")
    wait_for(lambda: runtime.inspect("hog").status == "exited")
    state = runtime.inspect("hog")
    assert state.oom_killed is True and state.exit_code == 137


def test_a_failed_start_reports_and_leaves_no_cgroup(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("bad", spawn.Config(rootfs=str(rootfs), argv=["/bin/nope"], env=["PATH=/bin"]))
    with pytest.raises(ContainerError, match="executable not found in container: /bin/nope"):
        runtime.start("bad")
    state = runtime.inspect("bad")
    assert (state.status, state.exit_code) == ("exited", 127)
    assert not cgroups.new_cgroup("bad", parent=runtime.cgroup_parent).exists()


def test_pause_unpause_kill_and_delete_rules(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("app", config(rootfs, "exec sleep 60"))
    runtime.start("app")
    with pytest.raises(ContainerError, match="already exists"):
        runtime.create("app", config(rootfs, "true"))
    runtime.pause("app")
    assert runtime.inspect("app").status == "paused"
    group = cgroups.new_cgroup("app", parent=runtime.cgroup_parent)
    freezer = os.path.join(group.parent_dirs()[0], "app")  # v1: freezer.state; v2: cgroup.freeze
    frozen = [os.path.join(d, "app", "freezer.state") for d in group.parent_dirs() if "/freezer/" in d]
    if frozen:
        wait_for(lambda: Path(frozen[0]).read_text().strip() == "FROZEN")
    else:
        assert Path(freezer, "cgroup.freeze").read_text().strip() == "1"
    runtime.unpause("app")
    assert runtime.inspect("app").status == "running"
    with pytest.raises(ContainerError, match="stop it first"):
        runtime.delete("app")
    runtime.kill("app", signal.SIGKILL)
    wait_for(lambda: runtime.inspect("app").status == "exited")
    assert runtime.inspect("app").exit_code == 137
    runtime.delete("app")
    with pytest.raises(ContainerError, match="no such container"):
        runtime.inspect("app")


def test_a_container_whose_monitor_died_is_reported_not_lost(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("orphan", config(rootfs, "exec sleep 60"))
    state = runtime.start("orphan")
    os.kill(state.monitor_pid, signal.SIGKILL)
    os.kill(state.pid, signal.SIGKILL)
    wait_for(lambda: runtime.inspect("orphan").status == "exited")
    assert "exit code unknown" in (runtime.inspect("orphan").error or "")


def test_exec_runs_inside_the_running_container(runtime: Runtime, rootfs: Path) -> None:
    (rootfs / "bin" / "hostname").symlink_to("busybox")
    (rootfs / "bin" / "ls").symlink_to("busybox")
    runtime.create(
        "app",
        spawn.Config(rootfs=str(rootfs), argv=["sleep", "60"], env=["PATH=/bin", "GREETING=hi"], hostname="app-host"),
        cgroups.Limits(pids=16),
    )
    state = runtime.start("app")
    read_end, write_end = os.pipe()
    script = 'echo "$GREETING $(hostname) pid=$$"; ls /proc | grep -c "^[0-9]"; cat /proc/self/cgroup; exit 5'
    try:
        code = runtime.exec("app", ["sh", "-c", script], stdout=write_end, stderr=write_end)
    finally:
        os.close(write_end)
    with os.fdopen(read_end) as handle:
        out = handle.read()
    assert code == 5
    first, count, *cgroup_lines = out.splitlines()
    assert first.startswith("hi app-host pid=") and first != "hi app-host pid=1"  # in its pid namespace, not pid 1
    assert int(count) <= 4  # sleep (pid 1), sh, ls, grep: no host process
    assert cgroup_lines  # and its cgroup namespace shows it at the root of the container's group
    assert os.path.exists(f"/proc/{state.pid}")  # the container runs on


def test_exec_errors_are_dockers(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("app", config(rootfs, "exec sleep 60"))
    runtime.start("app")
    with pytest.raises(spawn.StartError) as info:
        runtime.exec("app", ["/bin/nope"])
    assert info.value.exit_code == 127 and "executable not found in container: /bin/nope" in str(info.value)
    runtime.stop("app", grace=0)
    with pytest.raises(ContainerError, match="not running"):
        runtime.exec("app", ["true"])
