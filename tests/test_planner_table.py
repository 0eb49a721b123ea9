"""Table-driven tests of ``reconciler.plan.plan``: desired and observed objects in,
ops, reasons and changed fields out; then the order of the steps.

Every case also replays its plan in the simulator when the plan has no conflict,
so each row checks convergence and an executable order on top of its expectations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from reconciler.model.container import Container
from reconciler.model.image import Image
from reconciler.model.manifest import Desired, ManifestObject, canonical, object_key
from reconciler.model.network import Network
from reconciler.model.observed import Observed, ObservedObject
from reconciler.model.plan import FORMAT_VERSION, Action, Plan, Step
from reconciler.model.service import Service
from reconciler.model.volume import Volume
from reconciler.plan import plan
from reconciler.testing.simulator import OrderViolation, by_key, observed_from, simulate

STACK = "shop"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


# --- builders ------------------------------------------------------------------


def _meta(name: str, labels: dict[str, str] | None) -> dict[str, Any]:
    return {"name": name, "labels": labels or {}}


def img(name: str, pull: str = "docker.io/library/nginx:1.27", labels: dict[str, str] | None = None) -> Image:
    return Image.model_validate({"metadata": _meta(name, labels), "spec": {"pull": pull}})


def net(name: str, subnet: str | None = None, labels: dict[str, str] | None = None) -> Network:
    return Network.model_validate({"metadata": _meta(name, labels), "spec": {"subnet": subnet}})


def vol(
    name: str,
    options: dict[str, str] | None = None,
    retain: str = "retain",
    labels: dict[str, str] | None = None,
) -> Volume:
    spec = {"options": options or {}, "retain_policy": retain}
    return Volume.model_validate({"metadata": _meta(name, labels), "spec": spec})


def ctr(name: str, labels: dict[str, str] | None = None, **spec: Any) -> Container:
    spec.setdefault("image", "busybox:1.36")
    return Container.model_validate({"metadata": _meta(name, labels), "spec": spec})


def svc(
    name: str,
    replicas: int = 1,
    update: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    **template: Any,
) -> Service:
    template.setdefault("image", "busybox:1.36")
    spec = {"replicas": replicas, "template": template, "update": update or {}}
    return Service.model_validate({"metadata": _meta(name, labels), "spec": spec})


_UNSET: Any = object()


def seen(
    obj: ManifestObject,
    *,
    owner: str | None = STACK,
    digest: str | None = None,
    manifest: Any = _UNSET,
) -> ObservedObject:
    """``obj`` as observed: applied by ``owner`` (the stack by default) from its manifest."""
    return ObservedObject(
        kind=obj.kind,
        name=obj.metadata.name,
        owner=owner,
        manifest=canonical(obj) if manifest is _UNSET else manifest,
        digest=digest,
    )


def want(*objects: ManifestObject, digests: dict[str, str] | None = None) -> Desired:
    return Desired(stack=STACK, objects=list(objects), image_digests=digests or {})


# --- actions -------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What one action must be. ``reasons`` and ``changes`` (paths) are exact when given."""

    op: str
    reasons: list[str] | None = None
    changes: list[str] | None = None
    rollout: bool | None = None


@dataclass
class Case:
    id: str
    desired: list[ManifestObject]
    observed: list[ObservedObject]
    expect: dict[str, Expect]
    digests: dict[str, str] = field(default_factory=dict)
    prune: bool = True
    prune_volumes: bool = False
    absent: list[str] = field(default_factory=list)  # keys that must have no action at all


WEB = ctr("web", image="app", networks=["front"], volumes=["data:/data"], ports=["8080:80"])
API = svc("api", replicas=2, image="app", networks=["front"])
STACK_OBJECTS: list[ManifestObject] = [
    img("app"),
    net("front", "10.1.0.0/24"),
    vol("data"),
    WEB,
    API,
]
UP_TO_DATE = Expect("noop", ["up to date"], [])


def _applied(*objects: ManifestObject) -> list[ObservedObject]:
    return [seen(o) for o in objects]


