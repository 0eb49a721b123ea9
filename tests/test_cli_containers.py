"""The container commands as users run them: `reconcile image import`, `run`, `ps`,
`logs`, `exec`, `stop`, `rm`, each a real process against a real kernel (root)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime import cgroups, linux, netns
from reconciler.runtime.state import StateStore

REPO = Path(__file__).resolve().parent.parent


def busybox_tarball(path: Path) -> Path:
    """A root filesystem tarball of Debian's busybox-static, as `docker import` takes."""
    with tarfile.open(path, "w") as archive:
        archive.add("/bin/busybox", arcname="bin/busybox")
        for applet in ("sh", "echo", "sleep", "hostname", "cat"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[dict[str, str]]:
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # detached monitors are reaped here
    env = {
        **os.environ,
        "RECONCILE_ROOT": str(tmp_path / "root"),
        "RECONCILE_CGROUP_PARENT": f"reconcile-test-{uuid.uuid4().hex[:8]}",
        "NO_COLOR": "1",
    }
    try:
        yield env
    finally:
        clean_engine(env["RECONCILE_ROOT"], env["RECONCILE_CGROUP_PARENT"])


def clean_engine(root: str, cgroup_parent: str) -> None:
    """Kill every container of ``root`` and its monitor, reap them (this process is a
    subreaper), remove their cgroups and netns handles; assert no mount and no cgroup
    is left behind. Shared by every fixture that runs containers."""
    store = StateStore(root)
    killed: list[int] = []
    for name in store.names():
        state = store.read(name)
        for pid in (state.pid, state.monitor_pid) if state else ():
            if pid and pid != os.getpid():  # an attached run in this process records it as the monitor
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # reap what was killed (this process may be their subreaper)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            break
        if not any(_exists(pid) for pid in killed):  # other children (a test's own) are not waited for
            break
        time.sleep(0.02)
    for name in store.names():
        state = store.read(name)  # its cgroup is named by its ID (by its name before IDs existed)
        group = cgroups.new_cgroup(state.cgroup if state else name, parent=cgroup_parent)
        for _ in range(100):  # killed processes leave the group a moment later
            try:
                group.destroy()
                break
            except cgroups.CgroupError:
                time.sleep(0.05)
        netns.remove(store.path(name, "netns"))
    assert_no_mounts_under(Path(root))
    parents = cgroups.new_cgroup("x", parent=cgroup_parent).parent_dirs()
    for directory in parents:
        if os.path.isdir(directory):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
    assert not any(os.path.exists(d) for d in parents), "cgroups left behind"


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_no_mounts_under(path: Path) -> None:
    with open("/proc/self/mountinfo") as handle:
        left = [line.split()[4] for line in handle if line.split()[4].startswith(str(path))]
    assert left == [], f"mounts left behind: {left}"


def reconcile(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def image(engine: dict[str, str], tmp_path: Path) -> str:
    result = reconcile(engine, "image", "import", str(busybox_tarball(tmp_path / "busybox.tar")), "busybox:local")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sha256:")
    return "busybox:local"


@pytest.mark.requires_root
def test_run_rm_prints_output_and_returns_the_exit_code(engine: dict[str, str], image: str) -> None:
    result = reconcile(engine, "run", "--rm", image, "echo", "hello from a container")
    assert (result.returncode, result.stdout) == (0, "hello from a container\n")
    assert reconcile(engine, "run", "--rm", image, "sh", "-c", "exit 3").returncode == 3
    missing = reconcile(engine, "run", "--rm", image, "/bin/nope")
    assert missing.returncode == 127 and "executable not found in container: /bin/nope" in missing.stderr
    unknown = reconcile(engine, "run", "--rm", "--pull", "never", "nosuch:image", "true")  # no registry to ask
    assert unknown.returncode == 125 and "no such image: nosuch:image" in unknown.stderr
    assert not os.listdir(Path(engine["RECONCILE_ROOT"]) / "containers")  # --rm left nothing


@pytest.mark.requires_root
def test_a_detached_container_through_the_cli(engine: dict[str, str], image: str) -> None:
    started = reconcile(engine, "run", "-d", "--name", "web", image, "sh", "-c", "echo started; exec sleep 60")
    assert (started.returncode, started.stdout) == (0, "web\n"), started.stderr
    listing = json.loads(reconcile(engine, "ps", "-o", "json").stdout)
    assert [(c["name"], c["status"]) for c in listing] == [("web", "running")]
    deadline = time.monotonic() + 10
    while reconcile(engine, "logs", "web").stdout != "started\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    exec_result = reconcile(engine, "exec", "web", "--", "hostname")
    assert (exec_result.returncode, exec_result.stdout) == (0, "web\n")
    assert reconcile(engine, "rm", "web").returncode == 1  # running: refused
    assert reconcile(engine, "stop", "-t", "0.2", "web").returncode == 0
    listing = json.loads(reconcile(engine, "ps", "-a", "-o", "json").stdout)
    assert [(c["name"], c["status"], c["exit_code"]) for c in listing] == [("web", "exited", 137)]
    assert reconcile(engine, "rm", "web").returncode == 0
    assert json.loads(reconcile(engine, "ps", "-a", "-o", "json").stdout) == []


def test_a_corrupt_or_escaping_tarball_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    from reconciler.images.store import ImageError, ImageStore

    images = ImageStore(str(tmp_path / "root"))
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(busybox_tarball(tmp_path / "ok.tar").read_bytes()[:5000])
    with pytest.raises(ImageError, match="cannot import"):
        images.import_tarball(str(corrupt), "broken")
    escaping = tmp_path / "escape.tar"
    with tarfile.open(escaping, "w") as archive:
        member = tarfile.TarInfo("../../etc/evil")
        member.size = 4
        archive.addfile(member, io.BytesIO(b"evil"))
    with pytest.raises(ImageError, match="cannot import"):
        images.import_tarball(str(escaping), "evil")
    for kind in ("snapshots", "blobs/sha256", "ingest"):
        directory = tmp_path / "root" / "images" / kind
        assert not directory.exists() or os.listdir(directory) == [], kind
    assert images.images() == {}
    assert not (tmp_path / "etc" / "evil").exists()


def test_image_names_default_to_latest(tmp_path: Path) -> None:
    from reconciler.images.store import ImageStore

    images = ImageStore(str(tmp_path / "root"))
    image = images.import_tarball(str(busybox_tarball(tmp_path / "b.tar")), "busybox")
    assert images.images() == {"busybox:latest": image.manifest_digest}
    assert images.layers("busybox") == images.layers("busybox:latest")


@pytest.mark.requires_root
def test_run_with_volumes_tmpfs_and_hostname(engine: dict[str, str], image: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f").write_text("shared\n")
    result = reconcile(
        engine,
        "run",
        "--rm",
        "--hostname",
        "box",
        "-v",
        f"{shared}:/data:ro",
        "--tmpfs",
        "/scratch:size=1m",
        image,
        "sh",
        "-c",
        "cat /etc/hostname /data/f; grep -c box /etc/hosts; grep -c ' /scratch ' /proc/mounts",
    )
    assert (result.returncode, result.stdout) == (0, "box\nshared\n1\n1\n"), result.stderr
    bad = reconcile(engine, "run", "--rm", "-v", "relative:data", image, "true")  # the target must be absolute
    assert bad.returncode == 125 and "data" in bad.stderr


@pytest.mark.requires_root
def test_run_capabilities_and_memory_floor(engine: dict[str, str], image: str) -> None:
    read = ["sh", "-c", "grep CapEff /proc/self/status"]
    dropped = reconcile(engine, "run", "--rm", "--cap-drop", "ALL", "--cap-add", "net_bind_service", image, *read)
    assert dropped.returncode == 0 and dropped.stdout.split()[1] == f"{1 << 10:016x}"  # CAP_NET_BIND_SERVICE only
    unknown = reconcile(engine, "run", "--rm", "--cap-add", "NOT_A_CAP", image, "true")
    assert unknown.returncode == 125 and "unknown capability 'NOT_A_CAP'" in unknown.stderr
    small = reconcile(engine, "run", "--rm", "-m", "1m", image, "true")
    assert small.returncode == 125 and "minimum memory limit allowed is 6m" in small.stderr


def run_on_a_terminal(env: dict[str, str], *args: str, keys: bytes = b"") -> tuple[int, bytes]:
    """Run the CLI with a pty as its terminal (as a user at a shell), typing ``keys``."""
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        env=env,
        cwd=REPO,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    if keys:
        os.write(master, keys)
    output = b""
    with contextlib.suppress(OSError):  # EIO once every holder of the slave is gone
        while chunk := os.read(master, 4096):
            output += chunk
    os.close(master)
    return process.wait(timeout=30), output


@pytest.mark.requires_root
def test_run_it_gives_an_interactive_shell_a_terminal(engine: dict[str, str], image: str) -> None:
    code, output = run_on_a_terminal(
        engine, "run", "--rm", "-it", image, "sh", keys=b"test -t 0 && echo TTY-$((6*7))\rexit 5\r"
    )
    assert code == 5
    assert b"TTY-42" in output
    code, output = run_on_a_terminal(engine, "run", "--rm", "-t", image, "sh", "-c", "test -t 1 && echo yes")
    assert code == 0 and output.split() == [b"yes"]  # our terminal, not raw without -i, adds its own \r


@pytest.mark.requires_root
def test_stdin_reaches_the_container_only_with_i(engine: dict[str, str], image: str) -> None:
    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "run", "--rm", *flags, image, "cat"],
            env=engine,
            cwd=REPO,
            input="piped in\n",
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert run("-i").stdout == "piped in\n"
    assert run().stdout == ""


@pytest.mark.requires_root
def test_exec_it_kill_pause_inspect_and_stats(engine: dict[str, str], image: str) -> None:
    assert reconcile(engine, "run", "-d", "--init", "--name", "svc", "-m", "32m", image, "sleep", "60").returncode == 0
    code, output = run_on_a_terminal(engine, "exec", "-it", "svc", "sh", keys=b"echo in-$((1+1))\rexit 2\r")
    assert code == 2 and b"in-2" in output

    stats = json.loads(reconcile(engine, "stats", "-o", "json").stdout)
    assert [(s["name"], s["memory_limit"]) for s in stats] == [("svc", 32 << 20)]
    assert stats[0]["pids"] >= 2 and stats[0]["memory_usage"] > 0  # the init and sleep
    assert "svc" in reconcile(engine, "stats").stdout

    assert reconcile(engine, "pause", "svc").returncode == 0
    assert json.loads(reconcile(engine, "inspect", "svc").stdout)[0]["State"]["Paused"] is True
    assert reconcile(engine, "unpause", "svc").returncode == 0

    document = json.loads(reconcile(engine, "inspect", "svc").stdout)[0]
    assert document["State"]["Running"] is True and document["HostConfig"]["Init"] is True
    assert document["HostConfig"]["Memory"] == 32 << 20 and document["Config"]["Image"] == image
    assert document["Image"].startswith("sha256:")  # the image ID, as docker inspect shows it

    bad = reconcile(engine, "kill", "-s", "NOPE", "svc")
    assert bad.returncode == 64 and "unknown signal" in bad.stderr
    assert reconcile(engine, "kill", "-s", "USR1", "svc").returncode == 0  # the init passes it on: sleep dies
    deadline = time.monotonic() + 10
    while json.loads(reconcile(engine, "inspect", "svc").stdout)[0]["State"]["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    state = json.loads(reconcile(engine, "inspect", "svc", "ghost").stdout)
    assert [(s["Name"], s["State"]["ExitCode"], s["State"]["OOMKilled"]) for s in state] == [("/svc", 138, False)]
    assert reconcile(engine, "kill", "svc").returncode == 1  # not running any more
    assert reconcile(engine, "rm", "svc").returncode == 0


@pytest.mark.requires_root
def test_bad_run_flags_are_engine_errors(engine: dict[str, str], image: str) -> None:
    swap = reconcile(engine, "run", "--rm", "--memory-swap", "64m", image, "true")
    assert swap.returncode == 125 and "--memory-swap needs --memory" in swap.stderr
    small = reconcile(engine, "run", "--rm", "-m", "64m", "--memory-swap", "32m", image, "true")
    assert small.returncode == 125 and "must be at least --memory" in small.stderr
    name = reconcile(engine, "run", "--rm", "--name", "a/b", image, "true")
    assert name.returncode == 125 and "invalid container name" in name.stderr
    cleared = reconcile(engine, "run", "--rm", "--entrypoint", "echo", image, "entry")
    assert (cleared.returncode, cleared.stdout) == (0, "entry\n")
    assert os.listdir(Path(engine["RECONCILE_ROOT"]) / "containers") == []
