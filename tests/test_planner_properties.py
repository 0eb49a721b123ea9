"""Properties of ``reconciler.plan.plan`` over random valid stacks and random worlds.

Stacks are drawn as the plain inputs a manifest author writes and built through the
pydantic models, so every one is valid: networks with distinct subnets or none,
workloads that reference the stack's images, networks and volumes, host ports
published once, ``depends_on`` only on earlier workloads (no cycles). Worlds are
drawn from a stack: a subset of its applied objects, some with changed manifests or
digests or without a record, plus owned objects the manifests no longer list, plus
objects of other stacks or of nobody.

The properties: an applied stack plans to nothing; replaying a plan in the simulator
yields the applied stack; steps wait only on earlier waves and set dependencies up
first; the same input always gives the same plan.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model.manifest import KINDS, Desired, ManifestObject, canonical, object_key
from reconciler.model.observed import Observed, ObservedObject
from reconciler.model.plan import Plan
from reconciler.plan import graph, plan
from reconciler.testing.simulator import WaveOrder, by_key, observed_from, simulate

STACK = "shop"
FOREIGN_OWNERS = ["blog", None]
PULLS = [
    "docker.io/library/nginx:1.27",
    "docker.io/library/nginx:1.28",
    "registry.local:5000/team/app:2",
]
EXTERNAL_IMAGES = ["busybox:1.36", "docker.io/library/redis:7"]
DIGESTS = ["sha256:" + c * 64 for c in "abc"]
PORTS = list(range(8000, 8010))
VOLUME_OPTIONS: list[dict[str, str]] = [{}, {"type": "tmpfs", "device": "tmpfs"}, {"type": "nfs"}]
ENVS: list[dict[str, str]] = [{}, {"MODE": "prod"}, {"MODE": "dev", "DEBUG": "1"}]
MEMORY = [None, "64m", "128m"]
RESTART = ["no", "always", "on-failure:3"]
LABELS: list[dict[str, str]] = [{}, {"tier": "a"}, {"tier": "b"}]

#: Derandomized, so every run tries the same examples; raise the count for a deeper search:
#: ``RECONCILE_PLANNER_EXAMPLES=2000 .venv/bin/pytest tests/test_planner_properties.py``.
EXAMPLES = int(os.environ.get("RECONCILE_PLANNER_EXAMPLES", "120"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# Strategies are built once and reused: building one per draw costs more than the draw.
BOOLEANS = st.booleans()


@functools.cache
def integers(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


@functools.cache
def permutation(size: int) -> st.SearchStrategy[list[int]]:
    return st.permutations(range(size))


@functools.cache
def _indices(size: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, size - 1), unique=True, max_size=size)


def pick(draw: st.DrawFn, values: list[Any]) -> Any:
    """One of ``values``, shrinking towards the first."""
    return values[draw(integers(0, len(values) - 1))]


def subset(draw: st.DrawFn, values: list[Any]) -> list[Any]:
    """Distinct items of ``values``, none when it is empty."""
    return [values[i] for i in draw(_indices(len(values)))] if values else []


@dataclass
class Doc:
    """One manifest as written: its kind, name and the mapping handed to the model."""

    kind: str
    name: str
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return object_key(self.kind, self.name)

    def build(self) -> ManifestObject:
        return KINDS[self.kind].model_validate(copy.deepcopy(self.data))

    def manifest(self) -> dict[str, Any]:
        return canonical(self.build())


@dataclass
class Stack:
    docs: list[Doc]
    digests: dict[str, str]

    def desired(self) -> Desired:
        return Desired(stack=STACK, objects=[d.build() for d in self.docs], image_digests=self.digests)

    def of_kind(self, *kinds: str) -> list[Doc]:
        return [d for d in self.docs if d.kind in kinds]


@dataclass
class World:
    observed: Observed
    foreign: dict[str, ObservedObject] = field(default_factory=dict)


def _doc(kind: str, name: str, labels: dict[str, str], spec: dict[str, Any]) -> Doc:
    return Doc(kind, name, {"metadata": {"name": name, "labels": labels}, "spec": spec})


def _workload_spec(
    draw: st.DrawFn,
    images: list[str],
    networks: list[str],
    volumes: list[str],
    earlier: list[str],
    port: int | None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": pick(draw, images + EXTERNAL_IMAGES),
        "env": pick(draw, ENVS),
        "restart": pick(draw, RESTART),
        "networks": subset(draw, networks),
        "volumes": [f"{v}:/data/{v}" for v in subset(draw, volumes)],
        "depends_on": subset(draw, earlier),
    }
    memory = pick(draw, MEMORY)
    if memory:
        spec["resources"] = {"memory": memory}
    if port is not None:
        spec["ports"] = [f"{port}:80"]
    if draw(BOOLEANS):
        spec["command"] = ["serve", pick(draw, ["--fast", "--slow"])]
    return spec


@st.composite
def stacks(draw: st.DrawFn) -> Stack:
    """A valid stack of up to 3 images, networks and volumes and 6 workloads."""
    images = subset(draw, ["i0", "i1", "i2"])
    networks = subset(draw, ["n0", "n1", "n2"])
    volumes = subset(draw, ["v0", "v1", "v2"])
    subnets = draw(permutation(10))
    ports = [PORTS[i] for i in draw(permutation(len(PORTS)))]
    docs: list[Doc] = []
    for name in images:
        spec = {"pull": pick(draw, PULLS)}
        docs.append(_doc("Image", name, pick(draw, LABELS), spec))
    for index, name in enumerate(networks):
        subnet = f"10.{subnets[index]}.0.0/24" if draw(BOOLEANS) else None
        docs.append(_doc("Network", name, pick(draw, LABELS), {"subnet": subnet}))
    for name in volumes:
        spec = {
            "options": pick(draw, VOLUME_OPTIONS),
            "retain_policy": pick(draw, ["retain", "delete"]),
        }
        docs.append(_doc("Volume", name, pick(draw, LABELS), spec))
    workloads: list[str] = []
    for index in range(draw(integers(0, 6))):
        name = f"w{index}"
        kind = pick(draw, ["Container", "Service"])
        replicas = draw(integers(0, 3)) if kind == "Service" else 1
        port = ports[index] if replicas <= 1 and draw(BOOLEANS) else None
        spec = _workload_spec(draw, images, networks, volumes, workloads, port)
        labels = pick(draw, LABELS)
        if kind == "Service":
            update = {"parallelism": draw(integers(1, 2))}
            docs.append(_doc(kind, name, labels, {"replicas": replicas, "template": spec, "update": update}))
        else:
            docs.append(_doc(kind, name, labels, spec))
        workloads.append(name)
    order = draw(permutation(len(docs)))
    digests: dict[str, str] = {}
    for name in [*images, *EXTERNAL_IMAGES]:
        digest = pick(draw, [None, *DIGESTS])
        if digest:
            digests[name] = digest
    return Stack([docs[i] for i in order], digests)


def _template(doc: Doc) -> dict[str, Any]:
    return doc.data["spec"]["template"] if doc.kind == "Service" else doc.data["spec"]  # type: ignore[no-any-return]


def _toggle(draw: st.DrawFn, current: list[str], pool: list[str]) -> list[str]:
    """``current`` with one name of ``pool`` added or taken away."""
    name = pick(draw, pool)
    return [n for n in current if n != name] if name in current else [*current, name]


def _mutate(draw: st.DrawFn, doc: Doc, refs: dict[str, list[str]], deps: list[str]) -> Doc:
    """``doc`` as an older apply may have left it: one or two fields differ.

    References are toggled one at a time, often to an owned object the manifests
    no longer list: a workload still using what is about to be deleted is where
    an order goes wrong.
    """
    out = copy.deepcopy(doc)
    meta, spec = out.data["metadata"], out.data["spec"]
    choices = ["labels"]
    if doc.kind == "Image":
        choices += ["pull"]
    elif doc.kind == "Network":
        choices += ["subnet"]
    elif doc.kind == "Volume":
        choices += ["retain", "retain", "options"]
    else:
        choices += ["image", "env", "memory", "restart", "depends_on"]
        choices += ["networks", "volumes"] * 2
        if doc.kind == "Service":
            choices += ["replicas", "parallelism"]
    for what in [pick(draw, choices) for _ in range(draw(integers(1, 2)))]:
        if what == "labels":
            meta["labels"] = {"tier": "old"}
        elif what == "pull":
            spec["pull"] = pick(draw, [p for p in PULLS if p != spec["pull"]])
        elif what == "subnet":
            spec["subnet"] = pick(draw, [None, "10.200.0.0/24", "10.201.0.0/16"])
        elif what == "options":
            spec["options"] = {"type": "ext4"}
        elif what == "retain":
            spec["retain_policy"] = "delete" if spec["retain_policy"] == "retain" else "retain"
        elif what == "replicas":
            spec["replicas"] = spec["replicas"] + 1 if spec["replicas"] < 1 else 0
        elif what == "parallelism":
            spec["update"] = {"parallelism": 3}
        else:
            template = _template(out)
            if what == "image":
                template["image"] = pick(draw, refs["Image"] + EXTERNAL_IMAGES)
            elif what == "env":
                template["env"] = {"OLD": "1"}
            elif what == "memory":
                template["resources"] = {"memory": "256m"}
            elif what == "restart":
                template["restart"] = "unless-stopped"
            elif what == "networks" and refs["Network"]:
                template["networks"] = _toggle(draw, template["networks"], refs["Network"])
            elif what == "volumes" and refs["Volume"]:
                names = [m.split(":")[0] for m in template["volumes"]]
                template["volumes"] = [f"{v}:/data/{v}" for v in _toggle(draw, names, refs["Volume"])]
            elif what == "depends_on" and deps:
                template["depends_on"] = _toggle(draw, template["depends_on"], deps)
    return out


def _seen(doc: Doc, owner: str | None, manifest: bool, digest: str | None) -> ObservedObject:
    return ObservedObject(
        kind=doc.kind,
        name=doc.name,
        owner=owner,
        manifest=doc.manifest() if manifest else None,
        digest=digest,
    )


@st.composite
def worlds(draw: st.DrawFn, stack: Stack, conflicts: bool = False) -> World:
    """What the host may hold for ``stack``: see the module docstring."""
    applied = by_key(observed_from(stack.desired()))
    # a gentle world differs from the stack only in its workloads and extra objects: no
    # network or volume is recreated, so services roll out rather than being recreated
    gentle = draw(integers(0, 2)) == 0
    desired_names = {kind: [d.name for d in stack.of_kind(kind)] for kind in KINDS}

    # owned objects the manifests no longer list; extra workloads use extras or desired objects
    extras: list[Doc] = []
    extra_names: dict[str, list[str]] = {k: [] for k in KINDS}
    for name in subset(draw, ["xi0", "xi1"]):
        extras.append(_doc("Image", name, {}, {"pull": pick(draw, PULLS)}))
        extra_names["Image"].append(name)
    for index, name in enumerate(subset(draw, ["xn0", "xn1"])):
        subnet = f"10.{210 + index}.0.0/24" if draw(BOOLEANS) else None
        extras.append(_doc("Network", name, {}, {"subnet": subnet}))
        extra_names["Network"].append(name)
    for name in subset(draw, ["xv0", "xv1"]):
        retain = pick(draw, ["retain", "delete"])
        extras.append(_doc("Volume", name, {}, {"retain_policy": retain}))
        extra_names["Volume"].append(name)
    refs = {k: desired_names[k] + extra_names[k] for k in ("Image", "Network", "Volume")}
    for index in range(draw(integers(0, 3))):
        name, kind = f"xw{index}", pick(draw, ["Container", "Service"])
        spec = _workload_spec(draw, refs["Image"], refs["Network"], refs["Volume"], extra_names["Container"], None)
        if kind == "Service":
            extras.append(_doc(kind, name, {}, {"replicas": 1, "template": spec}))
        else:
            extras.append(_doc(kind, name, {}, spec))
        extra_names["Container"].append(name)  # depends_on targets, of either kind

    objects: list[ObservedObject] = []
    present: list[tuple[Doc, bool, str | None]] = []  # owned: (as applied, recorded, digest)
    for doc in stack.docs:
        # an older apply's depends_on, like the desired one, only points at extras and at
        # workloads drawn before (w0 < w1 < ...), so observed manifests stay acyclic too
        earlier_here = [
            *extra_names["Container"],
            *(n for n in desired_names["Container"] + desired_names["Service"] if n < doc.name),
        ]
        workload = doc.kind in ("Container", "Service")
        if not gentle:
            fate = pick(draw, ["absent", "same", "same", "mutated", "mutated", "unrecorded"])
        else:
            fate = pick(draw, ["same", "mutated"]) if workload else "same"
        if conflicts and draw(integers(0, 24)) == 0:
            fate = "foreign"
        if fate == "absent":
            continue
        digest = applied[doc.key].digest
        if doc.kind in ("Image", "Container", "Service") and not gentle and draw(BOOLEANS):
            digest = pick(draw, [None, *DIGESTS])
        if fate == "foreign":
            owner = pick(draw, FOREIGN_OWNERS)
            objects.append(_seen(doc, owner, draw(BOOLEANS), None))
            continue
        seen = _mutate(draw, doc, refs, earlier_here) if fate == "mutated" else copy.deepcopy(doc)
        present.append((seen, fate != "unrecorded", digest))
    for doc in extras:
        present.append((doc, draw(integers(0, 4)) > 0, None))

    # host ports, published once on the host: shuffled among the present workloads, so
    # that one frees a port another is about to claim, or tweaked one workload at a time
    workloads = [d for d, _, _ in present if d.kind in ("Container", "Service")]
    if gentle or draw(integers(0, 2)) == 0:
        slots = [min(_ports(d), default=None) for d in workloads]
        slots += [None] * draw(integers(0, 2))
        order = draw(permutation(len(slots)))
        for doc, index in zip(workloads, order, strict=False):
            _publish(doc, slots[index])
    else:
        held = {p for d in workloads for p in _ports(d)}
        for doc in workloads:
            if draw(integers(0, 3)) == 0:
                held -= _ports(doc)
                free = sorted(set(PORTS) - held)
                port = pick(draw, free) if draw(BOOLEANS) and free else None
                held |= {port} if port else set()
                _publish(doc, port)
    objects += [_seen(doc, STACK, recorded, digest) for doc, recorded, digest in present]

    # objects of other stacks and of nobody, with names of their own
    foreign: dict[str, ObservedObject] = {}
    for kind, prefix in (("Network", "fn"), ("Volume", "fv"), ("Container", "fc")):
        for name in subset(draw, [f"{prefix}0", f"{prefix}1"]):
            theirs: dict[str, Any] = {"image": "busybox:1.36"} if kind == "Container" else {}
            obj = _seen(_doc(kind, name, {}, theirs), pick(draw, FOREIGN_OWNERS), True, None)
            if draw(BOOLEANS):
                obj = obj.model_copy(update={"manifest": None})
            foreign[object_key(kind, name)] = obj
            objects.append(obj)

    objects = [objects[i] for i in draw(permutation(len(objects)))]
    return World(Observed(objects=list(objects)), foreign)


def _publish(doc: Doc, port: int | None) -> None:
    """Make ``doc`` publish ``port`` on the host, or nothing; one replica at most then."""
    _template(doc)["ports"] = [f"{port}:80"] if port else []
    if doc.kind == "Service" and port:
        doc.data["spec"]["replicas"] = min(doc.data["spec"]["replicas"], 1)


def _ports(doc: Doc) -> set[int]:
    if doc.kind not in ("Container", "Service"):
        return set()
    return {port for _, port in graph.host_ports(doc.manifest())}


@st.composite
def scenarios(draw: st.DrawFn, conflicts: bool = False) -> tuple[Stack, World]:
    stack = draw(stacks())
    return stack, draw(worlds(stack, conflicts))


# --- properties ----------------------------------------------------------------


@PROFILE
@given(stacks())
def test_applied_stack_plans_to_nothing(stack: Stack) -> None:
    desired = stack.desired()
    result = plan(desired, observed_from(desired))
    assert {a.op for a in result.actions} <= {"noop"}
    assert all(a.reasons == ["up to date"] for a in result.actions)
    assert len(result.actions) == len(desired.objects)
    assert result.steps == []
    assert not result.has_changes


def _same_object(got: ObservedObject, want: ObservedObject) -> bool:
    """Equal, except that a digest unknown on either side is no difference: the
    planner leaves an object alone when it cannot compare digests."""
    fields = ("kind", "name", "owner", "manifest")
    if any(getattr(got, f) != getattr(want, f) for f in fields):
        return False
    return got.digest is None or want.digest is None or got.digest == want.digest


def _assert_converges(stack: Stack, world: World, prune_volumes: bool) -> None:
    """Replaying the plan, in either order within waves, yields the applied stack."""
    desired = stack.desired()
    result = plan(desired, world.observed, prune_volumes=prune_volumes)
    if result.has_conflicts:
        return
    expected = by_key(observed_from(desired)) | world.foreign
    observed = by_key(world.observed)
    for action in result.actions:
        if action.key not in expected:
            assert action.op in ("noop", "delete"), action
            if action.op == "noop":  # kept by its retain policy
                assert action.kind == "Volume" and not prune_volumes
                expected[action.key] = observed[action.key]
    orders: tuple[WaveOrder, ...] = ("listed", "reversed")
    for order in orders:
        final = by_key(simulate(world.observed, result, desired, order=order))
        assert sorted(final) == sorted(expected)
        for key, obj in expected.items():
            assert _same_object(final[key], obj), key
        # converged: planning again changes nothing
        again = plan(desired, Observed(objects=list(final.values())), prune_volumes=prune_volumes)
        assert not again.has_changes, [a for a in again.actions if a.op != "noop"]


@PROFILE
@given(scenarios(), st.booleans())
def test_simulated_plan_converges(scenario: tuple[Stack, World], prune_volumes: bool) -> None:
    _assert_converges(*scenario, prune_volumes)


@st.composite
def port_moves(draw: st.DrawFn) -> tuple[Stack, World]:
    """An applied stack whose workloads publish each other's host ports: every one
    that moves frees a port another claims, by a recreate or by a rolling update."""
    stack = draw(stacks())
    digests = by_key(observed_from(stack.desired()))
    docs = [copy.deepcopy(d) for d in stack.docs]
    workloads = [d for d in docs if d.kind in ("Container", "Service")]
    slots = [min(_ports(d), default=None) for d in workloads] + [None] * draw(integers(0, 1))
    for doc, index in zip(workloads, draw(permutation(len(slots))), strict=False):
        _publish(doc, slots[index])
    objects = [_seen(d, STACK, True, digests[d.key].digest) for d in docs]
    return stack, World(Observed(objects=objects))


@PROFILE
@given(port_moves())
def test_host_ports_move_between_workloads(scenario: tuple[Stack, World]) -> None:
    _assert_converges(*scenario, prune_volumes=False)


def _closure(result: Plan) -> dict[str, set[str]]:
    direct = {f"{s.phase}:{s.key}": set(s.after) for s in result.steps}
    closure: dict[str, set[str]] = {}
    for node in direct:
        closure[node] = set(direct[node])
        for before in direct[node]:
            closure[node] |= closure[before]
    return closure


@PROFILE
@given(scenarios(conflicts=True), st.booleans(), st.booleans())
def test_steps_are_ordered(scenario: tuple[Stack, World], prune: bool, prune_volumes: bool) -> None:
    stack, world = scenario
    desired = stack.desired()
    result = plan(desired, world.observed, prune=prune, prune_volumes=prune_volumes)
    wave = {f"{s.phase}:{s.key}": s.wave for s in result.steps}
    assert len(wave) == len(result.steps), "each step once"
    assert [s.wave for s in result.steps] == sorted(wave.values()), "listed by wave"
    for step in result.steps:
        for before in step.after:
            assert wave[before] < step.wave, (before, step)
    closure = _closure(result)

    wanted = {d.key: d.manifest() for d in stack.docs}
    for key, manifest in wanted.items():
        if f"setup:{key}" not in wave:
            continue
        for ref in graph.references(manifest, wanted):
            if f"setup:{ref.key}" in wave:
                assert f"setup:{ref.key}" in closure[f"setup:{key}"], (ref.key, key)
    existing = by_key(world.observed)
    for key, obs in existing.items():
        if f"teardown:{key}" not in wave or obs.manifest is None:
            continue
        if f"setup:{key}" in wave:
            assert f"teardown:{key}" in closure[f"setup:{key}"]
        for ref in graph.references(obs.manifest, existing):
            if f"teardown:{ref.key}" in wave:
                assert f"teardown:{key}" in closure[f"teardown:{ref.key}"], (key, ref.key)

    # and the order is executable, whichever way each wave's steps are run. Not checked
    # for a plan with a conflict, which is never applied, nor with pruning off: a kept
    # workload may still be attached to a network the plan recreates (a known limit).
    if prune and not result.has_conflicts:
        simulate(world.observed, result, desired)
        simulate(world.observed, result, desired, order="reversed")


@settings(PROFILE, max_examples=max(1, EXAMPLES // 2))  # cheap to check, costly to draw
@given(scenarios(conflicts=True), st.booleans(), st.randoms(use_true_random=False))
def test_planning_is_deterministic(scenario: tuple[Stack, World], prune: bool, rng: random.Random) -> None:
    stack, world = scenario
    desired = stack.desired()
    first = plan(desired, world.observed, prune=prune)
    second = plan(stack.desired(), Observed(objects=list(world.observed.objects)), prune=prune)
    assert first == second
    assert first.model_dump_json() == second.model_dump_json()

    # the order objects are listed in does not matter either
    objects, seen = list(desired.objects), list(world.observed.objects)
    rng.shuffle(objects)
    rng.shuffle(seen)
    shuffled = dataclasses.replace(desired, objects=objects)
    assert plan(shuffled, Observed(objects=seen), prune=prune) == first
