"""Container healthchecks: the config forms, Docker's state machine as a table, and
real probes in busybox containers (root): passing, failing, starting up, timing out
and leaving nothing behind in the container, and a monitor checking several
containers at once. Time is a fake clock wherever the schedule matters.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.model.container import Healthcheck
from reconciler.runtime import health
from reconciler.runtime.containers import Runtime
from reconciler.runtime.health import HealthConfig, HealthState, ProbeResult
from tests.test_runtime_containers import config, rootfs, runtime  # noqa: F401  (fixtures)

APPLETS = ("true", "false", "test", "touch")


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_for(predicate: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def check(test: list[str], **fields: Any) -> HealthConfig:
    defaults: dict[str, Any] = {"interval": 1.0, "timeout": 10.0, "retries": 3, "start_interval": 1.0}
    made = HealthConfig.from_model({"test": test, **defaults, **fields})
    assert made is not None
    return made


def result(code: int) -> ProbeResult:
    return ProbeResult(code, "", 0.01)


# ---------------------------------------------------------------------------- configs


def test_the_manifest_forms_normalize_to_docker_test_lists() -> None:
    shell = HealthConfig.from_model({"test": "curl -f localhost", "interval": "10s", "timeout": 2, "retries": 5})
    assert shell == HealthConfig(("CMD-SHELL", "curl -f localhost"), interval=10.0, timeout=2.0, retries=5)
    assert shell.argv == ["/bin/sh", "-c", "curl -f localhost"]
    bare = HealthConfig.from_model({"test": ["pg_isready", "-U", "app"], "start_period": "1m"})
    assert bare is not None and bare.test == ("CMD", "pg_isready", "-U", "app") and bare.start_period == 60.0
    assert bare.argv == ["pg_isready", "-U", "app"]
    model = Healthcheck(test=["CMD", "true"], interval=5, start_interval=0.5)
    assert HealthConfig.from_model(model) == HealthConfig(("CMD", "true"), interval=5.0, start_interval=0.5)
    assert HealthConfig.from_model(model.model_dump()) == HealthConfig.from_model(model)


def test_the_image_form_counts_nanoseconds_and_zero_means_the_default() -> None:
    image = {"Test": ["CMD-SHELL", "test -f /ok"], "Interval": 2_000_000_000, "StartPeriod": 500_000_000, "Retries": 2}
    assert HealthConfig.from_model(image) == HealthConfig(
        ("CMD-SHELL", "test -f /ok"), interval=2.0, timeout=30.0, retries=2, start_period=0.5, start_interval=5.0
    )
    zeros = {"Test": ["CMD", "true"], "Interval": 0, "Timeout": 0, "Retries": 0, "StartInterval": 0}
    assert HealthConfig.from_model(zeros) == HealthConfig(("CMD", "true"))
    assert HealthConfig.from_model({"Test": ["CMD", "true"], "Unknown": 1}) is not None  # images come from anywhere


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"test": ["NONE"]},
        {"test": ["CMD", "true"], "disable": True},
        {"Test": ["NONE"]},
        {"Test": []},  # Docker: inherit the image's
        Healthcheck(test=["NONE"]),
    ],
)
def test_nothing_to_run_is_none(value: object) -> None:
    assert HealthConfig.from_model(value) is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"test": ["CMD"]}, "a healthcheck test is"),
        ({"test": ["CMD-SHELL"]}, "a healthcheck test is"),
        ({"test": []}, "a healthcheck test is"),
        ({"test": [1, 2]}, "list of strings"),
        ({"test": 5}, "list of strings"),
        ({"interval": 1}, "needs a test"),
        ({"test": "true", "interval": "soon"}, "healthcheck interval: invalid duration"),
        ({"test": "true", "timeout": -1}, "healthcheck timeout: a duration cannot be negative"),
        ({"test": "true", "retries": -1}, "retries must be a whole number"),
        ({"test": "true", "retries": True}, "retries must be a whole number"),
        ({"test": "true", "intervall": 1}, "unknown healthcheck fields: intervall"),
        ({"Test": "true"}, "list of strings"),
        ({"Test": ["BOGUS", "x"]}, "a healthcheck test is"),
        ({"Test": ["CMD", "true"], "Interval": 1.5}, "Interval must be a whole number of nanoseconds"),
        ({"Test": ["CMD", "true"], "Timeout": -1}, "Timeout must be a whole number of nanoseconds"),
    ],
)
def test_bad_configs_are_refused(value: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        HealthConfig.from_model(value)


def test_a_config_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(TypeError, match="a healthcheck is a mapping, not list"):
        HealthConfig.from_model(["CMD", "true"])


# ---------------------------------------------------------------------------- the state machine


@pytest.mark.parametrize(
    ("before", "code", "in_start_period", "after"),
    [
        (("starting", 0), 0, True, ("healthy", 0)),
        (("starting", 0), 0, False, ("healthy", 0)),
        (("starting", 0), 1, True, ("starting", 0)),  # starting up: not counted
        (("starting", 0), 1, False, ("starting", 1)),
        (("starting", 2), 1, False, ("unhealthy", 3)),
        (("starting", 2), -1, False, ("unhealthy", 3)),  # a timeout or a probe that could not run
        (("healthy", 0), 1, True, ("healthy", 1)),  # once healthy, the start period is over
        (("healthy", 2), 7, False, ("unhealthy", 3)),
        (("unhealthy", 5), 1, False, ("unhealthy", 6)),
        (("unhealthy", 5), 0, False, ("healthy", 0)),
    ],
)
def test_docker_rules(before: tuple[str, int], code: int, in_start_period: bool, after: tuple[str, int]) -> None:
    state = HealthState(before[0], before[1], last_change=1.0)  # type: ignore[arg-type]
    new = health.advance(state, result(code), retries=3, in_start_period=in_start_period)
    assert (new.status, new.failing_streak) == after
    assert new.log == (result(code),)
    assert (new.last_change == 1.0) == (after[0] == before[0])


def test_the_log_keeps_the_last_five_results() -> None:
    state = HealthState()
    for code in range(8):
        state = health.advance(state, result(code), retries=100, in_start_period=False)
    assert [r.exit_code for r in state.log] == [3, 4, 5, 6, 7]


def test_health_json_round_trips_and_bad_files_read_as_none(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert health.read_health(root, "web") is None
    state = HealthState("unhealthy", 3, (ProbeResult(1, "boom\n", 0.2, False, 123.0),), 99.0, 42.0)
    assert health.write_health(root, "web", state) is False  # no container directory: nothing is made
    assert not (tmp_path / "containers").exists()
    (tmp_path / "containers" / "web").mkdir(parents=True)
    assert health.write_health(root, "web", state) is True
    assert health.read_health(root, "web") == state
    assert json.loads((tmp_path / "containers" / "web" / "health.json").read_text())["log"][0]["output"] == "boom\n"
    assert os.listdir(tmp_path / "containers" / "web") == ["health.json"]  # no temporary file left
    garbage_files = ["{", "[]", '{"status": "fine"}']
    garbage_files += ['{"status": "healthy", "x": 1}', '{"status": "healthy", "log": [1]}']
    for garbage in garbage_files:
        Path(health.health_path(root, "web")).write_text(garbage)
        assert health.read_health(root, "web") is None, garbage


# ---------------------------------------------------------------------------- real containers

requires_root = pytest.mark.requires_root


@pytest.fixture
def box(rootfs: Path) -> Path:  # noqa: F811
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    return rootfs


def start(runtime: Runtime, rootfs: Path, name: str) -> int:  # noqa: F811
    runtime.create(name, config(rootfs, "exec sleep 60"))
    return runtime.start(name).pid


def processes_in(runtime: Runtime, name: str) -> list[int]:  # noqa: F811
    return sorted(runtime.cgroup(name).pids())


def zombie_children() -> list[int]:
    me, found = os.getpid(), []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == me:
            found.append(int(entry))
    return found


@requires_root
def test_a_passing_cmd_makes_it_healthy_when_due(runtime: Runtime, box: Path) -> None:  # noqa: F811
    start(runtime, box, "web")
    clock = FakeClock()
    checker = health.HealthChecker(runtime, "web", check(["CMD", "true"], interval=10.0), clock=clock)
    assert health.read_health(runtime.root, "web") == checker.state  # "starting" is recorded at once
    assert checker.state.status == "starting" and not checker.due()
    assert checker.step().log == ()  # not due: no probe
    clock.advance(10.0)
    state = checker.step()
    assert (state.status, state.failing_streak) == ("healthy", 0)
    assert [(r.exit_code, r.timed_out) for r in state.log] == [(0, False)]
    assert health.read_health(runtime.root, "web") == state
    assert not checker.due()  # the next one is an interval away


@requires_root
def test_cmd_shell_runs_in_the_container_with_both_streams(runtime: Runtime, box: Path) -> None:  # noqa: F811
    start(runtime, box, "web")
    ready = check(["CMD-SHELL", "echo out; echo err >&2; test -f /ready"])
    failed = health.probe(runtime, "web", ready)
    assert failed.exit_code == 1 and not failed.timed_out
    assert failed.output.split() == ["out", "err"]
    (box / "ready").touch()  # the container's root is this directory
    assert health.probe(runtime, "web", ready).exit_code == 0
    lines = "i=0; while test $i -lt 1000; do echo line$i; i=$((i+1)); done"
    loud = health.probe(runtime, "web", check(["CMD-SHELL", lines]))
    assert loud.exit_code == 0 and len(loud.output.encode()) <= health.MAX_OUTPUT
    assert loud.output.endswith("line999\n")  # the end is kept


@requires_root
def test_retries_failures_make_it_unhealthy_and_a_pass_heals(runtime: Runtime, box: Path) -> None:  # noqa: F811
    start(runtime, box, "db")
    clock = FakeClock()
    checker = health.HealthChecker(runtime, "db", check(["CMD-SHELL", "test -f /ok"], retries=3), clock=clock)
    seen = []
    for _ in range(3):
        clock.advance(1.0)
        state = checker.step()
        seen.append((state.status, state.failing_streak))
    assert seen == [("starting", 1), ("starting", 2), ("unhealthy", 3)]
    assert health.read_health(runtime.root, "db") == state
    (box / "ok").touch()
    clock.advance(1.0)
    assert (checker.step().status, checker.state.failing_streak) == ("healthy", 0)


@requires_root
def test_failures_in_the_start_period_do_not_count(runtime: Runtime, box: Path) -> None:  # noqa: F811
    start(runtime, box, "slow")
    clock = FakeClock()
    config_ = check(["CMD", "false"], retries=2, interval=10.0, start_interval=1.0, start_period=5.0)
    checker = health.HealthChecker(runtime, "slow", config_, clock=clock)
    assert checker.next_due == pytest.approx(checker.started + 1.0)  # start_interval while starting
    for _ in range(4):
        clock.advance(1.0)
        state = checker.step()
        assert (state.status, state.failing_streak) == ("starting", 0)
    assert len(state.log) == 4
    clock.advance(2.0)  # past the start period: failures count, at the normal interval
    assert (checker.step().status, checker.state.failing_streak) == ("starting", 1)
    assert not checker.due(clock.now + 9.0) and checker.due(clock.now + 10.0)
    clock.advance(10.0)
    assert (checker.step().status, checker.state.failing_streak) == ("unhealthy", 2)


@requires_root
def test_a_pass_ends_the_start_period_early(runtime: Runtime, box: Path) -> None:  # noqa: F811
    start(runtime, box, "app")
    clock = FakeClock()
    checker = health.HealthChecker(
        runtime, "app", check(["CMD-SHELL", "test -f /ok"], retries=1, start_period=100.0), clock=clock
    )
    (box / "ok").touch()
    clock.advance(1.0)
    assert checker.step().status == "healthy"
    (box / "ok").unlink()
    clock.advance(1.0)
    assert checker.step().status == "unhealthy"  # within the start period, but no longer starting


@requires_root
def test_a_timed_out_probe_fails_and_leaves_no_process(runtime: Runtime, box: Path) -> None:  # noqa: F811
    main = start(runtime, box, "hang")
    for test in (["CMD", "sleep", "100"], ["CMD-SHELL", "sleep 100 & sleep 100; echo never"]):
        got = health.probe(runtime, "hang", check(test, timeout=0.3))
        assert (got.exit_code, got.timed_out) == (-1, True)
        assert "Health check exceeded timeout (0.3s)" in got.output and "never" not in got.output
        assert processes_in(runtime, "hang") == [main]
        assert zombie_children() == []  # orphans of the killed helper came to us, a subreaper: reaped
    clock = FakeClock()
    checker = health.HealthChecker(runtime, "hang", check(["CMD", "sleep", "100"], timeout=0.2, retries=1), clock=clock)
    clock.advance(1.0)
    assert checker.step().status == "unhealthy"
    assert processes_in(runtime, "hang") == [main]


@requires_root
def test_a_probe_that_passes_leaves_no_background_process(runtime: Runtime, box: Path) -> None:  # noqa: F811
    main = start(runtime, box, "bg")
    got = health.probe(runtime, "bg", check(["CMD-SHELL", "sleep 100 & echo started"]))
    assert (got.exit_code, got.output) == (0, "started\n")
    assert processes_in(runtime, "bg") == [main]


@requires_root
def test_probes_that_cannot_run_fail_with_a_reason(runtime: Runtime, box: Path) -> None:  # noqa: F811
    start(runtime, box, "gone")
    missing = health.probe(runtime, "gone", check(["CMD", "/bin/curl", "-f", "localhost"]))
    assert missing.exit_code == 127 and "executable not found in container: /bin/curl" in missing.output
    runtime.stop("gone", grace=0.2)
    stopped = health.probe(runtime, "gone", check(["CMD", "true"]))
    assert stopped.exit_code == -1 and "container 'gone' is exited, not running" in stopped.output
    unknown = health.probe(runtime, "nobody", check(["CMD", "true"]))
    assert unknown.exit_code == -1 and "no such container: nobody" in unknown.output
    clock = FakeClock()
    checker = health.HealthChecker(runtime, "gone", check(["CMD", "true"], retries=1), clock=clock)
    clock.advance(1.0)
    assert checker.step().status == "unhealthy"


@requires_root
def test_a_checker_resumes_the_state_of_the_same_start_only(runtime: Runtime, box: Path) -> None:  # noqa: F811
    start(runtime, box, "web")
    clock = FakeClock()
    first = health.HealthChecker(runtime, "web", check(["CMD", "false"], retries=1), clock=clock)
    clock.advance(1.0)
    assert first.step().status == "unhealthy"
    again = health.HealthChecker(runtime, "web", check(["CMD", "false"], retries=1), clock=clock)  # agent restarted
    assert again.state == first.state
    clock.advance(1.0)
    assert (again.step().status, again.state.failing_streak) == ("unhealthy", 2)  # the streak goes on
    runtime.stop("web", grace=0.2)
    runtime.delete("web")
    start(runtime, box, "web")  # a new start of the container: health starts over
    fresh = health.HealthChecker(runtime, "web", check(["CMD", "false"], retries=1), clock=clock)
    assert (fresh.state.status, fresh.state.log) == ("starting", ())


@requires_root
def test_the_monitor_checks_several_containers_and_a_slow_probe_delays_none(
    runtime: Runtime,  # noqa: F811
    box: Path,
) -> None:
    mains = {name: start(runtime, box, name) for name in ("good", "bad", "slow")}
    fast: dict[str, Any] = {"interval": 0.05, "start_interval": 0.05, "timeout": 10.0}
    configs = {
        "good": check(["CMD", "true"], **fast),
        "bad": check(["CMD", "false"], retries=2, **fast),
        "slow": check(["CMD-SHELL", "while ! test -f /go; do sleep 0.05; done"], **fast),
    }
    monitor = health.HealthMonitor(runtime, lambda: dict(configs), parallel=3, poll=0.05)
    monitor.start()
    try:

        def settled() -> bool:
            states = monitor.states()
            statuses = {n: s.status for n, s in states.items()}
            # good goes on probing while slow's first probe hangs
            expected = {"good": "healthy", "bad": "unhealthy", "slow": "starting"}
            return statuses == expected and len(states["good"].log) >= 3

        wait_for(settled)
        assert monitor.states()["slow"].log == ()
        (box / "go").touch()
        wait_for(lambda: monitor.states()["slow"].status == "healthy")
        del configs["good"]
        wait_for(lambda: set(monitor.states()) == {"bad", "slow"})
    finally:
        monitor.stop()
    assert health.read_health(runtime.root, "bad") is not None
    assert health.read_health(runtime.root, "bad").status == "unhealthy"  # type: ignore[union-attr]
    for name, main in mains.items():
        assert processes_in(runtime, name) == [main]


@requires_root
def test_the_monitor_survives_a_failing_config_source(runtime: Runtime, box: Path) -> None:  # noqa: F811
    start(runtime, box, "web")
    calls = []

    def configs() -> dict[str, HealthConfig]:
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("manifests unreadable")
        return {"web": check(["CMD", "true"], interval=0.05, start_interval=0.05)}

    monitor = health.HealthMonitor(runtime, configs, poll=0.02)
    monitor.start()
    try:
        wait_for(lambda: "web" in monitor.states() and monitor.states()["web"].status == "healthy")
    finally:
        monitor.stop()
    with pytest.raises(ValueError, match="parallel"):
        health.HealthMonitor(runtime, configs, parallel=0)


@requires_root
def test_probes_from_several_threads_at_once_keep_apart(runtime: Runtime, box: Path) -> None:  # noqa: F811
    """Each helper is a fork of a process whose other threads hold their own probes'
    pipes: no probe waits for another's, and each cleans up only its own."""
    mains = {name: start(runtime, box, name) for name in ("a", "b")}
    tests = {
        "a": check(["CMD-SHELL", "sleep 100 & echo a"], timeout=5.0),
        "b": check(["CMD", "sleep", "100"], timeout=0.3),
    }
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(health.probe, runtime, name, tests[name]) for name in ("a", "b") * 3]
        results = [(f.result().exit_code, f.result().output) for f in futures]
    assert results[0::2] == [(0, "a\n")] * 3
    assert [code for code, _ in results[1::2]] == [-1] * 3
    for name, main in mains.items():
        assert processes_in(runtime, name) == [main]
    assert zombie_children() == []