CASES = [
    Case(
        "create from empty",
        STACK_OBJECTS,
        [],
        {
            "image/app": Expect("create", ["not present"], []),
            "network/front": Expect("create", ["not present"], []),
            "volume/data": Expect("create", ["not present"], []),
            "container/web": Expect("create", ["not present"], []),
            "service/api": Expect("create", ["not present"], [], rollout=False),
        },
    ),
    Case(
        "noop when equal",
        STACK_OBJECTS,
        _applied(*STACK_OBJECTS),
        {f"{o.kind.lower()}/{o.metadata.name}": UP_TO_DATE for o in STACK_OBJECTS},
    ),
    Case(
        "labels change in place, every kind",
        [
            img("app", labels={"tier": "b"}),
            net("front", labels={"tier": "b"}),
            vol("data", labels={"tier": "b"}),
            ctr("web", labels={"tier": "b"}),
            svc("api", labels={"tier": "b"}),
        ],
        _applied(
            img("app", labels={"tier": "a"}),
            net("front"),
            vol("data", labels={"tier": "a"}),
            ctr("web", labels={"tier": "a"}),
            svc("api", labels={"tier": "a"}),
        ),
        {
            key: Expect("update", ["changed: metadata.labels.tier"], ["metadata.labels.tier"])
            for key in ("image/app", "network/front", "volume/data", "container/web", "service/api")
        },
    ),
    Case(
        "container resources and restart in place",
        [ctr("web", resources={"memory": "1g", "cpus": 2}, restart="always")],
        _applied(ctr("web", resources={"memory": "512m", "cpus": 2})),
        {
            "container/web": Expect(
                "update",
                ["changed: spec.resources.memory, spec.restart.name"],
                ["spec.resources.memory", "spec.restart.name"],
            )
        },
    ),
    Case(
        "service replicas and update policy in place, no rollout",
        [svc("api", replicas=3, update={"parallelism": 2})],
        _applied(svc("api", replicas=2)),
        {
            "service/api": Expect(
                "update",
                ["changed: spec.replicas, spec.update.parallelism"],
                ["spec.replicas", "spec.update.parallelism"],
                rollout=False,
            )
        },
    ),
    Case(
        "container image change recreates",
        [ctr("web", image="busybox:1.37")],
        _applied(ctr("web", image="busybox:1.36")),
        {"container/web": Expect("recreate", ["changed: spec.image"], ["spec.image"])},
    ),
    Case(
        "container command change recreates",
        [ctr("web", command=["serve", "--port", "81"])],
        _applied(ctr("web", command=["serve", "--port", "80"])),
        {"container/web": Expect("recreate", ["changed: spec.command[2]"], ["spec.command[2]"])},
    ),
    Case(
        "container ports change recreates",
        [ctr("web", ports=["8081:80"])],
        _applied(ctr("web", ports=["8080:80"])),
        {"container/web": Expect("recreate", ["changed: spec.ports[0].host_port"], ["spec.ports[0].host_port"])},
    ),
    Case(
        "container env change recreates",
        [ctr("web", env={"MODE": "prod", "NEW": "1"})],
        _applied(ctr("web", env={"MODE": "dev"})),
        {
            "container/web": Expect(
                "recreate",
                ["changed: spec.env.MODE, spec.env.NEW"],
                ["spec.env.MODE", "spec.env.NEW"],
            )
        },
    ),
    Case(
        "resources change with a recreating change recreates",
        [ctr("web", image="busybox:1.37", resources={"memory": "1g"})],
        _applied(ctr("web", image="busybox:1.36")),
        {"container/web": Expect("recreate", changes=["spec.image", "spec.resources.memory"])},
    ),
    Case(
        "service template change rolls out",
        [svc("api", env={"MODE": "prod"})],
        _applied(svc("api", env={"MODE": "dev"})),
        {
            "service/api": Expect(
                "update",
                ["changed: spec.template.env.MODE"],
                ["spec.template.env.MODE"],
                rollout=True,
            )
        },
    ),
    Case(
        "network subnet change recreates the network and what is attached",
        [
            net("front", "10.2.0.0/24"),
            ctr("web", networks=["front"]),
            svc("api", networks=["front"]),
            svc("batch", replicas=3, networks=["front"]),
            ctr("solo"),
        ],
        _applied(
            net("front", "10.1.0.0/24"),
            ctr("web", networks=["front"]),
            svc("api", networks=["front"]),
            svc("batch", replicas=2, networks=["front"]),
            ctr("solo"),
        ),
        {
            "network/front": Expect("recreate", ["changed: spec.subnet"], ["spec.subnet"]),
            "container/web": Expect("recreate", ["network/front is recreated"], []),
            "service/api": Expect("recreate", ["network/front is recreated"], [], rollout=False),
            "service/batch": Expect(
                "recreate",
                ["network/front is recreated", "changed: spec.replicas"],
                ["spec.replicas"],
                rollout=False,
            ),
            "container/solo": UP_TO_DATE,
        },
    ),
    Case(
        "volume option change is a conflict while the volume is retained",
        [vol("data", {"type": "tmpfs"}), ctr("web", volumes=["data:/data"])],
        _applied(vol("data", {"type": "nfs"}), ctr("web", volumes=["data:/data"])),
        {
            "volume/data": Expect(
                "conflict",
                [
                    "changing spec.options.type would recreate the volume and delete its data; "
                    "set retain_policy: delete, or remove the volume by hand"
                ],
                ["spec.options.type"],
            ),
            "container/web": UP_TO_DATE,
        },
    ),
    Case(
        "volume option change recreates with retain_policy delete",
        [vol("data", {"type": "tmpfs"}, retain="delete"), ctr("web", volumes=["data:/data"])],
        _applied(vol("data", {"type": "nfs"}, retain="delete"), ctr("web", volumes=["data:/data"])),
        {
            "volume/data": Expect("recreate", ["changed: spec.options.type"], ["spec.options.type"]),
            "container/web": Expect("recreate", ["volume/data is recreated"], []),
        },
    ),
    Case(
        "volume retain_policy change is in place and keeps the data",
        [vol("keep"), vol("drop", retain="delete"), ctr("web", volumes=["keep:/k", "drop:/d"])],
        _applied(vol("keep", retain="delete"), vol("drop"), ctr("web", volumes=["keep:/k", "drop:/d"])),
        {
            "volume/keep": Expect("update", ["changed: spec.retain_policy"], ["spec.retain_policy"]),
            "volume/drop": Expect("update", ["changed: spec.retain_policy"], ["spec.retain_policy"]),
            "container/web": UP_TO_DATE,
        },
    ),
    Case(
        "prune deletes owned objects no longer listed",
        [ctr("web")],
        _applied(
            ctr("web"),
            img("old"),
            net("old"),
            ctr("old"),
            svc("gone"),
            vol("scratch", retain="delete"),
        ),
        {
            "container/web": UP_TO_DATE,
            **{
                key: Expect("delete", ["no longer in the manifests"], [])
                for key in (
                    "image/old",
                    "network/old",
                    "container/old",
                    "service/gone",
                    "volume/scratch",
                )
            },
        },
    ),
    Case(
        "prune off keeps owned objects no longer listed",
        [ctr("web")],
        _applied(ctr("web"), net("old"), ctr("old"), vol("scratch", retain="delete")),
        {
            "container/web": UP_TO_DATE,
            **{
                key: Expect("noop", ["no longer in the manifests; kept (pruning is off)"], [])
                for key in ("network/old", "container/old", "volume/scratch")
            },
        },
        prune=False,
    ),
    Case(
        "retained volume kept by prune",
        [],
        [seen(vol("data")), seen(vol("legacy"), manifest=None)],
        {
            key: Expect(
                "noop",
                ["no longer in the manifests; kept: retain_policy retain (use --prune-volumes)"],
                [],
            )
            for key in ("volume/data", "volume/legacy")
        },
    ),
    Case(
        "retained volume deleted with prune_volumes",
        [],
        [seen(vol("data")), seen(vol("legacy"), manifest=None)],
        {
            "volume/data": Expect("delete", ["no longer in the manifests"]),
            "volume/legacy": Expect("delete", ["no longer in the manifests"]),
        },
        prune_volumes=True,
    ),
    Case(
        "objects of other stacks and unowned objects are never touched",
        [ctr("web")],
        [
            seen(ctr("web")),
            seen(ctr("theirs"), owner="blog"),
            seen(vol("theirs"), owner="blog"),
            seen(net("handmade"), owner=None, manifest=None),
        ],
        {"container/web": UP_TO_DATE},
        prune_volumes=True,
        absent=["container/theirs", "volume/theirs", "network/handmade"],
    ),
    Case(
        "a desired object colliding with a foreign one is a conflict",
        [ctr("web"), net("front"), vol("data")],
        [
            seen(ctr("web"), owner="blog"),
            seen(net("front"), owner=None, manifest=None),
            seen(vol("data", {"type": "nfs"}), owner="blog"),
        ],
        {
            "container/web": Expect("conflict", ["a Container named 'web' exists and belongs to stack 'blog'"], []),
            "network/front": Expect(
                "conflict",
                ["a Network named 'front' exists and belongs to nobody (made by hand)"],
                [],
            ),
            "volume/data": Expect("conflict", ["a Volume named 'data' exists and belongs to stack 'blog'"]),
        },
    ),
    Case(
        "no record of the applied manifest recreates; a volume or an image is adopted",
        [img("app"), net("front"), vol("data"), ctr("web"), svc("api")],
        [
            seen(img("app"), manifest=None),
            seen(net("front"), manifest=None),
            seen(vol("data"), manifest=None),
            seen(ctr("web"), manifest=None),
            seen(svc("api"), manifest=None),
        ],
        {
            **{
                key: Expect("recreate", ["no record of the applied manifest"], [])
                for key in ("network/front", "container/web", "service/api")
            },
            "volume/data": Expect("update", ["adopt: no record of the applied manifest"], []),
            "image/app": Expect("update", ["adopt: no record of the applied manifest"], []),
        },
    ),
    Case(
        "image digest change updates the image, recreates containers, rolls services out",
        [
            img("app"),
            ctr("web", image="app"),
            svc("api", image="app"),
            ctr("side", image="busybox:1.36"),
        ],
        [
            seen(img("app"), digest=DIGEST_A),
            seen(ctr("web", image="app"), digest=DIGEST_A),
            seen(svc("api", image="app"), digest=DIGEST_A),
            seen(ctr("side", image="busybox:1.36"), digest=DIGEST_A),
        ],
        {
            "image/app": Expect("update", ["changed: digest"], ["digest"]),
            "container/web": Expect("recreate", ["changed: image digest"], ["image digest"]),
            "service/api": Expect("update", ["changed: image digest"], ["image digest"], rollout=True),
            "container/side": UP_TO_DATE,
        },
        digests={"app": DIGEST_B},
    ),
    Case(
        "a rolling update that would hold a network its new template waits for is a recreate",
        [net("front", "10.2.0.0/24"), ctr("db", networks=["front"]), svc("api", depends_on=["db"])],
        _applied(net("front", "10.1.0.0/24"), ctr("db", networks=["front"]), svc("api", networks=["front"])),
        {
            "network/front": Expect("recreate", ["changed: spec.subnet"]),
            "container/db": Expect("recreate", ["network/front is recreated"]),
            "service/api": Expect(
                "recreate",
                [
                    "recreated: an update in place would still hold network/front when it is needed",
                    "changed: spec.template.depends_on.db, spec.template.networks.front",
                ],
                ["spec.template.depends_on.db", "spec.template.networks.front"],
                rollout=False,
            ),
        },
    ),
    Case(
        "a rolling update that would hold a host port its new template waits for is a recreate",
        [ctr("new", ports=["8080:80"]), svc("api", ports=["8081:80"], depends_on=["new"])],
        _applied(svc("api", ports=["8080:80"])),
        {
            "container/new": Expect("create", ["not present"]),
            "service/api": Expect(
                "recreate",
                [
                    "recreated: an update in place would still hold host port 8080/tcp when it is needed",
                    "changed: spec.template.depends_on.new, spec.template.ports[0].host_port",
                ],
                rollout=False,
            ),
        },
    ),
    Case(
        "service replicas and digest change together roll out",
        [svc("api", replicas=3, image="app")],
        [seen(svc("api", replicas=2, image="app"), digest=DIGEST_A)],
        {
            "service/api": Expect(
                "update",
                ["changed: spec.replicas, image digest"],
                ["spec.replicas", "image digest"],
                rollout=True,
            )
        },
        digests={"app": DIGEST_B},
    ),
    Case(
        "unknown digest on either side is no change",
        [img("app"), img("tool"), ctr("web", image="app"), svc("api", image="tool")],
        [
            seen(img("app"), digest=DIGEST_A),
            seen(img("tool"), digest=None),
            seen(ctr("web", image="app"), digest=DIGEST_A),
            seen(svc("api", image="tool"), digest=None),
        ],
        {
            "image/app": UP_TO_DATE,
            "image/tool": UP_TO_DATE,
            "container/web": UP_TO_DATE,
            "service/api": UP_TO_DATE,
        },
        digests={"tool": DIGEST_B},
    ),
    Case(
        "canonical quantities compare equal",
        [
            ctr(
                "web",
                resources={"memory": "512m", "cpus": "500m"},
                stop_grace_period="1m30s",
                healthcheck={"test": "true", "interval": "30s"},
            )
        ],
        [
            seen(
                ctr("web"),
                manifest=json.loads(  # as the state store hands it back
                    json.dumps(
                        canonical(
                            ctr(
                                "web",
                                resources={"memory": 536870912, "cpus": 0.5},
                                stop_grace_period=90,
                                healthcheck={"test": ["CMD-SHELL", "true"], "interval": 30},
                            )
                        )
                    )
                ),
            )
        ],
        {"container/web": UP_TO_DATE},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_actions(case: Case) -> None:
    desired = want(*case.desired, digests=case.digests)
    observed = Observed(objects=case.observed)
    result = plan(desired, observed, prune=case.prune, prune_volumes=case.prune_volumes)
    actions = {a.key: a for a in result.actions}

    assert set(actions) == set(case.expect), "every desired and owned object has one action"
    for key, expect in case.expect.items():
        action = actions[key]
        assert action.op == expect.op, (key, action.reasons)
        if expect.reasons is not None:
            assert action.reasons == expect.reasons, key
        if expect.changes is not None:
            assert [c.path for c in action.changes] == expect.changes, key
        if expect.rollout is not None:
            assert action.rollout is expect.rollout, key
        assert action.reasons, f"{key}: every action says why"
        assert (action.wave is None) == (action.op in ("noop", "conflict")), key
    for key in case.absent:
        assert key not in actions

    if not result.has_conflicts:
        final = by_key(simulate(observed, result, desired))
        final_reversed = by_key(simulate(observed, result, desired, order="reversed"))
        assert final == final_reversed
        for key, obj in by_key(observed_from(desired)).items():
            assert final[key].manifest == obj.manifest, key
        for key, obs in by_key(observed).items():
            if actions.get(key) is None or actions[key].op == "noop":
                assert final[key] == obs, f"{key} was left alone"


def test_changes_carry_old_and_new_values() -> None:
    desired = want(ctr("web", resources={"memory": "1g"}), digests={"busybox:1.36": DIGEST_B})
    observed = Observed(objects=[seen(ctr("web", resources={"memory": "512m"}), digest=DIGEST_A)])
    (action,) = plan(desired, observed).actions
    assert action.op == "recreate"
    assert [(c.path, c.old, c.new) for c in action.changes] == [
        ("spec.resources.memory", 512 * 1024**2, 1024**3),
        ("image digest", DIGEST_A, DIGEST_B),
    ]


def test_in_place_change_of_a_hard_dependency_leaves_users_alone() -> None:
    desired = want(net("front", labels={"a": "b"}), ctr("web", networks=["front"]))
    observed = Observed(objects=_applied(net("front"), ctr("web", networks=["front"])))
    actions = {a.key: a.op for a in plan(desired, observed).actions}
    assert actions == {"network/front": "update", "container/web": "noop"}


def test_image_adoption_does_not_recreate_users() -> None:
    """An image is a soft dependency: re-recording it changes nothing for its users
    until their digest changes."""
    desired = want(img("app"), ctr("web", image="app"))
    observed = Observed(objects=[seen(img("app"), manifest=None), seen(ctr("web", image="app"))])
    actions = {a.key: a.op for a in plan(desired, observed).actions}
    assert actions == {"image/app": "update", "container/web": "noop"}


# --- order ---------------------------------------------------------------------


@dataclass
class OrderCase:
    id: str
    desired: list[ManifestObject]
    observed: list[ObservedObject]
    before: list[tuple[str, str]]  # step a runs in an earlier wave than, and is waited for by, b
    same_wave: list[tuple[str, str]] = field(default_factory=list)
    waves: dict[str, int] | None = None  # exact wave of some steps


ORDER_CASES = [
    OrderCase(
        "images, networks and volumes before workloads; depends_on respected",
        [
            ctr("db", image="app", volumes=["data:/var/lib/db"], networks=["back"]),
            svc("api", image="app", networks=["back", "front"], depends_on=["db"]),
            ctr("proxy", networks=["front"], depends_on=["api"]),
            img("app"),
            net("front"),
            net("back"),
            vol("data"),
        ],
        [],
        before=[
            ("setup:image/app", "setup:container/db"),
            ("setup:volume/data", "setup:container/db"),
            ("setup:network/back", "setup:container/db"),
            ("setup:container/db", "setup:service/api"),
            ("setup:network/front", "setup:service/api"),
            ("setup:service/api", "setup:container/proxy"),
        ],
        same_wave=[
            ("setup:image/app", "setup:network/front"),
            ("setup:network/front", "setup:network/back"),
            ("setup:network/back", "setup:volume/data"),
        ],
        waves={
            "setup:image/app": 0,
            "setup:container/db": 1,
            "setup:service/api": 2,
            "setup:container/proxy": 3,
        },
    ),
    OrderCase(
        "deletes in reverse order: users before what they use",
        [],
        _applied(
            net("old"),
            vol("scratch", retain="delete"),
            img("old"),
            ctr("old", image="old", networks=["old"], volumes=["scratch:/s"]),
            svc("front", depends_on=["old"], networks=["old"]),
        ),
        before=[
            ("teardown:service/front", "teardown:container/old"),
            ("teardown:container/old", "teardown:network/old"),
            ("teardown:container/old", "teardown:volume/scratch"),
            ("teardown:container/old", "teardown:image/old"),
            ("teardown:service/front", "teardown:network/old"),
        ],
        same_wave=[("teardown:network/old", "teardown:volume/scratch")],
        waves={"teardown:service/front": 0, "teardown:container/old": 1, "teardown:network/old": 2},
    ),
    OrderCase(
        "recreate: teardown before setup, and attached users around the network",
        [net("front", "10.2.0.0/24"), ctr("web", networks=["front"])],
        _applied(net("front", "10.1.0.0/24"), ctr("web", networks=["front"])),
        before=[
            ("teardown:container/web", "teardown:network/front"),
            ("teardown:network/front", "setup:network/front"),
            ("setup:network/front", "setup:container/web"),
        ],
        waves={
            "teardown:container/web": 0,
            "teardown:network/front": 1,
            "setup:network/front": 2,
            "setup:container/web": 3,
        },
    ),
    OrderCase(
        "a host port freed by a deleted container is claimed after its teardown",
        [ctr("new", ports=["8080:80"]), ctr("other", ports=["9090:90"])],
        _applied(ctr("old", ports=["8080:80"])),
        before=[("teardown:container/old", "setup:container/new")],
        same_wave=[("teardown:container/old", "setup:container/other")],
    ),
    OrderCase(
        "a host port moving between recreated containers",
        [ctr("a", ports=["8081:80"]), ctr("b", ports=["8080:80"])],
        _applied(ctr("a", ports=["8080:80"]), ctr("b", ports=["8081:80"])),
        before=[
            ("teardown:container/a", "setup:container/a"),
            ("teardown:container/b", "setup:container/b"),
            ("teardown:container/a", "setup:container/b"),
            ("teardown:container/b", "setup:container/a"),
        ],
        same_wave=[("teardown:container/a", "teardown:container/b")],
    ),
    OrderCase(
        "a rolling update leaves a network before it is deleted",
        [net("new"), svc("api", networks=["new"])],
        _applied(net("old"), svc("api", networks=["old"])),
        before=[
            ("setup:network/new", "setup:service/api"),
            ("setup:service/api", "teardown:network/old"),
        ],
        waves={"setup:network/new": 0, "setup:service/api": 1, "teardown:network/old": 2},
    ),
    OrderCase(
        "a rolling update leaves an image and a depends_on target before they are deleted",
        [img("v2"), svc("api", image="v2")],
        _applied(img("v1"), ctr("db"), svc("api", image="v1", depends_on=["db"])),
        before=[
            ("setup:image/v2", "setup:service/api"),
            ("setup:service/api", "teardown:image/v1"),
            ("setup:service/api", "teardown:container/db"),
        ],
    ),
    OrderCase(
        "a host port freed by a rolling update is claimed after it",
        [ctr("new", ports=["8080:80"]), svc("api", ports=["8081:80"])],
        _applied(svc("api", ports=["8080:80"])),
        before=[("setup:service/api", "setup:container/new")],
    ),
    OrderCase(
        "an update waits for the image it uses to be adopted",
        [img("app"), svc("api", image="app", replicas=2)],
        [seen(img("app"), manifest=None), seen(svc("api", image="app"))],
        before=[("setup:image/app", "setup:service/api")],
    ),
    OrderCase(
        "independent actions share a wave",
        [ctr("a"), ctr("b", image="busybox:1.37"), svc("c", replicas=2), net("n"), vol("v")],
        [*_applied(ctr("b", image="busybox:1.36"), svc("c", replicas=1)), seen(ctr("gone"))],
        before=[("teardown:container/b", "setup:container/b")],
        same_wave=[
            ("setup:container/a", "teardown:container/b"),
            ("teardown:container/b", "setup:service/c"),
            ("setup:service/c", "setup:network/n"),
            ("setup:network/n", "setup:volume/v"),
            ("setup:volume/v", "teardown:container/gone"),
        ],
    ),
]


def _waited_for(result: Plan) -> dict[str, set[str]]:
    """Every step with the set of steps it waits for, directly or through others."""
    direct = {f"{s.phase}:{s.key}": set(s.after) for s in result.steps}
    closure: dict[str, set[str]] = {}
    for node in direct:  # steps are listed by wave, so dependencies are closed first
        closure[node] = set(direct[node])
        for before in direct[node]:
            closure[node] |= closure[before]
    return closure


@pytest.mark.parametrize("case", ORDER_CASES, ids=[c.id for c in ORDER_CASES])
def test_order(case: OrderCase) -> None:
    desired = want(*case.desired)
    observed = Observed(objects=case.observed)
    result = plan(desired, observed)
    wave = {f"{s.phase}:{s.key}": s.wave for s in result.steps}
    waited = _waited_for(result)

    for step in result.steps:
        assert all(wave[b] < step.wave for b in step.after), step
    assert [s.wave for s in result.steps] == sorted(s.wave for s in result.steps)
    for a, b in case.before:
        assert wave[a] < wave[b], (a, b)
        assert a in waited[b], (a, b)
    for a, b in case.same_wave:
        assert wave[a] == wave[b], (a, b)
    for node, expected in (case.waves or {}).items():
        assert wave[node] == expected, node
    for action in result.actions:
        steps = [s for s in result.steps if s.key == action.key]
        if steps:
            assert action.wave == min(s.wave for s in steps)
    simulate(observed, result, desired)
    simulate(observed, result, desired, order="reversed")


def test_actions_listed_by_first_wave_then_kind_and_name() -> None:
    desired = want(ctr("b", image="app"), ctr("a", image="app"), img("app"), net("z"))
    observed = Observed(objects=_applied(net("z")))
    result = plan(desired, observed)
    assert [(a.key, a.wave) for a in result.actions] == [
        ("image/app", 0),
        ("container/a", 1),
        ("container/b", 1),
        ("network/z", None),
    ]
    assert result.actions[1].depends_on == ["image/app"]


# --- JSON output ---------------------------------------------------------------


def test_json_output_is_stable() -> None:
    desired = want(img("app"), ctr("web", image="app", ports=["8080:80"]))
    observed = Observed(objects=[seen(ctr("web", image="app", ports=["8081:80"])), seen(net("old"))])
    result = plan(desired, observed)
    data = result.model_dump(mode="json")

    assert list(data) == ["format_version", "stack", "actions", "steps"]
    assert data["format_version"] == FORMAT_VERSION == 1
    assert data["stack"] == STACK
    for action in data["actions"]:
        assert list(action) == [
            "key",
            "kind",
            "name",
            "op",
            "reasons",
            "changes",
            "rollout",
            "depends_on",
            "wave",
        ]
        for change in action["changes"]:
            assert list(change) == ["path", "old", "new"]
    for step in data["steps"]:
        assert list(step) == ["wave", "key", "phase", "after"]

    assert data["actions"] == [
        {
            "key": "image/app",
            "kind": "Image",
            "name": "app",
            "op": "create",
            "reasons": ["not present"],
            "changes": [],
            "rollout": False,
            "depends_on": [],
            "wave": 0,
        },
        {
            "key": "network/old",
            "kind": "Network",
            "name": "old",
            "op": "delete",
            "reasons": ["no longer in the manifests"],
            "changes": [],
            "rollout": False,
            "depends_on": [],
            "wave": 0,
        },
        {
            "key": "container/web",
            "kind": "Container",
            "name": "web",
            "op": "recreate",
            "reasons": ["changed: spec.ports[0].host_port"],
            "changes": [{"path": "spec.ports[0].host_port", "old": 8081, "new": 8080}],
            "rollout": False,
            "depends_on": ["image/app"],
            "wave": 0,
        },
    ]
    assert data["steps"] == [
        {"wave": 0, "key": "network/old", "phase": "teardown", "after": []},
        {"wave": 0, "key": "container/web", "phase": "teardown", "after": []},
        {"wave": 0, "key": "image/app", "phase": "setup", "after": []},
        {
            "wave": 1,
            "key": "container/web",
            "phase": "setup",
            "after": ["setup:image/app", "teardown:container/web"],
        },
    ]

    text = json.dumps(data, sort_keys=True)
    again = plan(desired, observed).model_dump(mode="json")
    assert json.dumps(again, sort_keys=True) == text
    assert Plan.model_validate(json.loads(text)) == result
    assert json.loads(result.model_dump_json()) == data


def test_observed_from_records_owner_manifest_and_digests() -> None:
    desired = want(
        img("app"),
        ctr("web", image="app"),
        svc("api", image="busybox:1.36"),
        ctr("x", image="other:1"),
        net("n"),
        digests={"app": DIGEST_A, "busybox:1.36": DIGEST_B},
    )
    world = by_key(observed_from(desired))
    assert {k: (o.owner, o.digest) for k, o in world.items()} == {
        "image/app": (STACK, DIGEST_A),
        "container/web": (STACK, DIGEST_A),
        "service/api": (STACK, DIGEST_B),
        "container/x": (STACK, None),
        "network/n": (STACK, None),
    }
    for obj in desired.objects:
        assert world[object_key(obj.kind, obj.metadata.name)].manifest == canonical(obj)


# --- the simulator's checker ---------------------------------------------------


def _hand_plan(actions: dict[str, str], steps: list[tuple[int, str]]) -> Plan:
    """A plan written by hand: ``actions`` maps keys to ops, ``steps`` are (wave, "phase:key")."""
    return Plan(
        stack=STACK,
        actions=[
            Action(key=key, kind=key.split("/")[0].capitalize(), name=key.split("/")[1], op=op)
            for key, op in actions.items()
        ],
        steps=[Step(wave=wave, phase=node.split(":")[0], key=node.split(":")[1]) for wave, node in steps],
    )


CHECKER_CASES = [
    pytest.param(
        [net("front"), ctr("web", networks=["front"])],
        [],
        {"network/front": "create", "container/web": "create"},
        [(0, "setup:container/web"), (1, "setup:network/front")],
        "setup:container/web (wave 0): needs network/front, which is not present",
        id="setup before a dependency",
    ),
    pytest.param(
        [],
        _applied(net("old"), ctr("old", networks=["old"])),
        {"network/old": "delete", "container/old": "delete"},
        [(0, "teardown:network/old"), (1, "teardown:container/old")],
        "teardown:network/old (wave 0): container/old still uses network/old, which is deleted",
        id="teardown before a user",
    ),
    pytest.param(
        [net("front", "10.2.0.0/24"), ctr("web", networks=["front"])],
        _applied(net("front", "10.1.0.0/24"), ctr("web", networks=["front"])),
        {"network/front": "recreate", "container/web": "noop"},
        [(0, "teardown:network/front"), (1, "setup:network/front")],
        "container/web still uses network/front, which is recreated",
        id="network recreated under an attached container",
    ),
    pytest.param(
        [ctr("new", ports=["8080:80"])],
        _applied(ctr("old", ports=["8080:80"])),
        {"container/new": "create", "container/old": "delete"},
        [(0, "setup:container/new"), (1, "teardown:container/old")],
        "setup:container/new (wave 0): binds host port 8080/tcp, still held by container/old",
        id="host port claimed before it is freed",
    ),
    pytest.param(
        [ctr("web")],
        _applied(ctr("web", image="busybox:1.37")),
        {"container/web": "recreate"},
        [(0, "setup:container/web")],
        "creates an object that is still present",
        id="recreate without its teardown",
    ),
    pytest.param(
        [ctr("web")],
        [],
        {"container/web": "update"},
        [(0, "setup:container/web")],
        "updates an object that is not present",
        id="update of a missing object",
    ),
    pytest.param(
        [ctr("web")],
        _applied(ctr("web")),
        {"container/web": "noop"},
        [(0, "setup:container/web")],
        "has no action that runs steps",
        id="step of a noop",
    ),
]


@pytest.mark.parametrize(("desired", "observed", "actions", "steps", "message"), CHECKER_CASES)
def test_checker_rejects_impossible_orders(desired, observed, actions, steps, message) -> None:
    bad = _hand_plan(actions, steps)
    with pytest.raises(OrderViolation) as caught:
        simulate(Observed(objects=observed), bad, want(*desired))
    assert message in str(caught.value)
    simulate(Observed(objects=observed), bad, want(*desired), check=False)  # and runs unchecked


def test_checker_runs_each_wave_both_ways() -> None:
    """A dependency missing from ``after`` inside one wave shows when the wave is reversed."""
    desired = want(net("front"), ctr("web", networks=["front"]))
    bad = _hand_plan(
        {"network/front": "create", "container/web": "create"},
        [(0, "setup:network/front"), (0, "setup:container/web")],
    )
    final = simulate(Observed(), bad, desired)
    assert by_key(final) == by_key(observed_from(desired))
    with pytest.raises(OrderViolation, match="needs network/front"):
        simulate(Observed(), bad, desired, order="reversed")


def test_checker_lets_a_soft_dependency_be_replaced_under_its_user() -> None:
    """A depends_on target may be recreated while its users run on (an image without
    a record is adopted, never replaced under its users)."""
    desired = want(img("app"), ctr("db"), ctr("web", image="app", depends_on=["db"]))
    observed = Observed(
        objects=[
            seen(img("app"), manifest=None),
            seen(ctr("db"), manifest=None),
            seen(ctr("web", image="app", depends_on=["db"])),
        ]
    )
    result = plan(desired, observed)
    assert {a.key: a.op for a in result.actions} == {
        "image/app": "update",
        "container/db": "recreate",
        "container/web": "noop",
    }
    assert by_key(simulate(observed, result, desired)) == by_key(observed_from(desired))


def test_a_depends_on_cycle_in_recorded_manifests_still_plans() -> None:
    """Records from two versions (v1: a -> b, v2: b -> a) after a partly failed apply
    form a cycle; pruning both must still give an executable plan, not a crash."""
    observed = Observed(
        objects=[
            seen(ctr("a", depends_on=["b"])),
            seen(ctr("b", depends_on=["a"])),
        ]
    )
    desired = want()
    result = plan(desired, observed)
    assert {a.key: a.op for a in result.actions} == {"container/a": "delete", "container/b": "delete"}
    # one of the two must go first while the other still names it: the cycle is broken
    # at a soft reference, so the strict order checker is off and only convergence counts
    assert by_key(simulate(observed, result, desired, check=False)) == {}
    waves = {s.key: s.wave for s in result.steps}
    assert waves["container/a"] != waves["container/b"]
