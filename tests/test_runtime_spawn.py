"""Foreground containers from the kernel's own primitives, for real (root, busybox).

Each test builds a busybox root filesystem, runs a shell in it and reads what the
shell saw. Afterwards the host must have no mount, process or cgroup left from it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime import cgroups, linux, process, spawn
from reconciler.runtime.cgroups import Limits

BUSYBOX = "/bin/busybox"  # Debian's busybox-static, installed by .ci/run
APPLETS = ("sh", "echo", "cat", "hostname", "ls", "grep", "wc", "touch", "id", "sleep", "head", "tr")

pytestmark = pytest.mark.requires_root


@pytest.fixture
def rootfs(tmp_path: Path) -> Iterator[Path]:
    if not os.path.exists(BUSYBOX):
        pytest.fail(f"{BUSYBOX} is missing: install busybox-static (.ci/run does)")
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    root.chmod(0o755)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "bin" / "not-executable").write_text("#!/bin/sh\n")
    yield root
    with open("/proc/mounts") as handle:
        leaked = [line for line in handle if str(tmp_path) in line]
    assert not leaked, f"mounts left on the host: {leaked}"


def run(root: Path, script: str, *, cgroup: cgroups.Cgroup | None = None, **options: object) -> tuple[int, str]:
    """Run ``sh -c script`` in ``root``; exit code and combined output."""
    read_end, write_end = os.pipe()
    config = spawn.Config(
        rootfs=str(root),
        argv=["sh", "-c", script],
        env=process.environment(image_env=[], env={}, hostname="box", home="/root"),
        hostname="box",
        capabilities=process.capabilities(add=[], drop=[], all_caps=frozenset()),
        **options,  # type: ignore[arg-type]
    )
    try:
        code = spawn.run(config, stdout=write_end, stderr=write_end, cgroup=cgroup)
    finally:
        os.close(write_end)
    with os.fdopen(read_end) as handle:
        return code, handle.read()


def test_the_process_is_pid_1_alone_with_its_hostname(rootfs: Path) -> None:
    code, out = run(rootfs, 'echo "pid=$$"; hostname; ls /proc | grep -c "^[0-9]"')
    pid_line, hostname, count = out.split()
    assert code == 0
    assert pid_line == "pid=1" and hostname == "box"
    assert int(count) <= 3  # sh, ls, grep: no host process is visible


def test_host_mounts_are_invisible_and_sys_is_read_only(rootfs: Path) -> None:
    code, out = run(rootfs, "cat /proc/mounts; touch /sys/x 2>&1; echo rc=$?")
    assert code == 0
    assert "/work" not in out and str(rootfs) not in out
    assert "rc=1" in out


def test_masked_and_read_only_proc_paths(rootfs: Path) -> None:
    _, out = run(rootfs, "wc -c < /proc/keys; echo 1 > /proc/sys/kernel/domainname 2>&1; echo rc=$?")
    assert out.split()[0] == "0"  # /proc/keys reads as /dev/null
    assert "rc=1" in out


def test_capabilities_are_dockers_default_set(rootfs: Path) -> None:
    _, out = run(rootfs, "grep -E '^Cap(Eff|Bnd)' /proc/self/status")
    expected = linux.capability_mask(sorted(process.DEFAULT_CAPABILITIES))
    assert {line.split()[0]: int(line.split()[1], 16) for line in out.splitlines()} == {
        "CapEff:": expected,
        "CapBnd:": expected,
    }
    assert expected == 0xA80425FB  # what `docker run` shows for CapEff


def test_a_non_root_user_has_no_effective_capabilities(rootfs: Path) -> None:
    code, out = run(rootfs, "id; grep CapEff /proc/self/status", uid=1000, gid=1000, groups=(29, 50))
    assert code == 0
    assert "uid=1000 gid=1000 groups=29,50" in out
    assert "CapEff:\t0000000000000000" in out


def test_a_read_only_root_refuses_writes(rootfs: Path) -> None:
    _, out = run(rootfs, "touch /x 2>&1; echo rc=$?", read_only=True)
    assert "Read-only file system" in out and "rc=1" in out
    assert not (rootfs / "x").exists()


def test_exit_codes_are_the_processs(rootfs: Path) -> None:
    assert run(rootfs, "exit 3")[0] == 3
    assert run(rootfs, "sleep 1 & kill -9 $!; wait $!")[0] == 137  # 128 + SIGKILL, as shells and Docker report


def test_missing_and_non_executable_programs_fail_like_docker(rootfs: Path) -> None:
    for argv, code, message in (
        (["/bin/nope"], 127, "executable not found in container: /bin/nope"),
        (["nope"], 127, "executable not found in container: nope"),
        (["/bin/not-executable"], 126, "permission denied executing /bin/not-executable"),
    ):
        with pytest.raises(spawn.StartError) as info:
            spawn.run(spawn.Config(rootfs=str(rootfs), argv=argv, env=["PATH=/bin"]))
        assert info.value.exit_code == code
        assert message in str(info.value)


def test_a_missing_working_directory_is_a_clear_error(rootfs: Path) -> None:
    with pytest.raises(spawn.StartError, match="cannot change to working directory /srv"):
        spawn.run(spawn.Config(rootfs=str(rootfs), argv=["sh"], cwd="/srv", env=["PATH=/bin"]))


def test_memory_limit_kills_and_is_reported(rootfs: Path, real_group: cgroups.Cgroup) -> None:
    real_group.create()
    real_group.set(Limits(memory=16 << 20, memory_swap=16 << 20, pids=32))
    # a command substitution holds all 64 MiB in the shell's memory: past the limit
    script = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived"
    code, out = run(rootfs, script, cgroup=real_group)
    assert code == 137 and "survived" not in out  # SIGKILLed by the OOM killer
    assert real_group.stats().oom_kills >= 1


def test_pids_limit_stops_a_fork_bomb(rootfs: Path, real_group: cgroups.Cgroup) -> None:
    real_group.create()
    real_group.set(Limits(pids=8))
    script = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 1 & done 2>&1; wait"
    _, out = run(rootfs, script, cgroup=real_group)
    assert "can't fork" in out or "Resource temporarily unavailable" in out


def test_an_overlay_root_takes_writes_in_its_upper_dir_only(rootfs: Path, tmp_path: Path) -> None:
    """Image layers stay untouched; the container's changes land in its upper dir."""
    top = tmp_path / "layer-top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "motd").write_text("from the top layer\n")
    (rootfs / "etc" / "motd").write_text("from the base layer\n")
    (rootfs / "etc" / "hosts").write_text("base\n")
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for directory in (upper, work, merged):
        directory.mkdir()
    merged.chmod(0o755)
    overlay = spawn.Overlay(layers=(str(top), str(rootfs)), upper=str(upper), work=str(work))
    code, out = run(
        merged, "cat /etc/motd; echo changed > /etc/hosts; echo new > /made-here; cat /etc/hosts", overlay=overlay
    )
    assert code == 0
    assert out.splitlines() == ["from the top layer", "changed"]
    assert (rootfs / "etc" / "hosts").read_text() == "base\n"  # the layer is untouched
    assert (upper / "etc" / "hosts").read_text() == "changed\n"
    assert (upper / "made-here").read_text() == "new\n"
    assert list(merged.iterdir()) == []  # the mount never reached the host
    with open("/proc/mounts") as handle:
        assert str(merged) not in handle.read()


