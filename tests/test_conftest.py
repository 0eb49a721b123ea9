"""The privilege rule: skip without root, except under CI, where a skip is an error."""

from tests.conftest import privilege_verdict


def test_root_runs_everything() -> None:
    assert privilege_verdict(euid=0, ci=True) is None
    assert privilege_verdict(euid=0, ci=False) is None


def test_without_root_a_developer_skips_with_a_reason() -> None:
    assert privilege_verdict(euid=1000, ci=False) == "needs root (uid 0)"


def test_without_root_ci_fails() -> None:
    verdict = privilege_verdict(euid=1000, ci=True)
    assert verdict is not None and verdict.startswith("error: ")
