"""``reconcile agent [DIR]``: the long-running host agent.

A pass (the same as ``--once``) runs at start, whenever DIR changes (watchfiles,
debounced, so a ``git pull`` touching many files yields one pass over the final
state) and every ``--resync`` seconds, which is what heals drift: a container
killed or removed by hand, a deleted network. Passes are level-triggered, so a
missed event is healed by the next one. An invalid manifest set applies nothing:
the last good state keeps running, and the errors are logged.

At start the agent adopts what runs (a converged host is a no-op pass: nothing
restarts). SIGTERM or SIGINT ends it after the current pass; containers keep
running. Every pass is logged as one JSON line on stderr.

``serve`` is the loop over an ``Engine`` until an event is set: the daemon
(``api.daemon``) runs it in a thread beside the API, sharing one engine; ``run`` is
the loop alone. Passes get every driver from the engine's wiring.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.control import events
from reconciler.exitcodes import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from reconciler.engine.core import Engine

#: Seconds between the health monitor's looks at which containers have checks.
CONFIG_REFRESH = 10.0

#: The first retry after a failed pass, in seconds; it doubles while passes keep failing.
RETRY_START = 1.0

#: Outcomes of a pass, by its exit code.
OUTCOME = {0: "unchanged", 1: "failed", 2: "changed"}


def log(event: str, **fields: object) -> None:
    """One JSON line on stderr, written whole: the loop's thread and the API's share it."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event, **fields}
    with _LOG_LOCK:
        sys.stderr.write(json.dumps(record) + "\n")
        sys.stderr.flush()


def say(text: str) -> None:
    """A plain line on stderr (a validation error), written whole as ``log``'s are."""
    with _LOG_LOCK:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


_LOG_LOCK = threading.Lock()


def run(args: argparse.Namespace) -> int:
    """The loop alone in this process (no API): until SIGTERM or SIGINT."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log("stopping", signal=signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    engine = _engine(args)
    try:
        serve(args, stop, engine=engine)
    finally:
        engine.close()
    log("stopped")
    return EXIT_OK


def serve(
    args: argparse.Namespace,
    stop: threading.Event,
    *,
    engine: Engine,
    on_pass: Callable[[str, float], None] | None = None,
) -> None:
    """The reconcile loop and its health monitor over ``engine``, until ``stop`` is
    set (the daemon runs this in a thread of its own, beside the API, sharing the
    engine). ``on_pass`` hears each pass's outcome and seconds (metrics)."""
    log("started", directory=args.directory, resync_seconds=args.resync)
    monitor = _health_monitor(args, engine)
    monitor.start()
    try:
        _loop(args, stop, engine, on_pass)
    finally:
        monitor.stop()


def _engine(args: argparse.Namespace) -> Engine:
    """The agent's one engine: its drivers are shared by every pass and the monitor."""
    from reconciler.engine.core import Engine
    from reconciler.engine.wiring import EngineConfig

    return Engine(EngineConfig(root=args.root, cgroup_parent=args.cgroup_parent))


def _health_monitor(args: argparse.Namespace, engine: Engine) -> Any:
    """Probes every container (and service replica) whose manifest has a healthcheck;
    what it finds (health.json) is what the next pass acts on."""
    from reconciler.runtime import health
    from reconciler.state.db import StateError

    runtime = engine.wiring.runtime()
    db = engine.wiring.state_db()
    cache: dict[str, Any] = {"at": -1e9, "configs": {}}

    def configs() -> dict[str, health.HealthConfig]:
        # the monitor asks every second; the answer changes only when a pass does,
        # and reading every container's state each second is most of an idle agent's CPU
        if time.monotonic() - cache["at"] < CONFIG_REFRESH:
            return cache["configs"]  # type: ignore[no-any-return]
        cache["configs"], cache["at"] = _configs(), time.monotonic()
        return cache["configs"]  # type: ignore[no-any-return]

    def _configs() -> dict[str, health.HealthConfig]:
        found: dict[str, health.HealthConfig] = {}
        try:
            records = db.list_objects()
        except StateError:
            return found
        replicas: dict[str, list[str]] = {}
        for state in runtime.containers():
            service = (state.spec.get("service") or {}).get("name")
            if service and state.status == "running":
                replicas.setdefault(service, []).append(state.name)
        for record in records:
            spec = record.manifest.get("spec") or {}
            if record.kind == "Container":
                config = health.HealthConfig.from_model(spec.get("healthcheck"))
                if config is not None:
                    found[record.name] = config
            elif record.kind == "Service":
                config = health.HealthConfig.from_model((spec.get("template") or {}).get("healthcheck"))
                for replica in replicas.get(record.name, []):
                    if config is not None:
                        found[replica] = config
        return found

    return health.HealthMonitor(runtime, configs)


def _progress(event: dict[str, Any]) -> None:
    """A pass's progress as the agent logs it: objects as JSON lines, notices as they are."""
    if event["kind"] == "object":
        log("object", key=event["key"], outcome=event["outcome"], reason=event["reason"])
    else:
        say(event["message"])


def _loop(
    args: argparse.Namespace,
    stop: threading.Event,
    engine: Engine,
    on_pass: Callable[[str, float], None] | None = None,
) -> None:
    import watchfiles

    from reconciler.control.once import Options, one_pass

    options = Options(
        directory=args.directory,
        stack=args.stack,
        prune=args.prune,
        prune_volumes=args.prune_volumes,
        timeout=getattr(args, "timeout", 300.0),
    )
    reason = "start"
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            report = one_pass(engine, options, progress=_progress)
        except Exception as exc:  # a bug or a driver's surprise: logged, and retried like a failed pass
            log("pass-error", error=str(exc) or type(exc).__name__, traceback=traceback.format_exc())
            report = {"exit_code": EXIT_FAILED}
        code = report["exit_code"]
        if report.get("valid") is False:  # nothing applied: the last good state keeps running
            issues = report.get("errors", [])
            for issue in issues:
                say(issue["text"])
            count = len(issues)
            say(f"{args.directory}: {count} error{'s' if count != 1 else ''}; nothing applied")
        outcome, seconds = OUTCOME.get(code, "failed"), round(time.monotonic() - started, 3)
        log("pass", reason=reason, outcome=outcome, seconds=seconds)
        if on_pass is not None:
            on_pass(outcome, seconds)
        events.append(args.root, "pass", reason=reason, outcome=outcome, seconds=seconds, directory=args.directory)
        reason = "resync"
        # a failed pass (an image missing, a port taken) is retried sooner than a
        # resync, backing off: 1 s, 2 s, 4 s … up to the resync interval
        failures = failures + 1 if outcome == "failed" else 0
        wait = args.resync if failures == 0 else min(args.resync, RETRY_START * 2 ** (failures - 1))
        for changes in watchfiles.watch(
            args.directory,
            stop_event=stop,
            debounce=args.debounce,
            step=50,
            rust_timeout=max(1, int(wait * 1000)),
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            reason = "change" if changes else ("retry" if failures else "resync")
            break
