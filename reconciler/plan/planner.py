"""``plan(desired, observed) -> Plan``: pure, deterministic, no I/O.

Every object ends in exactly one action, and every branch says why: a noop carries
its reason too ("up to date", "kept: retain_policy retain"). Steps order the work:
a dependency is set up before what uses it and torn down after it.
"""

from __future__ import annotations

from typing import Any

from reconciler.model.manifest import Desired, canonical, object_key
from reconciler.model.observed import Observed, ObservedObject
from reconciler.model.plan import Action, Change, Phase, Plan, Step
from reconciler.plan import diff as diffs
from reconciler.plan import graph


def plan(desired: Desired, observed: Observed, *, prune: bool = True, prune_volumes: bool = False) -> Plan:
    """Diff ``desired`` against ``observed`` into an ordered plan.

    ``prune`` deletes objects this stack owns that the manifests no longer list;
    volumes among them only when ``prune_volumes`` or their retain policy allows.
    Objects owned by another stack or by nobody are never touched: one that
    collides with a desired name becomes a ``conflict`` action.
    """
    wanted: dict[str, dict[str, Any]] = {}
    for obj in desired.objects:
        wanted[object_key(obj.kind, obj.metadata.name)] = canonical(obj)
    existing: dict[str, ObservedObject] = {object_key(o.kind, o.name): o for o in observed.objects}

    actions: dict[str, Action] = {}
    for key, manifest in wanted.items():
        actions[key] = _desired_action(key, manifest, existing.get(key), desired)
    for key, obs in existing.items():
        if key not in wanted and obs.owner == desired.stack:
            actions[key] = _pruned_action(key, obs, prune=prune, prune_volumes=prune_volumes)

    _propagate_recreates(actions, wanted)
    edges, stuck = _steps(actions, wanted, existing)
    while stuck:
        for key, held in sorted(stuck.items()):
            action = actions[key]
            held_text = ", ".join(sorted(held))
            reason = f"recreated: an update in place would still hold {held_text} when it is needed"
            actions[key] = action.model_copy(
                update={"op": "recreate", "reasons": [reason, *action.reasons], "rollout": False}
            )
        edges, stuck = _steps(actions, wanted, existing)
    return _ordered(desired.stack, actions, edges)


def _action(
    key: str, obj_kind: str, name: str, op: str, reason: str, changes: list[Change] | None = None, rollout: bool = False
) -> Action:
    return Action(key=key, kind=obj_kind, name=name, op=op, reasons=[reason], changes=changes or [], rollout=rollout)


def _desired_action(key: str, manifest: dict[str, Any], obs: ObservedObject | None, desired: Desired) -> Action:
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    if obs is None:
        return _action(key, kind, name, "create", "not present")
    if obs.owner != desired.stack:
        owner = f"stack {obs.owner!r}" if obs.owner else "nobody (made by hand)"
        return _action(key, kind, name, "conflict", f"a {kind} named {name!r} exists and belongs to {owner}")
    if obs.manifest is None:
        if kind in ("Volume", "Image"):
            # a volume holds data; an image may be running in containers: record, don't replace
            return _action(key, kind, name, "update", "adopt: no record of the applied manifest")
        return _action(key, kind, name, "recreate", "no record of the applied manifest")

    changes = diffs.diff(obs.manifest, manifest)
    digest_change = _digest_change(kind, manifest, obs, desired)
    if not changes and digest_change is None:
        return _action(key, kind, name, "noop", "up to date")

    op, rollout = diffs.classify(kind, changes) if changes else ("update", False)
    if digest_change is not None:
        changes.append(digest_change)
        if kind == "Container":
            op = "recreate"
        elif kind == "Service" and op == "update":
            rollout = True
    if kind == "Volume" and op == "recreate" and manifest["spec"].get("retain_policy") != "delete":
        fields = ", ".join(c.path for c in changes)
        return _action(
            key,
            kind,
            name,
            "conflict",
            f"changing {fields} would recreate the volume and delete its data; "
            "set retain_policy: delete, or remove the volume by hand",
            changes,
        )
    reason = "changed: " + ", ".join(c.path for c in changes)
    return _action(key, kind, name, op, reason, changes, rollout)


def _digest_change(kind: str, manifest: dict[str, Any], obs: ObservedObject, desired: Desired) -> Change | None:
    """A tag that now resolves to another digest rolls out like a spec change."""
    if kind == "Image":
        image_name = manifest["metadata"]["name"]
    else:
        spec = graph.workload_spec(manifest)
        image_name = spec.get("image") if spec else None
    new = desired.image_digests.get(image_name) if isinstance(image_name, str) else None
    if new is None or obs.digest is None or obs.digest == new:
        return None
    return Change(path="image digest" if kind != "Image" else "digest", old=obs.digest, new=new)


def _pruned_action(key: str, obs: ObservedObject, *, prune: bool, prune_volumes: bool) -> Action:
    if not prune:
        return _action(key, obs.kind, obs.name, "noop", "no longer in the manifests; kept (pruning is off)")
    if obs.kind == "Volume" and not prune_volumes:
        policy = ((obs.manifest or {}).get("spec") or {}).get("retain_policy", "retain")
        if policy != "delete":
            return _action(
                key,
                obs.kind,
                obs.name,
                "noop",
                "no longer in the manifests; kept: retain_policy retain (use --prune-volumes)",
            )
    return _action(key, obs.kind, obs.name, "delete", "no longer in the manifests")


