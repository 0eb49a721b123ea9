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

from reconciler.runtime import cgroups, linux
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
        store = StateStore(env["RECONCILE_ROOT"])
        for name in store.names():
            state = store.read(name)
            for pid in (state.pid, state.monitor_pid) if state else ():
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    time.sleep(0.02)
            except ChildProcessError:
                break
        for name in store.names():
            with contextlib.suppress(cgroups.CgroupError):
                cgroups.new_cgroup(name, parent=env["RECONCILE_CGROUP_PARENT"]).destroy()
        parents = cgroups.new_cgroup("x", parent=env["RECONCILE_CGROUP_PARENT"]).parent_dirs()
        for directory in parents:
            if os.path.isdir(directory):
                os.rmdir(directory)
        assert not any(os.path.exists(d) for d in parents), "cgroups left behind"


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
    unknown = reconcile(engine, "run", "--rm", "nosuch:image", "true")
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
    from reconciler.images.local import ImageError, LocalImages

    images = LocalImages(str(tmp_path / "root"))
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
    layers = tmp_path / "root" / "images" / "layers"
    assert not layers.exists() or os.listdir(layers) == []
    assert images.images() == {}
    assert not (tmp_path / "etc" / "evil").exists()


def test_image_names_default_to_latest(tmp_path: Path) -> None:
    from reconciler.images.local import LocalImages

    images = LocalImages(str(tmp_path / "root"))
    digest = images.import_tarball(str(busybox_tarball(tmp_path / "b.tar")), "busybox")
    assert images.images() == {"busybox:latest": digest}
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
    bad = reconcile(engine, "run", "--rm", "-v", "relative:/data", image, "true")
    assert bad.returncode == 125 and "invalid volume" in bad.stderr


@pytest.mark.requires_root
def test_run_capabilities_and_memory_floor(engine: dict[str, str], image: str) -> None:
    read = ["sh", "-c", "grep CapEff /proc/self/status"]
    dropped = reconcile(engine, "run", "--rm", "--cap-drop", "ALL", "--cap-add", "net_bind_service", image, *read)
    assert dropped.returncode == 0 and dropped.stdout.split()[1] == f"{1 << 10:016x}"  # CAP_NET_BIND_SERVICE only
    unknown = reconcile(engine, "run", "--rm", "--cap-add", "NOT_A_CAP", image, "true")
    assert unknown.returncode == 125 and "unknown capability 'NOT_A_CAP'" in unknown.stderr
    small = reconcile(engine, "run", "--rm", "-m", "1m", image, "true")
    assert small.returncode == 125 and "minimum memory limit allowed is 6m" in small.stderr
