"""Privilege markers: a test that needs root declares it and skips elsewhere with a
reason. Under CI (``CI=true``) such a skip is an error: CI runs as root and must run
every test.
"""

from __future__ import annotations

import os

import pytest


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
