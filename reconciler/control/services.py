"""Services: N replicas of a container template, scaled in place and replaced by
health-gated rolling updates with automatic rollback.

Replicas are containers named ``NAME-1`` … ``NAME-N`` (the lowest free numbers),
each recording in its state which service and which template (a hash of it) it
runs. The service's name is a DNS alias on its *healthy* replicas only, and its
published ports point at one healthy replica, re-pointed in one nftables
transaction when that replica is replaced: so a client sees no failed request
during a ``start-first`` rollout.

A rollout replaces replicas running another template in batches of
``parallelism``. ``start-first``: start the replacements (under the next free
numbers), wait until they are healthy, move the name and the ports to them, then
stop the old ones. ``stop-first``: take the old ones out of the name, stop them,
start replacements in their numbers. After each batch the new replicas must stay
healthy for ``monitor`` seconds. When a replacement fails, ``failure_action:
rollback`` removes what the rollout started and brings back replicas of the
previous template, then reports the failure; ``pause`` stops where it is.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from reconciler.control.drivers import DriverError, Drivers
from reconciler.model.container import ContainerSpec
from reconciler.model.service import Service, ServiceSpec, resolve_count
from reconciler.network.manager import PortMapping
from reconciler.runtime import health
from reconciler.runtime.containers import ContainerError
from reconciler.runtime.state import ContainerState

#: How long a replacement may take to become healthy before the rollout fails.
HEALTH_DEADLINE = 60.0


def template_hash(template: ContainerSpec) -> str:
    return hashlib.sha256(json.dumps(template.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def owner(name: str) -> str:
    """Who owns the service's published ports in the firewall."""
    return f"svc.{name}"


