"""An in-memory world that plans are executed against, for tests of the planner.

The planner promises two things that no single unit test can show: that applying
its plan turns the observed world into the desired one (convergence), and that the
steps, run in the listed order, never ask the engine for something impossible
(executability): setting up a container before its network exists, or deleting a
network that a running container is still attached to. A real engine finds such a
mistake only as a failed apply half-way through; here each step is replayed on a
dictionary of ``ObservedObject`` and checked as it runs, so a property test can
try thousands of stacks in a second.

The model of the world is deliberately the planner's own: an object's dependencies
are the references ``reconciler.plan.graph`` reads from its canonical manifest, and
"what an object looks like once applied" is what ``observed_from`` says. The
checker therefore judges the order of the steps, not the reference rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from reconciler.model.container import Container
from reconciler.model.image import Image
from reconciler.model.manifest import Desired, ManifestObject, canonical, object_key
from reconciler.model.observed import Observed, ObservedObject
from reconciler.model.plan import Action, Plan, Step
from reconciler.model.service import Service
from reconciler.plan import graph

WaveOrder = Literal["listed", "reversed"]

__all__ = [
    "OrderViolation",
    "WaveOrder",
    "applied",
    "by_key",
    "observed_from",
    "simulate",
]


class OrderViolation(AssertionError):
    """A step ran at a point where the real engine would fail.

    An ``AssertionError`` so that pytest shows it as a failed expectation, with the
    step and the objects involved in the message.
    """


def by_key(objects: Observed | Iterable[ObservedObject]) -> dict[str, ObservedObject]:
    """Observed objects by key (``container/web``), the way plans name them.

    Comparisons between worlds go through this: the order in which objects are
    listed means nothing to the engine, so it must mean nothing to a test either.
    """
    items = objects.objects if isinstance(objects, Observed) else objects
    return {object_key(o.kind, o.name): o for o in items}


def _image_digest(obj: ManifestObject, digests: Mapping[str, str]) -> str | None:
    """The digest an applied object records, exactly as the planner will look it up.

    The planner compares ``ObservedObject.digest`` with ``Desired.image_digests``
    keyed by the Image's name, or by a workload's ``image`` field (a stack Image's
    name or a full reference): using the same key here is what makes a freshly
    applied world plan to nothing.
    """
    if isinstance(obj, Image):
        return digests.get(obj.metadata.name)
    if isinstance(obj, Container):
        return digests.get(obj.spec.image)
    if isinstance(obj, Service):
        return digests.get(obj.spec.template.image)
    return None


def applied(obj: ManifestObject, desired: Desired) -> ObservedObject:
    """How one desired object is observed once it has been applied.

    Owned by the desired stack, recorded with its canonical manifest (what the state
    store keeps), and with the digest of its image when the caller resolved it.
    """
    return ObservedObject(
        kind=obj.kind,
        name=obj.metadata.name,
        owner=desired.stack,
        manifest=canonical(obj),
        digest=_image_digest(obj, desired.image_digests),
    )


def observed_from(desired: Desired) -> Observed:
    """The world as it is once ``desired`` has been applied, and nothing else.

    Planning ``desired`` against this must yield only noop actions: it is the fixed
    point the planner converges to, and the expected result of ``simulate``.
    """
    return Observed(objects=[applied(obj, desired) for obj in desired.objects])


def _sequence(steps: list[Step], order: WaveOrder) -> list[Step]:
    """Steps in run order: as listed, or with each wave's steps reversed.

    Steps of one wave may run in parallel, so any order among them must work;
    running them in both directions catches a dependency the plan left out of
    ``after`` that the listed order happened to respect.
    """
    if order == "listed":
        return list(steps)
    out: list[Step] = []
    group: list[Step] = []
    for step in steps:
        if group and group[-1].wave != step.wave:
            out.extend(reversed(group))
            group = []
        group.append(step)
    out.extend(reversed(group))
    return out


def _overlaps(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> set[tuple[str, int]]:
    """Host ports (per protocol) that two manifests would both bind."""
    return graph.host_ports(dict(a) if a else None) & graph.host_ports(dict(b) if b else None)


class _World:
    """The objects that exist, mutated step by step, with the checks of each step."""

    def __init__(self, observed: Observed, targets: dict[str, ObservedObject], check: bool) -> None:
        self.objects = by_key(observed)
        self.targets = targets
        self.check = check

    def fail(self, step: Step, message: str) -> None:
        if self.check:
            raise OrderViolation(f"{step.phase}:{step.key} (wave {step.wave}): {message}")

    def teardown(self, step: Step, returns: bool) -> None:
        """Remove ``step.key``; nothing present may still use it.

        A user keeps using what its recorded manifest references until it is torn
        down or updated itself. Networks and volumes cannot vanish under a user
        even for a moment (a recreate must take the user down first, which is why
        the planner recreates attached workloads too). A soft reference (an image,
        a ``depends_on`` target) may be absent for the span of a recreate, but an
        object deleted for good must not leave users behind.
        """
        if step.key not in self.objects:
            self.fail(step, "tears down an object that is not present")
            return
        for key, user in self.objects.items():
            if key == step.key or user.manifest is None:
                continue
            for ref in graph.references(user.manifest, {step.key}):
                if ref.hard or not returns:
                    what = "is recreated" if returns else "is deleted"
                    self.fail(step, f"{key} still uses {step.key}, which {what}")
        del self.objects[step.key]

    def setup(self, step: Step, action: Action) -> None:
        """Put the desired object in place; everything it uses must already exist.

        Also checks that the step fits the action (a create or the setup half of a
        recreate finds nothing there, an update finds the object), and that no
        other present object still holds a host port the new object binds.
        """
        target = self.targets.get(step.key)
        if target is None:
            self.fail(step, "sets up an object that is not desired")
            return
        present = step.key in self.objects
        if action.op == "update" and not present:
            self.fail(step, "updates an object that is not present")
        if action.op in ("create", "recreate") and present:
            self.fail(step, f"{action.op}s an object that is still present")
        assert target.manifest is not None
        for ref in graph.references(target.manifest, self.targets):
            if ref.key not in self.objects:
                self.fail(step, f"needs {ref.key}, which is not present")
        for key, other in self.objects.items():
            if key == step.key:
                continue
            shared = _overlaps(target.manifest, other.manifest)
            if shared:
                ports = ", ".join(f"{port}/{proto}" for proto, port in sorted(shared))
                self.fail(step, f"binds host port {ports}, still held by {key}")
        self.objects[step.key] = target


def simulate(
    observed: Observed,
    plan: Plan,
    desired: Desired,
    *,
    check: bool = True,
    order: WaveOrder = "listed",
) -> Observed:
    """Run ``plan.steps`` against ``observed`` and return the resulting world.

    A teardown removes its object; a setup puts the desired object in place exactly
    as ``observed_from`` would show it. Actions without steps (noop, conflict)
    leave their objects alone. With ``check`` (the default) every step is checked
    as it runs and the first impossible one raises ``OrderViolation``; ``order``
    ``"reversed"`` runs the steps of each wave back to front.

    The result lists objects sorted by key so that equal worlds compare equal.
    """
    targets = {object_key(o.kind, o.metadata.name): applied(o, desired) for o in desired.objects}
    actions = {a.key: a for a in plan.actions}
    world = _World(observed, targets, check)
    steps = _sequence(plan.steps, order)
    setups_left = {s.key for s in steps if s.phase == "setup"}
    for step in steps:
        action = actions.get(step.key)
        if action is None or action.op in ("noop", "conflict"):
            world.fail(step, "has no action that runs steps")
            continue
        if step.phase == "teardown":
            world.teardown(step, returns=step.key in setups_left)
        else:
            world.setup(step, action)
            setups_left.discard(step.key)
    return Observed(objects=[world.objects[k] for k in sorted(world.objects)])
