"""The cgroup drivers: v2 against a temporary cgroupfs tree (this host's v2 mount has
no controllers), and whichever version the host has for real, as root.

The real tests use a parent directory of their own, unique per run, and remove it
and every group in it afterwards, even when they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.runtime import cgroups
from reconciler.runtime.cgroups import CgroupError, Limits, new_cgroup, version
from reconciler.runtime.cgroups.v2 import Cgroup2, shares_to_weight

# --- detection


def test_unified_host_with_memory_is_v2(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert version(str(tmp_path)) == 2
    assert isinstance(new_cgroup("a", root=str(tmp_path)), Cgroup2)


def test_hybrid_host_whose_v2_mount_has_no_memory_is_v1(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")
    (tmp_path / "memory").mkdir()
    assert version(str(tmp_path)) == 1


def test_no_cgroups_at_all_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="no cgroup v2 memory controller and no v1 memory hierarchy"):
        version(str(tmp_path))


# --- v2 against a fake cgroupfs


@pytest.fixture
def v2_root(tmp_path: Path) -> Path:
    """A cgroup2 root as the kernel shows it, minus the kernel: plain files."""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return tmp_path


def test_v2_create_delegates_controllers_at_each_level(v2_root: Path) -> None:
    group = new_cgroup("web-1", root=str(v2_root))
    group.create()
    assert (v2_root / "reconcile" / "web-1").is_dir()
    assert (v2_root / "cgroup.subtree_control").read_text() == "+cpuset +cpu +memory +pids"
    assert (v2_root / "reconcile" / "cgroup.subtree_control").read_text() == "+cpuset +cpu +memory +pids"
    group.create()  # idempotent
    assert group.exists()


def test_v2_limits_are_written_in_the_kernels_units(v2_root: Path) -> None:
    group = new_cgroup("web-1", root=str(v2_root))
    group.create()
    group.set(Limits(memory=256 << 20, memory_swap=384 << 20, cpus=0.5, cpu_shares=1024, cpuset="0-1", pids=64))
    path = v2_root / "reconcile" / "web-1"
    assert (path / "memory.max").read_text() == str(256 << 20)
    assert (path / "memory.swap.max").read_text() == str(128 << 20)  # memory_swap counts memory too
    assert (path / "cpu.max").read_text() == "50000 100000"
    assert (path / "cpu.weight").read_text() == "39"
    assert (path / "cpuset.cpus").read_text() == "0-1"
    assert (path / "pids.max").read_text() == "64"

    group.set(Limits())  # lifting every limit
    assert (path / "memory.max").read_text() == "max"
    assert (path / "memory.swap.max").read_text() == "max"
    assert (path / "cpu.max").read_text() == "max 100000"
    assert (path / "cpu.weight").read_text() == "100"
    assert (path / "pids.max").read_text() == "max"


def test_v2_membership_stats_and_freezer(v2_root: Path) -> None:
    group = new_cgroup("web-1", root=str(v2_root))
    group.create()
    path = v2_root / "reconcile" / "web-1"
    group.add(4242)
    assert (path / "cgroup.procs").read_text() == "4242"
    assert group.pids() == [4242]
    (path / "memory.current").write_text("1048576\n")
    (path / "memory.peak").write_text("2097152\n")
    (path / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (path / "pids.current").write_text("3\n")
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    stats = group.stats()
    assert (stats.memory_usage, stats.memory_peak, stats.cpu_usage_ns, stats.pids, stats.oom_kills) == (
        1 << 20,
        2 << 20,
        1_500_000,
        3,
        1,
    )
    (path / "memory.peak").unlink()  # kernels before 5.19 keep no peak
    assert group.stats().memory_peak is None
    group.freeze()
    assert (path / "cgroup.freeze").read_text() == "1"
    group.thaw()
    assert (path / "cgroup.freeze").read_text() == "0"


def test_v2_destroy_is_idempotent_and_refuses_a_busy_group(v2_root: Path) -> None:
    group = new_cgroup("web-1", root=str(v2_root))
    group.create()
    group.set(Limits(memory=64 << 20))
    with pytest.raises(CgroupError, match=r"removing .*web-1"):
        group.destroy()  # a plain directory with files stands in for a group with processes
    for entry in (v2_root / "reconcile" / "web-1").iterdir():
        entry.unlink()  # on cgroupfs the interface files vanish with the directory
    group.destroy()
    group.destroy()
    assert not group.exists()


def test_v1_shares_map_onto_v2_weights() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000


# --- the host's own cgroups, for real


def _spawn(group: cgroups.Cgroup, *argv: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` already inside ``group``, so it never runs unlimited."""
    return subprocess.Popen(argv, preexec_fn=lambda: group.add(os.getpid()))


@pytest.mark.requires_root
def test_a_real_group_limits_counts_freezes_and_goes_away(real_group: cgroups.Cgroup) -> None:
    real_group.create()
    real_group.set(Limits(memory=64 << 20, cpus=0.5, pids=16))
    child = _spawn(real_group, "sleep", "60")
    try:
        with open(f"/proc/{child.pid}/cgroup") as handle:
            lines = handle.read().splitlines()
        assert any(line.endswith(f"/{real_group.parent_dirs()[0].rsplit('/', 1)[1]}/ctr") for line in lines), lines
        assert real_group.pids() == [child.pid]
        stats = real_group.stats()
        assert stats.pids == 1 and stats.memory_usage > 0 and stats.oom_kills == 0
        real_group.freeze()
        real_group.thaw()
    finally:
        child.kill()
        child.wait()


@pytest.mark.requires_root
def test_a_real_oom_kill_is_reported(real_group: cgroups.Cgroup) -> None:
    real_group.create()
    real_group.set(Limits(memory=32 << 20, memory_swap=32 << 20, pids=16))
    child = _spawn(real_group, sys.executable, "-S", "-c", "b = bytearray(256 << 20)")
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert real_group.stats().oom_kills >= 1
