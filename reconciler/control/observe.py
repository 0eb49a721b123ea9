"""What exists now, for the planner: the objects this host applied (the state
store's ``objects`` table: manifest, stack, digest) checked against the kernel and
the stores, plus same-named things made by hand (owner None: a conflict).

Level-triggered: every pass observes afresh. A recorded container that is no
longer running (killed, removed, or its monitor gone) is left out, so the plan
creates it again; that is how drift heals.
"""

from __future__ import annotations

from reconciler.images.store import ImageStore
from reconciler.model.observed import Observed, ObservedObject
from reconciler.network.manager import NetworkManager
from reconciler.runtime.containers import ContainerError, Runtime
from reconciler.state.db import ObjectRecord, StateDB
from reconciler.volumes.local import LocalVolumes, VolumeError


def observe(
    db: StateDB, runtime: Runtime, networks: NetworkManager, volumes: LocalVolumes, images: ImageStore
) -> Observed:
    found: list[ObservedObject] = []
    recorded: set[tuple[str, str]] = set()
    for record in db.list_objects():
        recorded.add((record.kind, record.name))
        if not _exists(record.kind, record.name, record, runtime, networks, volumes, images):
            continue
        found.append(
            ObservedObject(
                kind=record.kind,
                name=record.name,
                owner=record.stack,
                manifest=record.manifest or None,
                digest=record.digest or None,
            )
        )
    # made by hand (or by another tool) under a name the manifests may want
    for state in runtime.containers():
        if ("Container", state.name) not in recorded:
            found.append(ObservedObject(kind="Container", name=state.name, owner=None))
    for network in networks.networks():
        if ("Network", network.name) not in recorded:
            found.append(ObservedObject(kind="Network", name=network.name, owner=None))
    for volume in volumes.list():
        if ("Volume", volume.name) not in recorded and not volume.anonymous:
            found.append(ObservedObject(kind="Volume", name=volume.name, owner=None))
    return Observed(objects=found)


def _exists(
    kind: str,
    name: str,
    record: ObjectRecord,
    runtime: Runtime,
    networks: NetworkManager,
    volumes: LocalVolumes,
    images: ImageStore,
) -> bool:
    if kind == "Container":
        try:
            state = runtime.inspect(name)
        except ContainerError:
            return False
        if state.status in ("running", "paused"):
            return True
        # a one-shot container (restart: no) that finished cleanly is done, not gone
        restart = (record.manifest.get("spec") or {}).get("restart") or {}
        return state.status == "exited" and state.exit_code == 0 and restart.get("name", "no") == "no"
    if kind == "Network":
        return networks.db.get_network(name) is not None
    if kind == "Volume":
        try:
            volumes.get(name)
        except VolumeError:
            return False
        return True
    if kind == "Image":
        return bool(record.digest) and images.content.has(record.digest)
    return True
