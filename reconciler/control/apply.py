"""Run a plan: its steps wave by wave (a wave's steps in parallel, bounded), each
through the kind's driver, transient faults retried with backoff and jitter
(tenacity), every object ending with a result. A failed object never aborts
unrelated ones; what depends on it is skipped, naming why.

After each object's setup the state store records what was applied (manifest,
stack, digest): the next pass observes it, and a pass killed half-way leaves
only objects that are either recorded or absent, so the next pass completes or
removes them.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from reconciler.control.drivers import DriverError, Drivers
from reconciler.model.manifest import Desired, ManifestObject, canonical, object_key
from reconciler.model.observed import Observed
from reconciler.model.plan import Action, Plan, Step
from reconciler.network.manager import NetworkError
from reconciler.state.db import ObjectRecord, StateDB

Outcome = Literal["unchanged", "created", "updated", "recreated", "deleted", "failed", "skipped", "conflict"]
_DONE: dict[str, Outcome] = {"create": "created", "update": "updated", "recreate": "recreated", "delete": "deleted"}


class Result(NamedTuple):
    key: str
    outcome: Outcome
    reason: str = ""


class Transient(Exception):
    """A fault worth another try (a registry that hiccuped, a lock held briefly)."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, Transient):
        return True
    name = type(exc).__name__
    return name in ("RegistryError", "StateError") and "unknown" not in str(exc)


class Applier:
    def __init__(
        self,
        drivers: Drivers,
        db: StateDB,
        *,
        parallelism: int = 4,
        attempts: int = 3,
        backoff: float = 0.5,
        report: Callable[[Result], None] | None = None,
        revision: str | None = None,
    ) -> None:
        self.revision = revision
        self.drivers = drivers
        self.db = db
        self.parallelism = parallelism
        self.attempts = attempts
        self.backoff = backoff
        self.report = report

    def apply(self, plan: Plan, desired: Desired, observed: Observed) -> list[Result]:
        wanted = {object_key(o.kind, o.metadata.name): o for o in desired.objects}
        existing = {object_key(o.kind, o.name): o for o in observed.objects}
        actions = {a.key: a for a in plan.actions}
        results: dict[str, Result] = {}
        for action in plan.actions:
            if action.op == "noop":
                results[action.key] = Result(action.key, "unchanged")
            elif action.op == "conflict":
                results[action.key] = Result(action.key, "conflict", "; ".join(action.reasons))
        # what depends on a conflicting object waits, as on a failed one
        failed: set[str] = {a.key for a in plan.actions if a.op == "conflict"}
        for wave in sorted({step.wave for step in plan.steps}):
            steps = [s for s in plan.steps if s.wave == wave]
            runnable = []
            for step in steps:
                blocker = next((dep.split(":", 1)[1] for dep in step.after if dep.split(":", 1)[1] in failed), None)
                if blocker is not None:
                    failed.add(step.key)
                    results[step.key] = Result(step.key, "skipped", f"{blocker} failed")
                    continue
                runnable.append(step)
            with concurrent.futures.ThreadPoolExecutor(max_workers=self.parallelism) as pool:
                futures = {
                    pool.submit(self._step, step, actions[step.key], wanted.get(step.key), existing.get(step.key)): step
                    for step in runnable
                }
                for future in concurrent.futures.as_completed(futures):
                    step = futures[future]
                    error = future.exception()
                    if error is not None:
                        failed.add(step.key)
                        results[step.key] = Result(step.key, "failed", str(error) or type(error).__name__)
                    elif step.phase == "setup" or actions[step.key].op == "delete":
                        results[step.key] = Result(step.key, _DONE[actions[step.key].op])
                    if self.report is not None and step.key in results:
                        self.report(results[step.key])
        return [results[a.key] for a in plan.actions if a.key in results]

    def _step(self, step: Step, action: Action, obj: ManifestObject | None, seen: Any) -> None:
        # imported here: a pass with nothing to do (the common one) runs no step, and
        # tenacity costs about 7 ms of every `reconcile --once` start-up
        import tenacity

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential_jitter(initial=self.backoff, max=self.backoff * 8),
            retry=tenacity.retry_if_exception(_transient),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self._once(step, action, obj, seen)

    def _once(self, step: Step, action: Action, obj: ManifestObject | None, seen: Any) -> None:
        kind, name = action.kind, action.name
        if step.phase == "teardown":
            self.drivers.delete(kind, name, seen.manifest if seen is not None else None)
            with self.db.transaction():
                self.db.delete_object(kind, name)
            return
        if obj is None:
            raise DriverError(f"{action.key}: nothing to set up")
        try:
            digest = self.drivers.update(obj) if action.op == "update" else self.drivers.create(obj)
        except NetworkError as exc:
            raise DriverError(str(exc)) from None
        record = ObjectRecord(
            kind=kind,
            name=name,
            stack=self.drivers.stack,
            manifest=canonical(obj),
            digest=digest or "",
            status={"revision": self.revision} if self.revision else {},
        )
        with self.db.transaction():
            self.db.put_object(record)
