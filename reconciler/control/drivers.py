"""One driver per kind: how a manifest object is made, updated and removed on this
host, through the image store, network manager and volume driver, and the engine's
containers group for containers (the same path ``reconcile run`` takes).

Each returns the digest to record (an Image's manifest digest, the image digest a
Container runs) or None. Errors are raised as they are (a container's as the
engine's errors); the applier decides what is transient. A Service is driven by its
controller (``control.services``), which makes its replicas here.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from reconciler.engine.core import Engine
from reconciler.engine.wiring import EngineConfig
from reconciler.images import resolve
from reconciler.images.store import ImageError, ImageStore
from reconciler.model.container import Container, ContainerSpec
from reconciler.model.image import Image
from reconciler.model.manifest import ManifestObject, canonical
from reconciler.model.network import Network
from reconciler.model.ownership import STACK
from reconciler.model.volume import Volume
from reconciler.network.manager import NetworkManager
from reconciler.runtime.containers import Runtime
from reconciler.state.db import StateDB
from reconciler.volumes.local import LocalVolumes, VolumeNotFoundError

if TYPE_CHECKING:
    from reconciler.control.services import ServiceController


class DriverError(Exception):
    pass


class Drivers:
    def __init__(
        self,
        *,
        stack: str,
        runtime: Runtime,
        images: ImageStore,
        networks: NetworkManager,
        volumes: LocalVolumes,
        desired_images: dict[str, Image],
        db: StateDB | None = None,
        conditions: dict[str, str] | None = None,
        timeout: float = 300.0,
        engine: Engine | None = None,
    ) -> None:
        """``engine`` makes, starts and removes containers (its wiring should be the
        one that built ``runtime`` and the others, so they share a network manager
        and locks); without one, an engine on the runtime's root and cgroup parent."""
        self.engine = engine or Engine(EngineConfig(root=runtime.root, cgroup_parent=runtime.cgroup_parent))
        self.containers = self.engine.containers
        self.db = db
        #: What others wait for on a container (depends_on): "completed" or "healthy".
        self.conditions = conditions or {}
        self.timeout = timeout
        self.stack = stack
        self.runtime = runtime
        self.images = images
        self.networks = networks
        self.volumes = volumes
        self.desired_images = desired_images  # Image objects of the stack, by name

    # --- dispatch ---------------------------------------------------------

    def create(self, obj: ManifestObject) -> str | None:
        if isinstance(obj, Image):
            return resolve.ensure(
                self.images, obj, base_dir="/", cgroup_parent=self.runtime.cgroup_parent
            ).manifest_digest
        if isinstance(obj, Network):
            spec = obj.spec
            self.networks.create(
                obj.metadata.name,
                subnet=str(spec.subnet) if spec.subnet else None,
                gateway=str(spec.gateway) if spec.gateway else None,
                ip_range=str(spec.ip_range) if spec.ip_range else None,
                internal=spec.internal,
                mtu=spec.mtu or 1500,
                labels={**obj.metadata.labels, STACK: self.stack},
            )
            return None
        if isinstance(obj, Volume):
            labels = {**obj.metadata.labels, STACK: self.stack}
            self.volumes.create(obj.metadata.name, labels=labels, retain=obj.spec.retain_policy)
            return None
        if isinstance(obj, Container):
            return self._create_container(obj)
        return self._services().apply(obj)

    def update(self, obj: ManifestObject) -> str | None:
        """In place: an image re-resolved; a container's limits; labels and policies
        (recorded only: the planner said nothing else changed)."""
        if isinstance(obj, Image):
            return self.create(obj)
        if isinstance(obj, Container):
            self.containers.update_from_spec(obj.metadata.name, obj.spec)
            return self._image_digest(obj.spec.image)
        if isinstance(obj, Network | Volume):
            return None
        return self._services().apply(obj)

    def delete(self, kind: str, name: str, manifest: dict[str, Any] | None) -> None:
        if kind == "Container":
            grace = float((manifest or {}).get("spec", {}).get("stop_grace_period", 10.0))
            self.containers.discard(name, grace=grace)
        elif kind == "Service":
            self._services().delete(name, manifest)
        elif kind == "Network":
            self.networks.remove(name)
        elif kind == "Volume":
            with contextlib.suppress(VolumeNotFoundError):
                self.volumes.remove(name)
        elif kind == "Image":
            spec = (manifest or {}).get("spec", {})
            reference = spec.get("pull") or spec.get("tag") or f"{name}:latest"
            with contextlib.suppress(ImageError):  # already gone: nothing to do
                self.images.untag(reference)

    def _services(self) -> ServiceController:
        from reconciler.control.services import ServiceController

        return ServiceController(self)

    # --- containers -------------------------------------------------------

    def _image_reference(self, image: str) -> str:
        obj = self.desired_images.get(image)
        return resolve.local_reference(obj) if obj is not None else image

    def _image_digest(self, image: str) -> str:
        return self.images.resolve(self._image_reference(image))

    def _create_container(self, obj: Container) -> str:
        name = obj.metadata.name
        existing = self.runtime.store.read(name)
        if existing is not None and existing.status == "exited" and self._unchanged(obj):
            self.containers.start(name)  # its restart policy said so: same filesystem, new process
            return self._image_digest(obj.spec.image)
        if existing is not None:  # killed by hand, or a start that failed earlier: made afresh
            self.delete("Container", name, None)
        digest = self.run_container(name, obj.spec)
        self._await_condition(name, obj.spec)
        return digest

    def _await_condition(self, name: str, spec: ContainerSpec) -> None:
        """What depends_on asks of this container before its dependents start:
        ``completed`` (a one-shot exits 0) or ``healthy`` (its check passes)."""
        condition = self.conditions.get(name)
        deadline = time.monotonic() + self.timeout
        if condition == "completed":
            while (state := self.runtime.inspect(name)).status != "exited":
                if time.monotonic() > deadline:
                    raise DriverError(f"container/{name}: did not complete within {self.timeout:g}s")
                time.sleep(0.05)
            if state.exit_code != 0:
                raise DriverError(f"container/{name}: the one-shot exited with code {state.exit_code}")
        elif condition == "healthy":
            from reconciler.runtime import health

            config = health.HealthConfig.from_model(spec.healthcheck)
            if config is None:
                return  # no check to pass: started is all it can be
            while not health.probe(self.runtime, name, config).passed:
                if time.monotonic() > deadline or self.runtime.inspect(name).status != "running":
                    raise DriverError(f"container/{name}: did not become healthy")
                time.sleep(min(config.interval, 1.0))

    def run_container(
        self,
        name: str,
        spec: ContainerSpec,
        *,
        aliases: tuple[str, ...] = (),
        publish: bool = True,
        service: dict[str, str] | None = None,
    ) -> str:
        """Create, wire and start one container from ``spec``; the image digest it runs.
        A Service's replicas come here too, with ``publish`` off (the service owns its
        ports) and ``service`` recorded in their state."""
        return self.containers.run_from_spec(
            name,
            spec,
            image=self._image_reference(spec.image),
            aliases=aliases,
            publish=publish,
            owner=self.stack,
            service=service,
        )

    def _unchanged(self, obj: Container) -> bool:
        """The container was last applied from exactly this manifest."""
        if self.db is None:
            return False
        record = self.db.get_object("Container", obj.metadata.name)
        return record is not None and record.manifest == canonical(obj)