class ServiceController:
    def __init__(self, drivers: Drivers, *, poll: float = 0.1, health_deadline: float = HEALTH_DEADLINE) -> None:
        self.drivers = drivers
        self.runtime = drivers.runtime
        self.networks = drivers.networks
        self.poll = poll
        self.health_deadline = health_deadline
        self.grace = 10.0  # the stop grace period of the replicas being handled

    # --- replicas ---------------------------------------------------------

    def replicas(self, name: str) -> list[ContainerState]:
        found = [s for s in self.runtime.containers() if (s.spec.get("service") or {}).get("name") == name]
        return sorted(found, key=lambda s: _slot(s.name))

    def _free_slot(self, name: str, taken: set[int]) -> int:
        slot = 1
        while slot in taken:
            slot += 1
        return slot

    def _start(self, service: Service, template: ContainerSpec, slot: int) -> str:
        name = f"{service.metadata.name}-{slot}"
        if self.runtime.store.read(name) is not None:
            self._remove(name)
        self.drivers.run_container(
            name,
            template,
            publish=False,
            service={"name": service.metadata.name, "template": template_hash(template)},
        )
        return name

    def _remove(self, replica: str) -> None:
        self.networks.set_alias(replica, replica.rsplit("-", 1)[0], present=False)
        self.drivers.delete("Container", replica, {"spec": {"stop_grace_period": self.grace}})

    # --- health -----------------------------------------------------------

    def _healthy(self, replica: str, template: ContainerSpec) -> bool:
        """Running and, with a healthcheck, passing it (each probe bounded by the check's
        timeout), within the deadline; without one, still running a moment later."""
        config = health.HealthConfig.from_model(template.healthcheck)
        deadline = time.monotonic() + self.health_deadline
        settle = time.monotonic() + (0.3 if config is None else 0.0)
        while time.monotonic() < deadline:
            try:
                state = self.runtime.inspect(replica)
            except ContainerError:
                return False
            if state.status != "running":
                return False
            if config is None:
                if time.monotonic() >= settle:
                    return True
            elif health.probe(self.runtime, replica, config).passed:
                return True
            time.sleep(self.poll if config is None else min(config.interval, 1.0))
        return False

    def _still_healthy(self, replicas: list[str], template: ContainerSpec, seconds: float) -> bool:
        """The monitor period: the batch must not die in its first ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            for replica in replicas:
                try:
                    if self.runtime.inspect(replica).status != "running":
                        return False
                except ContainerError:
                    return False
            if time.monotonic() >= deadline:
                return True
            time.sleep(self.poll)

    # --- traffic ----------------------------------------------------------

    def _serve(self, service: Service, replicas: list[str]) -> None:
        """The service's name on exactly ``replicas``; its ports to the first of them."""
        name = service.metadata.name
        wanted = set(replicas)
        for state in self.replicas(name):
            self.networks.set_alias(state.name, name, present=state.name in wanted)
        ports = service.spec.template.ports
        if not ports or not replicas:
            return
        if any(p.host_port is None for p in ports):
            raise DriverError(f"service/{name}: a service's published ports need a host port")
        address = self._address(replicas[0])
        mappings = [PortMapping(int(p.host_port or 0), p.container_port, p.protocol, p.host_ip) for p in ports]
        self.networks.publish(owner(name), address, mappings)

    def _address(self, replica: str) -> str:
        endpoints = self.networks.db.list_endpoints(container=replica)
        if not endpoints:
            raise DriverError(f"{replica}: no network address to publish ports to")
        return str(min(endpoints, key=lambda e: e.ifname).address)

    # --- the controller ---------------------------------------------------

    def apply(self, service: Service) -> str:
        """Make the replicas match ``service``: heal, roll out, scale, serve."""
        name, spec = service.metadata.name, service.spec
        self.grace = spec.template.stop_grace_period
        want = template_hash(spec.template)
        for state in self.replicas(name):
            checked = health.read_health(self.runtime.root, state.name)
            if state.status not in ("running", "paused") or (checked is not None and checked.status == "unhealthy"):
                self._remove(state.name)  # died or unhealthy: replaced below
        current = self.replicas(name)
        outdated = [s.name for s in current if s.spec["service"].get("template") != want]
        if outdated:
            try:
                self._rollout(service, outdated)
            except DriverError as exc:
                result = "paused" if "rollout paused" in str(exc) else "rolled_back"
                self.drivers.engine.notify("rollout", service=name, result=result)
                raise
            self.drivers.engine.notify("rollout", service=name, result="completed")
        ready = [s.name for s in self.replicas(name) if s.spec["service"].get("template") == want]
        while len(ready) < spec.replicas:
            slot = self._free_slot(name, {_slot(s.name) for s in self.replicas(name)})
            replica = self._start(service, spec.template, slot)
            if not self._healthy(replica, spec.template):
                self._remove(replica)
                raise DriverError(f"service/{name}: replica {replica} did not become healthy")
            ready.append(replica)
            self._serve(service, ready)
        for replica in sorted(ready, key=_slot)[spec.replicas :]:  # scale down: the highest numbers go
            ready.remove(replica)
            self._serve(service, ready)
            self._remove(replica)
        self._serve(service, sorted(ready, key=_slot))
        return self.drivers.images.resolve(self.drivers._image_reference(spec.template.image))

    def _rollout(self, service: Service, outdated: list[str]) -> None:
        name, spec = service.metadata.name, service.spec
        policy = spec.update
        # a batch is at most `parallelism` replicas, and no more than the surge allows
        # above the count (start-first) or than may be missing below it (stop-first)
        batch_size = policy.parallelism or len(outdated)
        if policy.order == "start-first":
            batch_size = min(batch_size, max(1, resolve_count(policy.max_surge, spec.replicas, round_up=True)))
        else:
            batch_size = min(batch_size, max(1, resolve_count(policy.max_unavailable, spec.replicas, round_up=False)))
        previous = self._previous_template(name)
        serving = [s for s in self.replicas(name) if s.name not in outdated]
        serving_names = [s.name for s in serving] + list(outdated)
        started: list[str] = []
        removed: list[str] = []
        for index in range(0, len(outdated), batch_size):
            batch = outdated[index : index + batch_size]
            try:
                if policy.order == "start-first":
                    fresh = []
                    for _ in batch:
                        taken = {_slot(s.name) for s in self.replicas(name)}
                        fresh.append(self._start(service, spec.template, self._free_slot(name, taken)))
                        started.append(fresh[-1])
                    for replica in fresh:
                        if not self._healthy(replica, spec.template):
                            raise DriverError(f"replica {replica} did not become healthy")
                    serving_names = [n for n in serving_names if n not in batch] + fresh
                    self._serve(service, serving_names)
                    for old in batch:
                        self._remove(old)
                        removed.append(old)
                else:
                    serving_names = [n for n in serving_names if n not in batch]
                    self._serve(service, serving_names)
                    fresh = []
                    for old in batch:
                        self._remove(old)
                        removed.append(old)
                        fresh.append(self._start(service, spec.template, _slot(old)))
                        started.append(fresh[-1])
                    for replica in fresh:
                        if not self._healthy(replica, spec.template):
                            raise DriverError(f"replica {replica} did not become healthy")
                    serving_names += fresh
                    self._serve(service, serving_names)
                if not self._still_healthy(fresh, spec.template, policy.monitor):
                    raise DriverError(f"a replica of {', '.join(fresh)} stopped during the monitor period")
            except DriverError as exc:
                if policy.failure_action == "pause" or previous is None:
                    raise DriverError(f"service/{name}: rollout paused: {exc}") from None
                self._rollback(service, previous, started, len(removed))
                raise DriverError(
                    f"service/{name}: rollout failed ({exc}); rolled back to the previous template"
                ) from None

    def _previous_template(self, name: str) -> ContainerSpec | None:
        db = self.drivers.db
        record = db.get_object("Service", name) if db is not None else None
        if record is None:
            return None
        return ServiceSpec.model_validate(record.manifest["spec"]).template

    def _rollback(self, service: Service, previous: ContainerSpec, started: list[str], lost: int) -> None:
        """Remove what the rollout started; bring back as many replicas of the previous
        template as it stopped; serve from the previous ones."""
        name = service.metadata.name
        for replica in started:
            if self.runtime.store.read(replica) is not None:
                self._remove(replica)
        old_hash = template_hash(previous)
        for _ in range(lost):
            slot = self._free_slot(name, {_slot(s.name) for s in self.replicas(name)})
            self._start(service, previous, slot)
        olds = [s.name for s in self.replicas(name) if s.spec["service"].get("template") == old_hash]
        rolled_back = Service.model_validate(
            {
                **service.model_dump(mode="json", by_alias=True),
                "spec": {**service.spec.model_dump(mode="json"), "template": previous.model_dump(mode="json")},
            }
        )
        self._serve(rolled_back, [n for n in olds if self._healthy(n, previous)])

    def delete(self, name: str, manifest: dict[str, Any] | None) -> None:
        template = ((manifest or {}).get("spec") or {}).get("template") or {}
        self.grace = float(template.get("stop_grace_period", 10.0))
        self.networks.unpublish(owner(name))
        for state in self.replicas(name):
            self._remove(state.name)


def _slot(replica: str) -> int:
    match = re.search(r"-(\d+)$", replica)
    return int(match.group(1)) if match else 0
