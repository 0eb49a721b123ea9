"""Field-level differences between two canonical manifests, and which of them a
kind can apply in place.
"""

from __future__ import annotations

from typing import Any

from reconciler.model.plan import Change

#: Path prefixes each kind can change without replacing the object.
IN_PLACE: dict[str, tuple[str, ...]] = {
    "Image": ("spec",),  # a new source is fetched or built and the name repointed
    "Network": (),
    "Volume": ("spec.retain_policy",),  # a policy of ours, not of the volume: no data is touched
    "Container": ("spec.resources", "spec.restart"),  # as `docker update`
    "Service": ("spec.replicas", "spec.update"),
}
#: Applies to every kind: labels and annotations live in our records.
IN_PLACE_ALL = ("metadata.labels", "metadata.annotations")
#: Path prefixes whose change replaces a Service's replicas batch by batch.
ROLLOUT: dict[str, tuple[str, ...]] = {"Service": ("spec.template",)}


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Changes from ``old`` to ``new``; mappings and equal-length lists are descended into."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for key in sorted(old.keys() | new.keys(), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(Change(path=sub, old=None, new=new[key]))
            elif key not in new:
                out.append(Change(path=sub, old=old[key], new=None))
            else:
                out.extend(diff(old[key], new[key], sub))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            out.extend(diff(a, b, f"{path}[{index}]"))
        return out
    return [Change(path=path, old=old, new=new)]


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith((p + ".", p + "[")) for p in prefixes)


def classify(kind: str, changes: list[Change]) -> tuple[str, bool]:
    """``("update", rollout)`` when every change can be applied without replacing
    the object, else ``("recreate", False)``.
    """
    in_place = IN_PLACE_ALL + IN_PLACE.get(kind, ())
    rollout_paths = ROLLOUT.get(kind, ())
    rollout = False
    for change in changes:
        if _under(change.path, in_place):
            continue
        if _under(change.path, rollout_paths):
            rollout = True
            continue
        return "recreate", False
    return "update", rollout
