"""Dependencies between objects, read from canonical manifests, and the ordering of
plan steps into waves.

A dependency A → B means A uses B: B must be set up before A, and A torn down
before B. ``hard`` dependencies (networks, volumes) also mean that replacing B
replaces A: a container cannot keep an endpoint on a network that was deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

KIND_ORDER = {"Image": 0, "Network": 1, "Volume": 2, "Container": 3, "Service": 4}


@dataclass(frozen=True)
class Reference:
    key: str
    hard: bool


def workload_spec(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The container spec of a Container, or the template of a Service."""
    spec: dict[str, Any] = manifest.get("spec") or {}
    if manifest.get("kind") == "Container":
        return spec
    if manifest.get("kind") == "Service":
        return spec.get("template")
    return None


def references(manifest: dict[str, Any], known: set[str] | dict[str, Any]) -> Iterator[Reference]:
    """Objects of ``known`` (keys such as ``network/front``) that ``manifest`` uses."""
    spec = workload_spec(manifest)
    if spec is None:
        return
    image = f"image/{spec.get('image')}"
    if image in known:
        yield Reference(image, hard=False)
    for network in spec.get("networks") or {}:
        if f"network/{network}" in known:
            yield Reference(f"network/{network}", hard=True)
    for mount in spec.get("volumes") or []:
        if mount.get("type") == "volume" and f"volume/{mount.get('source')}" in known:
            yield Reference(f"volume/{mount['source']}", hard=True)
    for target in spec.get("depends_on") or {}:
        for kind in ("container", "service"):
            if f"{kind}/{target}" in known:
                yield Reference(f"{kind}/{target}", hard=False)


def host_ports(manifest: dict[str, Any] | None) -> set[tuple[str, int]]:
    """(protocol, port) pairs a manifest publishes on the host."""
    spec = workload_spec(manifest or {})
    if not spec:
        return set()
    return {(p["protocol"], p["host_port"]) for p in spec.get("ports") or [] if p.get("host_port")}


def waves(nodes: list[str], edges: dict[str, set[str]]) -> dict[str, int]:
    """Longest-path level of each node (``edges[n]`` = nodes that must come before n).

    Kahn's algorithm, iterative so a long depends_on chain cannot exhaust the stack.
    Raises ValueError on a cycle; validation rejects depends_on cycles, so one here
    is a bug in the planner, not bad input.
    """
    after: dict[str, list[str]] = {n: [] for n in nodes}
    pending = {n: 0 for n in nodes}
    for node in nodes:
        for before in edges.get(node, ()):
            after[before].append(node)
            pending[node] += 1
    level = {n: 0 for n in nodes}
    ready = [n for n in nodes if pending[n] == 0]
    done = 0
    while ready:
        node = ready.pop()
        done += 1
        for nxt in after[node]:
            level[nxt] = max(level[nxt], level[node] + 1)
            pending[nxt] -= 1
            if pending[nxt] == 0:
                ready.append(nxt)
    if done != len(nodes):
        stuck = sorted(n for n in nodes if pending[n])
        raise ValueError(f"cycle in plan steps among {stuck[:5]}")
    return level
