"""Privilege markers: a test that needs root declares it and skips elsewhere with a
reason. Under CI (``CI=true``) such a skip is an error: CI runs as root and must run
every test.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    for item in items:
        if item.get_closest_marker("requires_root"):
            if os.environ.get("CI") == "true":
                item.add_marker(pytest.mark.xfail(reason="CI must run as root", strict=True, run=False))
                raise pytest.UsageError(f"{item.nodeid} needs root, and under CI every test must run")
            item.add_marker(pytest.mark.skip(reason="needs root (uid 0)"))
