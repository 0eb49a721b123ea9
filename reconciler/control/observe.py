"""What exists now, for the planner: the objects this host applied (the state
store's ``objects`` table: manifest, stack, digest) checked against the kernel and
the stores, plus same-named things made by hand (owner None: a conflict).

Level-triggered: every pass observes afresh. A recorded container that is no
longer running (killed, removed, or its monitor gone) is left out, so the plan
creates it again; that is how drift heals.
"""

from __future__ import annotations

import time
from typing import Any

from reconciler.images.store import ImageStore
from reconciler.model.observed import Observed, ObservedObject
from reconciler.network.manager import NetworkManager, PortMapping
from reconciler.runtime import health
from reconciler.runtime.containers import Runtime
from reconciler.runtime.state import ContainerState
from reconciler.state.db import ObjectRecord, StateDB
from reconciler.volumes.local import LocalVolumes, VolumeError


def observe(
    db: StateDB,
    runtime: Runtime,
    networks: NetworkManager,
    volumes: LocalVolumes,
    images: ImageStore,
    *,
    drifted: list[str] | None = None,
    later: list[str] | None = None,
) -> Observed:
    """What exists. An object found gone or stopped is left out (the plan sets it up
    again), unless its ``metadata.drift`` is ``warn`` or ``ignore``: then it counts as
    present, and ``drifted`` hears of it (``warn``) for the event log. ``later`` hears
    of exited containers that count as present only until their restart backoff ends
    (what this pass sees then depends on the time)."""
    found: list[ObservedObject] = []
    recorded: set[tuple[str, str]] = set()
    # one look at every container per pass (each is a state file and a /proc read)
    containers = {state.name: state for state in runtime.containers()}
    for record in db.list_objects():
        recorded.add((record.kind, record.name))
        exists = _exists(record.kind, record.name, record, containers, runtime.root, networks, volumes, images, later)
        if not exists:
            policy = (record.manifest.get("metadata") or {}).get("drift", "heal")
            if policy == "heal":
                continue
            if policy == "warn" and drifted is not None:
                drifted.append(f"{record.kind.lower()}/{record.name}")
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
    for state in containers.values():
        # replicas belong to their service; one a killed pass made but did not record is
        # not "made by hand": left out, so this pass makes it afresh
        if ("Container", state.name) not in recorded and not state.spec.get("service") and not state.spec.get("owner"):
            found.append(ObservedObject(kind="Container", name=state.name, owner=None))
    for network in networks.networks():
        if ("Network", network.name) not in recorded:
            found.append(ObservedObject(kind="Network", name=network.name, owner=None))
    for volume in volumes.list():
        if ("Volume", volume.name) not in recorded and not volume.anonymous:
            found.append(ObservedObject(kind="Volume", name=volume.name, owner=None))
    return Observed(objects=found)


def published_ports(
    db: StateDB, runtime: Runtime, networks: NetworkManager, *, keys: dict[str, str] | None = None
) -> dict[str, tuple[str, list[PortMapping]]]:
    """The published ports the applied objects should have now (firewall owner →
    address, ports): each running Container's fixed host ports to its first address,
    each Service's to its first running replica that is not unhealthy (the one a
    rollout would pick). What ``NetworkManager.heal_firewall`` puts back. ``keys``
    hears each owner's object key (``container/web``), for reports."""
    from reconciler.control.services import owner as service_owner
    from reconciler.network.manager import rule_owner

    def mappings(spec: dict[str, Any]) -> list[PortMapping]:
        return [
            PortMapping(int(p["host_port"]), int(p["container_port"]), p.get("protocol", "tcp"), p.get("host_ip"))
            for p in spec.get("ports") or []
            if p.get("host_port")
        ]

    def address(container: str) -> str | None:
        endpoints = networks.db.list_endpoints(container=container)
        return str(min(endpoints, key=lambda e: e.ifname).address) if endpoints else None

    wanted: dict[str, tuple[str, list[PortMapping]]] = {}
    states: list[ContainerState] | None = None  # read only when a Service publishes ports
    for record in db.list_objects():
        spec = record.manifest.get("spec") or {}
        if record.kind == "Container" and (ports := mappings(spec)):
            running = runtime.store.read(record.name)
            where = address(record.name) if running is not None and running.status == "running" else None
            owner = rule_owner(record.name)
        elif record.kind == "Service" and (ports := mappings(spec.get("template") or {})):
            states = runtime.containers() if states is None else states
            replicas = sorted(
                (
                    s.name
                    for s in states
                    if s.status == "running" and (s.spec.get("service") or {}).get("name") == record.name
                ),
                key=lambda name: (len(name), name),
            )
            serving = next((r for r in replicas if not _unhealthy(runtime.root, r)), None)
            where, owner = (address(serving) if serving else None), service_owner(record.name)
        else:
            continue
        if where:
            wanted[owner] = (where, ports)
            if keys is not None:
                keys[owner] = f"{record.kind.lower()}/{record.name}"
    return wanted


