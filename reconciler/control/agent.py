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
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from reconciler.cli import main as cli
from reconciler.control import events

#: Seconds between the health monitor's looks at which containers have checks.
CONFIG_REFRESH = 10.0

#: The first retry after a failed pass, in seconds; it doubles while passes keep failing.
RETRY_START = 1.0

#: Outcomes of a pass, by its exit code.
OUTCOME = {0: "unchanged", 1: "failed", 2: "changed"}


def log(event: str, **fields: object) -> None:
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event, **fields}
    print(json.dumps(record), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log("stopping", signal=signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    args.dry_run, args.no_wait, args.output = False, False, "text"
    log("started", directory=args.directory, resync_seconds=args.resync)
    monitor = _health_monitor(args)
    monitor.start()
    try:
        _loop(args, stop)
    finally:
        monitor.stop()
    log("stopped")
    return cli.EXIT_OK


def _health_monitor(args: argparse.Namespace) -> Any:
    """Probes every container (and service replica) whose manifest has a healthcheck;
    what it finds (health.json) is what the next pass acts on."""
    from reconciler.runtime import health
    from reconciler.runtime.containers import Runtime
    from reconciler.state.db import StateDB, StateError

    runtime = Runtime(args.root, cgroup_parent=args.cgroup_parent)
    db = StateDB(args.root)
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


def _loop(args: argparse.Namespace, stop: threading.Event) -> None:
    import watchfiles

    from reconciler.control.once import one_pass

    reason = "start"
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        code = one_pass(
            args, report=False, on_result=lambda r: log("object", key=r.key, outcome=r.outcome, reason=r.reason)
        )
        outcome, seconds = OUTCOME.get(code, "failed"), round(time.monotonic() - started, 3)
        log("pass", reason=reason, outcome=outcome, seconds=seconds)
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
