"""One driver per kind: how a manifest object is made, updated and removed on this
host, through the runtime, image store, network manager and volume driver.

Each returns the digest to record (an Image's manifest digest, the image digest a
Container runs) or None. Errors are raised as they are; the applier decides what
is transient. Services are not driven yet (their controller comes with rolling
updates): applying one fails with that reason and nothing else is touched.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from reconciler.images import resolve
from reconciler.images.store import ImageConfig, ImageError, ImageStore
from reconciler.model.container import BindMount, Container, ContainerSpec, VolumeMount
from reconciler.model.image import Image
from reconciler.model.manifest import ManifestObject, canonical
from reconciler.model.network import Network
from reconciler.model.ownership import STACK
from reconciler.model.volume import Volume
from reconciler.network.manager import DEFAULT_NETWORK, Attachment, NetworkManager, PortMapping
from reconciler.runtime import assemble, cgroups, etcfiles, spawn
from reconciler.runtime.containers import ContainerError, Runtime
from reconciler.state.db import StateDB
from reconciler.volumes.local import LocalVolumes, VolumeNotFoundError, bind_source

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
    ) -> None:
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
            cgroups.new_cgroup(obj.metadata.name, parent=self.runtime.cgroup_parent).set(_limits(obj.spec))
            return self._image_digest(obj.spec.image)
        if isinstance(obj, Network | Volume):
            return None
        return self._services().apply(obj)

    def delete(self, kind: str, name: str, manifest: dict[str, Any] | None) -> None:
        if kind == "Container":
            grace = float((manifest or {}).get("spec", {}).get("stop_grace_period", 10.0))
            try:
                self.runtime.stop(name, grace=grace)
                self.runtime.delete(name)
            except ContainerError as exc:
                if "no such container" not in str(exc):
                    raise
            self.networks.detach(name)
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
            self.runtime.restart(name)  # its restart policy said so: same filesystem, new process
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
        reference = self._image_reference(spec.image)
        stored = self.images.image(reference, verify=False)
        image = ImageConfig.from_document(stored.config)
        layers = self.images.lower_dirs(stored)
        directory = self.runtime.reserve(name)
        try:
            config = _config(name, directory, spec, image, layers, self.volumes)
            source = {"name": reference, "id": stored.id, "manifest": stored.manifest_digest}
            self.runtime.create(
                name, config, _limits(spec), image=source, stop_signal=spec.stop_signal or image.stop_signal
            )
            # ours from the start: a pass killed before recording it still knows it made it
            state = self.runtime.store.read(name)
            assert state is not None
            state.spec["owner"] = self.stack
            if service is not None:
                state.spec["service"] = service
            self.runtime.store.write(state)
            if spec.network_mode == "bridge":
                self._attach(name, spec, directory, config.hostname, aliases=aliases, publish=publish)
            self.runtime.start(name)
        except BaseException:
            self.delete("Container", name, None)
            raise
        return stored.manifest_digest

    def _unchanged(self, obj: Container) -> bool:
        """The container was last applied from exactly this manifest."""
        if self.db is None:
            return False
        record = self.db.get_object("Container", obj.metadata.name)
        return record is not None and record.manifest == canonical(obj)

    def _attach(
        self,
        name: str,
        spec: ContainerSpec,
        directory: str,
        hostname: str,
        *,
        aliases: tuple[str, ...] = (),
        publish: bool = True,
    ) -> None:
        if spec.networks:
            attachments = [
                Attachment(net, (*a.aliases, *aliases), str(a.ipv4_address) if a.ipv4_address else None)
                for net, a in spec.networks.items()
            ]
        else:
            self.networks.ensure_default()
            attachments = [Attachment(DEFAULT_NETWORK, aliases)]
        ports = [
            PortMapping(p.host_port or _free_port(p.protocol), p.container_port, p.protocol, p.host_ip)
            for p in spec.ports
            if publish
        ]
        endpoints = self.networks.attach(name, self.runtime.store.path(name, "netns"), attachments, ports)
        etcfiles.write(
            os.path.join(directory, "etc"),
            hostname,
            nameservers=self.networks.nameservers(name),
            address=str(endpoints[0].address),
        )


def _free_port(protocol: str) -> int:
    """An ephemeral host port for a mapping that names none (as docker's ``-p 80``)."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def _limits(spec: ContainerSpec) -> cgroups.Limits:
    r = spec.resources
    return cgroups.Limits(
        memory=r.memory,
        memory_swap=r.memory_swap,
        memory_reservation=r.memory_reservation,
        cpus=r.cpus,
        cpu_shares=r.cpu_shares,
        cpuset=r.cpuset,
        pids=r.pids,
    )


def _config(
    name: str, directory: str, spec: ContainerSpec, image: ImageConfig, layers: tuple[str, ...], volumes: LocalVolumes
) -> spawn.Config:
    """The container's process and filesystem from its spec and its image, merged as
    Docker merges them."""
    hostname = spec.hostname or name[:63]
    mounts: list[spawn.MountSpec] = list(etcfiles.write(os.path.join(directory, "etc"), hostname))
    for mount in spec.volumes:
        if isinstance(mount, VolumeMount):
            volumes.ensure(mount.source)
            fill = volumes.copy_up_needed(mount.source)
            source = volumes.path(mount.source)
            if mount.subpath:
                source = os.path.join(source, mount.subpath)
                os.makedirs(source, exist_ok=True)
            mounts.append(spawn.MountSpec(mount.target, source=source, read_only=mount.read_only, copy_up=fill))
            if fill:
                volumes.mark_copied_up(mount.source)
        elif isinstance(mount, BindMount):
            source = bind_source(mount.source, create=mount.create)
            mounts.append(spawn.MountSpec(mount.target, source=source, read_only=mount.read_only))
    for tmpfs in spec.tmpfs:
        options = ",".join(
            part
            for part in (f"size={tmpfs.size}" if tmpfs.size else "", f"mode={tmpfs.mode:o}" if tmpfs.mode else "")
            if part
        )
        mounts.append(spawn.MountSpec(tmpfs.target, type="tmpfs", options=options))
    modes = (("net", spec.network_mode), ("pid", spec.pid), ("ipc", spec.ipc))
    return assemble.build(
        directory=directory,
        layers=layers,
        image=image,
        hostname=hostname,
        mounts=mounts,
        entrypoint=_command(spec.entrypoint),
        command=_command(spec.command),
        user=str(spec.user) if spec.user is not None else None,
        env={key: str(value) for key, value in spec.env.items()},
        cwd=spec.working_dir,
        cap_add=list(spec.cap_add),
        cap_drop=list(spec.cap_drop),
        group_add=[str(g) for g in spec.group_add],
        read_only=spec.read_only,
        init=spec.init,
        host_namespaces=tuple(kind for kind, mode in modes if mode == "host"),
    )


def _command(value: Any) -> list[str] | None:
    """A Command field (list, or a shell string run with ``/bin/sh -c``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return ["/bin/sh", "-c", value]
    return [str(part) for part in value]
