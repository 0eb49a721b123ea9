"""Privilege markers: a test that needs root declares it and skips elsewhere with a
reason. Under CI (``CI=true``) such a skip is an error: CI runs as root and must run
every test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from reconciler.runtime import cgroups
from reconciler.runtime.cgroups import CgroupError, new_cgroup


def privilege_verdict(*, euid: int, ci: bool) -> str | None:
    """None to run a ``requires_root`` test, else why not; ``"error: …"`` fails the run."""
    if euid == 0:
        return None
    if ci:
        return "error: under CI=true every test must run, and this one needs root"
    return "needs root (uid 0)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    verdict = privilege_verdict(euid=os.geteuid(), ci=os.environ.get("CI") == "true")
    if verdict is None:
        return
    for item in items:
        if item.get_closest_marker("requires_root"):
            if verdict.startswith("error: "):
                raise pytest.UsageError(f"{item.nodeid}: {verdict.removeprefix('error: ')}")
            item.add_marker(pytest.mark.skip(reason=verdict))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI every test runs: a test that skips itself there (a peer binary such as
    docker-registry missing, say) fails instead, naming why it would have skipped."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"


@pytest.fixture
def real_group() -> Iterator[cgroups.Cgroup]:
    parent = f"reconcile-test-{uuid.uuid4().hex[:8]}"
    group = new_cgroup("ctr", parent=parent)
    try:
        yield group
    finally:
        for pid in group.pids() if group.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if group.exists():
            with contextlib.suppress(CgroupError):
                group.thaw()
        for _ in range(100):  # killed processes leave the group a moment later
            try:
                group.destroy()
                break
            except CgroupError:
                time.sleep(0.05)
        for directory in group.parent_dirs():
            if os.path.isdir(directory):
                os.rmdir(directory)
        assert not any(os.path.exists(d) for d in group.parent_dirs()), "test cgroups left behind"
