"""Restart policies and crash-loop backoff: which exited containers run again, when."""

from __future__ import annotations

import pytest

from reconciler.control.observe import backoff, wants_restart
from reconciler.runtime.state import ContainerState


def exited(code: int, *, finished: float = 1000.0, restarts: int = 0, stopped: bool = False) -> ContainerState:
    return ContainerState(
        "c", status="exited", exit_code=code, finished_at=finished, restart_count=restarts, stopped_by_user=stopped
    )


@pytest.mark.parametrize(
    ("policy", "state", "expected"),
    [
        ({"name": "no"}, exited(0), False),  # a one-shot that finished: done
        ({"name": "no"}, exited(137), True),  # killed by hand: healed
        ({"name": "on-failure"}, exited(0), False),
        ({"name": "on-failure"}, exited(1), True),
        ({"name": "on-failure", "max_retries": 3}, exited(1, restarts=3), False),
        ({"name": "on-failure", "max_retries": 3}, exited(1, restarts=2, finished=0), True),
        ({"name": "always"}, exited(0), True),
        ({"name": "unless-stopped"}, exited(0), True),
        ({"name": "always"}, exited(0, stopped=True), False),  # the user stopped it
        ({"name": "always"}, exited(1, restarts=5, finished=999.0), False),  # still backing off
        ({"name": "always"}, exited(1, restarts=5, finished=990.0), True),
    ],
)
def test_which_exited_containers_run_again(policy: dict[str, object], state: ContainerState, expected: bool) -> None:
    assert wants_restart(state, policy, now=1000.0) is expected


def test_running_containers_are_never_restarted() -> None:
    assert not wants_restart(ContainerState("c", status="running"), {"name": "always"}, now=1e9)


def test_the_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n) for n in range(5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert backoff(50) == 300.0