#: Crash-loop backoff: the first restart is at once, then 0.5 s doubling up to 5 minutes.
BACKOFF_START = 0.5
BACKOFF_MAX = 300.0


def backoff(restart_count: int) -> float:
    return 0.0 if restart_count == 0 else min(BACKOFF_START * 2 ** (restart_count - 1), BACKOFF_MAX)


def wants_restart(state: ContainerState, restart: dict[str, object], now: float | None = None) -> bool:
    """Whether an exited container should run again now, by its restart policy.

    ``no`` still restarts a container that did not finish cleanly (killed by hand,
    crashed): the agent heals drift, and a one-shot that failed is retried; one that
    exited 0 is done. ``on-failure[:max]`` restarts after a non-zero exit, at most
    ``max`` times; ``always`` and ``unless-stopped`` after any exit. A container the
    user stopped stays stopped. Every restart waits out the crash-loop backoff."""
    if state.status != "exited" or state.stopped_by_user:
        return False
    policy = str(restart.get("name") or "no")
    failed = state.exit_code != 0
    if policy in ("no", "on-failure") and not failed:
        return False
    limit = restart.get("max_retries")
    if policy == "on-failure" and isinstance(limit, int) and state.restart_count >= limit:
        return False
    waited = (now if now is not None else time.time()) - (state.finished_at or 0)
    return waited >= backoff(state.restart_count)


def _unhealthy(root: str, name: str) -> bool:
    checked = health.read_health(root, name)
    return checked is not None and checked.status == "unhealthy"


def _exists(
    kind: str,
    name: str,
    record: ObjectRecord,
    containers: dict[str, ContainerState],
    root: str,
    networks: NetworkManager,
    volumes: LocalVolumes,
    images: ImageStore,
    later: list[str] | None = None,
) -> bool:
    if kind == "Container":
        state = containers.get(name)
        if state is None:
            return False
        restart = (record.manifest.get("spec") or {}).get("restart") or {}
        if state.status in ("running", "paused"):
            # unhealthy (the agent's health monitor says so): replaced when its policy restarts it
            return not (_unhealthy(root, name) and str(restart.get("name") or "no") != "no")
        if wants_restart(state, restart):
            return False
        if later is not None and wants_restart(state, restart, now=float("inf")):
            later.append(name)
        return True
    if kind == "Network":
        network = networks.db.get_network(name)
        return network is not None and networks.complete(network)
    if kind == "Volume":
        try:
            volumes.get(name)
        except VolumeError:
            return False
        return True
    if kind == "Image":
        return bool(record.digest) and images.content.has(record.digest)
    if kind == "Service":
        # every replica running: else the pass sets it up again (the controller heals)
        wanted = int((record.manifest.get("spec") or {}).get("replicas", 1))
        running = [
            s
            for s in containers.values()
            if (s.spec.get("service") or {}).get("name") == name
            and s.status in ("running", "paused")
            and not _unhealthy(root, s.name)
        ]
        return len(running) >= wanted
    return True