def test_overlay_paths_that_would_break_mount_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(spawn.StartError, match="must be absolute"):
        spawn.Overlay(layers=("/a,upperdir=/etc",), upper="/u", work="/w").options()


def test_bind_and_tmpfs_mounts(rootfs: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from the host\n")
    single = tmp_path / "single.conf"
    single.write_text("one file\n")
    mounts = (
        spawn.MountSpec(target="/data", source=str(shared)),
        spawn.MountSpec(target="/ro", source=str(shared), read_only=True),
        spawn.MountSpec(target="/etc/app.conf", source=str(single)),
        spawn.MountSpec(target="/scratch", type="tmpfs", options="size=1m,mode=1777"),
    )
    script = "cat /data/in /etc/app.conf; echo out > /data/out; echo x > /ro/x 2>&1; grep ' /scratch ' /proc/mounts"
    code, out = run(rootfs, script, mounts=mounts)
    assert code == 0
    assert "from the host\none file\n" in out
    assert "Read-only file system" in out
    assert "tmpfs /scratch tmpfs" in out and "size=1024k" in out
    assert (shared / "out").read_text() == "out\n"  # a read-write bind writes through
    assert not (shared / "x").exists()


def test_a_missing_bind_source_is_a_clear_error(rootfs: Path) -> None:
    mounts = (spawn.MountSpec(target="/data", source="/nonexistent/reconcile-test"),)
    with pytest.raises(spawn.StartError) as info:
        spawn.run(spawn.Config(rootfs=str(rootfs), argv=["true"], env=["PATH=/bin"], mounts=mounts))
    assert info.value.exit_code == 125 and "bind source /nonexistent/reconcile-test does not exist" in str(info.value)


def test_an_image_symlink_cannot_move_a_mount_target_out_of_the_root(rootfs: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (rootfs / "escape").symlink_to(str(outside))  # absolute: means /…/outside inside the root
    code, _ = run(rootfs, "true", mounts=(spawn.MountSpec(target="/escape/t", type="tmpfs"),))
    assert code == 0
    assert list(outside.iterdir()) == []  # nothing was created or mounted on the host path


def test_open_files_limit_is_raised_within_the_hosts(rootfs: Path) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code, out = run(rootfs, "ulimit -n")
    expected = spawn.NOFILE if hard == resource.RLIM_INFINITY else min(spawn.NOFILE, hard)
    assert (code, out.strip()) == (0, str(expected))


@pytest.mark.requires_root
def test_copy_up_fills_an_empty_volume_from_the_image_once(tmp_path: Path) -> None:
    from reconciler.runtime import spawn

    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    root.chmod(0o755)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "cat", "ls"):
        (root / "bin" / applet).symlink_to("busybox")
    data = root / "srv" / "data"
    data.mkdir(parents=True)
    (data / "seed.txt").write_text("from the image\n")
    os.chown(data / "seed.txt", 1234, 1234)
    volume = tmp_path / "volume"
    volume.mkdir()
    mount = spawn.MountSpec(target="/srv/data", source=str(volume), copy_up=True)
    config = spawn.Config(rootfs=str(root), argv=["cat", "/srv/data/seed.txt"], env=["PATH=/bin"], mounts=(mount,))
    assert spawn.run(config, stdout=os.open(os.devnull, os.O_WRONLY)) == 0
    assert (volume / "seed.txt").read_text() == "from the image\n"
    assert (volume / "seed.txt").stat().st_uid == 1234
    (volume / "seed.txt").write_text("changed in the volume\n")
    assert spawn.run(config, stdout=os.open(os.devnull, os.O_WRONLY)) == 0  # not empty: no copy again
    assert (volume / "seed.txt").read_text() == "changed in the volume\n"
    assert (data / "seed.txt").read_text() == "from the image\n"  # the image is untouched