def _propagate_recreates(actions: dict[str, Action], wanted: dict[str, dict[str, Any]]) -> None:
    """Replacing a network or volume replaces the workloads attached to it."""
    for key, manifest in wanted.items():
        action = actions[key]
        if action.op not in ("noop", "update"):
            continue
        causes = [
            ref.key for ref in graph.references(manifest, wanted) if ref.hard and actions[ref.key].op == "recreate"
        ]
        if causes:
            reasons = [*(f"{c} is recreated" for c in causes), *([] if action.op == "noop" else action.reasons)]
            actions[key] = action.model_copy(update={"op": "recreate", "reasons": reasons, "rollout": False})


_PHASES: dict[str, tuple[Phase, ...]] = {
    "create": ("setup",),
    "update": ("setup",),
    "recreate": ("teardown", "setup"),
    "delete": ("teardown",),
    "noop": (),
    "conflict": (),
}


def _steps(
    actions: dict[str, Action], wanted: dict[str, dict[str, Any]], existing: dict[str, ObservedObject]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Each step ``phase:key`` with the steps it waits for.

    Edges: a recreate tears down before it sets up; a dependency is set up before
    its user (desired manifests) and torn down after it (observed manifests); a
    host port freed by a teardown is claimed by a setup only after it.

    An in-place update (a Service rollout) has no teardown: it stops using what
    its old manifest used, and frees the host ports it no longer publishes, only
    once its setup has run. So a network, volume or deleted object it drops is
    torn down, and a port it frees is claimed, after that setup. Such an edge
    can close a cycle (the new template depends on what the old one holds); such
    updates are returned, with what they hold, to be recreated instead.
    """
    nodes = [f"{phase}:{key}" for key, a in actions.items() for phase in _PHASES[a.op]]
    edges: dict[str, set[str]] = {n: set() for n in nodes}

    def link(before: str, after: str) -> None:
        if before in edges and after in edges and before != after:
            edges[after].add(before)

    freed: dict[tuple[str, int], list[str]] = {}
    releases: set[tuple[str, str, str]] = set()  # (before, after, what is released)
    for key in actions:
        link(f"teardown:{key}", f"setup:{key}")
        if key in wanted:
            for ref in graph.references(wanted[key], wanted):
                link(f"setup:{ref.key}", f"setup:{key}")
        obs = existing.get(key)
        if obs is None or obs.manifest is None:
            continue
        if f"teardown:{key}" in edges:
            for ref in graph.references(obs.manifest, existing):
                before, after = f"teardown:{key}", f"teardown:{ref.key}"
                # Recorded manifests may come from different versions (a partly failed
                # apply): a soft reference (depends_on, image) that would close a cycle
                # is dropped, since such a reference may dangle for a moment anyway.
                if ref.hard or after not in edges or not _waits_for(edges, before, after):
                    link(before, after)
            for port in graph.host_ports(obs.manifest):
                freed.setdefault(port, []).append(f"teardown:{key}")
        elif f"setup:{key}" in edges and key in wanted:
            kept = {ref.key for ref in graph.references(wanted[key], existing)}
            for ref in graph.references(obs.manifest, existing):
                gone = f"setup:{ref.key}" not in edges
                if ref.key not in kept and (ref.hard or gone):
                    releases.add((f"setup:{key}", f"teardown:{ref.key}", ref.key))
            for port in graph.host_ports(obs.manifest) - graph.host_ports(wanted[key]):
                freed.setdefault(port, []).append(f"setup:{key}")
    for key, manifest in wanted.items():
        for port in graph.host_ports(manifest):
            for before in freed.get(port, []):
                if before.startswith("teardown:"):
                    link(before, f"setup:{key}")
                else:
                    releases.add((before, f"setup:{key}", f"host port {port[1]}/{port[0]}"))
    stuck: dict[str, set[str]] = {}
    for before, after, what in sorted(releases):
        if before in edges and after in edges and before != after:
            if _waits_for(edges, before, after):
                stuck.setdefault(before.split(":", 1)[1], set()).add(what)
            else:
                link(before, after)
    return edges, stuck


def _waits_for(edges: dict[str, set[str]], node: str, target: str) -> bool:
    """Whether ``node`` already waits, directly or not, for ``target``."""
    seen = {node}
    todo = [node]
    while todo:
        for before in edges[todo.pop()]:
            if before == target:
                return True
            if before not in seen:
                seen.add(before)
                todo.append(before)
    return False


def _ordered(stack: str, actions: dict[str, Action], edges: dict[str, set[str]]) -> Plan:
    """Steps by wave; actions by their first wave, then noops; ties by kind and name."""
    levels = graph.waves(list(edges), edges)

    def step_sort(node: str) -> tuple[int, int, int, str]:
        phase, key = node.split(":", 1)
        return (levels[node], 0 if phase == "teardown" else 1, graph.KIND_ORDER[actions[key].kind], key)

    steps = [
        Step(wave=levels[node], key=node.split(":", 1)[1], phase=node.split(":", 1)[0], after=sorted(edges[node]))
        for node in sorted(edges, key=step_sort)
    ]
    first_wave: dict[str, int] = {}
    depends: dict[str, set[str]] = {}
    for step in steps:
        first_wave.setdefault(step.key, step.wave)
        depends.setdefault(step.key, set()).update(b.split(":", 1)[1] for b in step.after)
    ordered = []
    for key, action in actions.items():
        ordered.append(
            action.model_copy(
                update={"wave": first_wave.get(key), "depends_on": sorted(depends.get(key, set()) - {key})}
            )
        )
    ordered.sort(key=lambda a: (a.wave is None, a.wave or 0, graph.KIND_ORDER[a.kind], a.name))
    return Plan(stack=stack, actions=ordered, steps=steps)
