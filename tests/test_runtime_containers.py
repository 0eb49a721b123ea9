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

from reconciler.runtime import cgroups, linux, logread, netns, spawn
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
                if pid and pid != os.getpid():  # a foreground run records us as its monitor
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
            with contextlib.suppress(cgroups.CgroupError, ContainerError):
                rt.cgroup(name).destroy()
            netns.remove(rt.store.path(name, "netns"))
        assert mounts_under(tmp_path) == [], "mounts left behind"
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
    assert not runtime.cgroup("bad").exists()


def test_pause_unpause_kill_and_delete_rules(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("app", config(rootfs, "exec sleep 60"))
    runtime.start("app")
    with pytest.raises(ContainerError, match="already exists"):
        runtime.create("app", config(rootfs, "true"))
    runtime.pause("app")
    assert runtime.inspect("app").status == "paused"
    group = runtime.cgroup("app")
    ident = runtime.inspect("app").id  # cgroups are named by container ID
    freezer = os.path.join(group.parent_dirs()[0], ident)  # v1: freezer.state; v2: cgroup.freeze
    frozen = [os.path.join(d, ident, "freezer.state") for d in group.parent_dirs() if "/freezer/" in d]
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


def zombies_of(pid: int) -> list[int]:
    """Children of ``pid`` (as the host sees them) that exited and wait to be reaped.
    A zombie has already left its cgroup, so the host's process table is asked."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
                if fields[0] == "Z" and int(fields[1]) == pid:
                    found.append(int(entry))
    return found


def test_init_forwards_signals_and_reaps_orphans(runtime: Runtime, rootfs: Path) -> None:
    # an orphan of a subshell is reparented to pid 1; `sleep` as pid 1 would leave it a zombie
    script = "(sleep 0.2 &); exec sleep 60"
    runtime.create("plain", config(rootfs, script))
    runtime.create("init", config(rootfs, script)._replace(init=True))
    plain = runtime.start("plain")
    init = runtime.start("init")
    wait_for(lambda: len(zombies_of(plain.pid)) == 1)
    time.sleep(0.5)
    assert zombies_of(init.pid) == []
    # pid 1 without a handler ignores SIGTERM (killed after the grace period: 137);
    # an init passes it on to sleep, which dies of it (143)
    assert runtime.stop("init", grace=30).exit_code == 143
    assert runtime.stop("plain", grace=0.3).exit_code == 137


def test_init_is_pid_1_and_the_command_its_child(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("pids", config(rootfs, "echo $$; exit 7")._replace(init=True))
    runtime.start("pids")
    wait_for(lambda: runtime.inspect("pids").status == "exited")
    assert runtime.inspect("pids").exit_code == 7
    log = runtime.store.path("pids", "container.log")
    assert [e.text for e in logread.read(log)] == ["2\n"]


def test_exec_with_a_terminal(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("term", config(rootfs, "exec sleep 60"))
    runtime.start("term")
    master, slave = os.openpty()
    try:
        code = runtime.exec(
            "term",
            ["sh", "-c", "test -t 0 && test -t 1 && echo on a tty"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            tty=True,
        )
        os.close(slave)
        output = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 1024):
                output += chunk
    finally:
        os.close(master)
    assert (code, output) == (0, b"on a tty\r\n")
    runtime.stop("term", grace=0)


def test_a_foreground_run_is_recorded_and_removed(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("fg", config(rootfs, "exit 4"))
    assert runtime.run("fg") == 4
    state = runtime.inspect("fg")
    assert (state.status, state.exit_code) == ("exited", 4)
    runtime.delete("fg")
    runtime.create("gone", config(rootfs, "exit 0"))
    assert runtime.run("gone", remove=True) == 0
    assert runtime.store.names() == []


def test_an_engine_killed_while_preparing_leaves_a_visible_container(runtime: Runtime, rootfs: Path) -> None:
    runtime.reserve("half")  # what a killed `run` leaves: the name claimed, no spec yet
    state = runtime.inspect("half")
    assert (state.status, state.spec) == ("created", {})
    with pytest.raises(ContainerError, match="never fully created"):
        runtime.start("half")
    with pytest.raises(ContainerError, match="already exists"):
        runtime.reserve("half")
    runtime.delete("half")
    assert runtime.store.names() == []
    with pytest.raises(ContainerError, match="invalid container name"):
        runtime.reserve("../escape")


def test_a_start_killed_half_way_is_cleaned_up_by_the_next_engine(runtime: Runtime, rootfs: Path) -> None:
    # a start killed after the cgroup got a process but before the state said so
    runtime.create("stuck", config(rootfs, "echo second start; exit 3"))
    group = runtime.cgroup("stuck")
    group.create()
    leftover = subprocess.Popen(["sleep", "60"])
    try:
        group.add(leftover.pid)
        state = runtime.start("stuck")  # reaps what the killed start left, then starts
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        wait_for(lambda: runtime.inspect("stuck").status == "exited")
        assert runtime.inspect("stuck").exit_code == 3 and state.pid != leftover.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            leftover.kill()
        leftover.wait()
    # delete does the same for a container that was never started again
    runtime.create("stuck2", config(rootfs, "exit 0"))
    group2 = runtime.cgroup("stuck2")
    group2.create()
    other = subprocess.Popen(["sleep", "60"])
    try:
        group2.add(other.pid)
        runtime.delete("stuck2")
        assert other.wait(timeout=10) == -signal.SIGKILL
        assert not group2.exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            other.kill()
        other.wait()


def test_an_engine_killed_during_a_foreground_run_leaves_a_container_it_finds(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("fgkill", config(rootfs, "exec sleep 60"))
    engine = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from reconciler.runtime import containers\n"
            f"containers.Runtime({runtime.root!r}, cgroup_parent={runtime.cgroup_parent!r}).run('fgkill')\n",
        ],
        cwd=ROOT_OF_REPO,
    )
    wait_for(lambda: runtime.inspect("fgkill").status == "running")
    engine.kill()
    engine.wait()
    state = runtime.inspect("fgkill")
    assert state.status == "running"  # the container runs on without the engine
    os.kill(state.pid, signal.SIGKILL)
    wait_for(lambda: runtime.inspect("fgkill").status == "exited")
    assert "exit code unknown" in (runtime.inspect("fgkill").error or "")
    assert not runtime.cgroup("fgkill").exists()
    runtime.delete("fgkill")


def test_a_cpu_quota_of_half_a_core_shows_in_the_stats(runtime: Runtime, rootfs: Path) -> None:
    runtime.create("busy", config(rootfs, "while :; do :; done"), cgroups.Limits(cpus=0.5))
    runtime.start("busy")
    group = runtime.cgroup("busy")
    time.sleep(0.3)
    before, started = group.stats().cpu_usage_ns, time.monotonic()
    time.sleep(2.0)
    used = (group.stats().cpu_usage_ns - before) / 1e9 / (time.monotonic() - started)
    runtime.stop("busy", grace=0)
    # loosely: throttled well below a whole core, yet clearly running (about 0.5)
    assert 0.2 < used < 0.8, used


def test_cpuset_and_swap_limits_reach_the_kernel(runtime: Runtime, rootfs: Path) -> None:
    limits = cgroups.Limits(memory=64 << 20, memory_swap=96 << 20, cpuset="0")
    runtime.create("pinned", config(rootfs, "cat /proc/self/status; exec sleep 60"), limits)
    state = runtime.start("pinned")
    log = runtime.store.path("pinned", "container.log")
    wait_for(lambda: any("Cpus_allowed_list" in e.text for e in logread.read(log)))
    assert any(e.text.split() == ["Cpus_allowed_list:", "0"] for e in logread.read(log))
    if cgroups.version() == 1:
        memsw = Path("/sys/fs/cgroup/memory", runtime.cgroup_parent, state.id, "memory.memsw.limit_in_bytes")
        if memsw.exists():
            assert int(memsw.read_text()) == 96 << 20
    assert state.status == "running"
    runtime.stop("pinned", grace=0)


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if line.split()[4].startswith(str(path))]


def test_the_network_namespace_is_made_first_and_can_be_wired_before_start(
    runtime: Runtime, rootfs: Path, tmp_path: Path
) -> None:
    runtime.create("wired", config(rootfs, "cat /sys/class/net/lo/operstate; ls /sys/class/net"))
    handle = runtime.store.path("wired", "netns")
    assert netns.is_handle(handle) and runtime.inspect("wired").spec["config"]["netns"] == handle
    # what the network layer will do: configure the namespace before the process exists
    wire = subprocess.run(
        ["nsenter", f"--net={handle}", "ip", "link", "add", "wired0", "type", "veth", "peer", "name", "wired1"],
        capture_output=True,
    )
    assert wire.returncode == 0, wire.stderr
    (rootfs / "bin" / "ls").symlink_to("busybox")
    runtime.start("wired")
    wait_for(lambda: runtime.inspect("wired").status == "exited")
    log = runtime.store.path("wired", "container.log")
    # lo is up (a link that is up reports "unknown"), and the link wired in before start is there
    assert [e.text for e in logread.read(log)] == ["unknown\n", "lo\n", "wired0\n", "wired1\n"]
    runtime.delete("wired")
    assert mounts_under(tmp_path) == [] and not os.path.exists(handle)


def test_host_namespaces_are_shared_on_request(runtime: Runtime, rootfs: Path) -> None:
    (rootfs / "bin" / "readlink").symlink_to("busybox")
    script = "for kind in net ipc uts; do readlink /proc/self/ns/$kind; done"
    shared = config(rootfs, script)._replace(host_namespaces=("net", "ipc", "uts"))
    runtime.create("hostnet", shared)
    assert runtime.inspect("hostnet").spec["config"]["netns"] is None  # no handle to make
    runtime.start("hostnet")
    wait_for(lambda: runtime.inspect("hostnet").status == "exited")
    log = runtime.store.path("hostnet", "container.log")
    seen = [e.text.strip() for e in logread.read(log)]
    assert seen == [os.readlink(f"/proc/self/ns/{kind}") for kind in ("net", "ipc", "uts")]
    with pytest.raises(spawn.StartError, match="unknown namespace"):
        spawn.run(config(rootfs, "true")._replace(host_namespaces=("mnt",)))


def test_loopback_is_up_in_a_namespace_of_its_own(rootfs: Path) -> None:
    # as with docker run --network none: 127.0.0.1 works, nothing else exists
    check = 'test "$(cat /sys/class/net/lo/operstate)" = unknown'
    assert spawn.run(config(rootfs, check)) == 0


def test_stop_sends_the_recorded_stop_signal_first(runtime: Runtime, rootfs: Path) -> None:
    script = 'trap "exit 42" QUIT; trap "" TERM; while :; do sleep 0.05; done'
    runtime.create("quits", config(rootfs, script), stop_signal="SIGQUIT")
    runtime.start("quits")
    time.sleep(0.3)  # let the shell install its traps
    assert runtime.stop("quits", grace=30).exit_code == 42  # SIGTERM would be ignored: 137 after the grace
    with pytest.raises(ContainerError, match="unknown signal"):
        runtime.create("bad", config(rootfs, "true"), stop_signal="SIGNOPE")


def test_nothing_of_the_engine_stays_open_in_a_container(runtime: Runtime, rootfs: Path, tmp_path: Path) -> None:
    # an init never execs, so close-on-exec alone would leave it the engine's files
    with open(tmp_path / "engine-lock", "w"):
        runtime.create("fds", config(rootfs, "exec sleep 60")._replace(init=True))
        state = runtime.start("fds")
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{state.pid}/fd")) == [0, 1, 2]
    runtime.stop("fds", grace=0)


def test_restart_keeps_the_filesystem_and_counts(runtime: Runtime, rootfs: Path) -> None:
    (rootfs / "bin" / "touch").symlink_to("busybox")
    (rootfs / "bin" / "test").symlink_to("busybox")
    runtime.create("again", config(rootfs, "test -f /marker && exit 7; touch /marker; exit 3"))
    runtime.start("again")
    wait_for(lambda: runtime.inspect("again").status == "exited")
    assert runtime.inspect("again").exit_code == 3
    runtime.restart("again")
    wait_for(lambda: runtime.inspect("again").status == "exited")
    state = runtime.inspect("again")
    assert (state.exit_code, state.restart_count) == (7, 1)  # the file written by the first run is still there
    running = runtime.create("busy", config(rootfs, "exec sleep 60"))
    assert running.status == "created"
    runtime.start("busy")
    with pytest.raises(ContainerError, match="stop it first"):
        runtime.restart("busy")
    assert runtime.stop("busy", grace=0).stopped_by_user
    (rootfs / "marker").unlink(missing_ok=True)
