"""How a container is made: one path for ``run``/``create`` (a ``RunRequest`` of
``docker run``'s flags) and for the reconcile loop (a manifest's ``ContainerSpec``).

Both are first turned into a ``Blueprint`` (pure: flags checked, nothing made), then
``make`` does the rest in one order: the image's config and layers, the name
reserved, volumes and bind sources, the process config merged as Docker merges it,
the runtime's record, and the bridge networks wired before the process starts. A
``make`` that fails leaves nothing behind (no state, netns, leases, veths or
anonymous volumes); starting is the caller's.

Standard library only at import time, as ``reconcile run`` imports this: the volume
driver and the network manager (pyroute2, about 145 ms) are imported when a
container uses them, the manifest model (pydantic) only by ``from_spec``. No
``from __future__ import annotations``: NamedTuples would compile every field's
annotation (ForwardRef), about a millisecond of ``reconcile run``.
"""

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from reconciler.engine import errors
from reconciler.images.store import ImageConfig, ImageError
from reconciler.model import quantities
from reconciler.runtime import assemble, cgroups, etcfiles, linux, process, spawn
from reconciler.runtime.containers import (
    ContainerConflict,
    ContainerError,
    InvalidContainer,
    NoSuchContainer,
    StartFailure,
    signal_number,
)

if TYPE_CHECKING:
    from reconciler.engine.models.containers import RunRequest
    from reconciler.engine.wiring import Wiring
    from reconciler.model.container import ContainerSpec
    from reconciler.network.manager import PortMapping

#: The network a container joins when it names none (manifests) or says ``bridge``.
DEFAULT_NETWORK = "bridge"
#: Docker's floor: below it a container cannot even start its runtime's init.
MIN_MEMORY = 6 * 1024 * 1024


class VolumeUse(NamedTuple):
    """One mount: a named volume (an anonymous one when ``source`` is empty), a host
    directory (``bind``) or a ``tmpfs``."""

    type: Literal["volume", "bind", "tmpfs"]
    target: str
    source: str = ""
    read_only: bool = False
    copy: bool = True  # volume: filled from the image at its first mount (not ``nocopy``)
    subpath: str | None = None  # volume: mount only this directory of it
    create: bool = True  # bind: make a missing source, as ``docker run -v`` does
    options: str = ""  # tmpfs: ``size=64m,mode=1777``


class NetworkUse(NamedTuple):
    """One bridge network joined: DNS aliases, an optional static address."""

    network: str
    aliases: tuple[str, ...] = ()
    ip: str | None = None


class Blueprint(NamedTuple):
    """A container to make, whichever front end asked for it. ``networks`` empty
    means loopback only, unless ``"net"`` is in ``host_namespaces``."""

    image: str  # a reference the image store resolves
    hostname: str | None = None  # default: the name, cut to 63 characters
    entrypoint: list[str] | None = None  # None: the image's; []: none
    command: list[str] | None = None
    user: str | None = None
    env: dict[str, str] = {}
    workdir: str | None = None
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    group_add: tuple[str, ...] = ()
    read_only: bool = False
    init: bool = False
    tty: bool = False
    host_namespaces: tuple[str, ...] = ()
    mounts: tuple[VolumeUse, ...] = ()
    limits: cgroups.Limits = cgroups.Limits()
    stop_signal: str | None = None  # default: the image's STOPSIGNAL, else SIGTERM
    networks: tuple[NetworkUse, ...] = ()
    ports: "tuple[PortMapping, ...]" = ()
    labels: dict[str, str] = {}


class Made(NamedTuple):
    name: str
    digest: str  # the manifest digest of the image it runs
    spec: dict[str, Any]  # as recorded in its state
    id: str = ""  # its 64-hex ID


# --- errors -------------------------------------------------------------------


@contextlib.contextmanager
def translated(*, exit_code: int | None = None) -> Iterator[None]:
    """Driver errors as the engine's: an unknown container or image is NotFound, a
    container in the wrong state Conflict, a bad value InvalidRequest, a process
    that could not start StartFailed with Docker's code for it (126, 127, else 125).
    ``exit_code`` is what a CLI command exits with for the others (125 for ``run``).
    The volume and network errors are translated where those drivers are called."""
    try:
        yield
    except NoSuchContainer as exc:
        raise errors.NotFound(str(exc), exit_code=exit_code) from None
    except ContainerConflict as exc:
        raise errors.Conflict(str(exc), exit_code=exit_code) from None
    except InvalidContainer as exc:
        raise errors.InvalidRequest(str(exc), exit_code=exit_code) from None
    except StartFailure as exc:
        raise errors.StartFailed(str(exc), exit_code=exit_code or 125) from None
    except spawn.StartError as exc:
        raise errors.StartFailed(str(exc), exit_code=exc.exit_code) from None
    except ImageError as exc:
        if str(exc).startswith("no such image"):
            raise errors.NotFound(str(exc), exit_code=exit_code) from None
        raise errors.Internal(str(exc), exit_code=exit_code) from None
    except (process.ProcessError, ValueError) as exc:  # no such user, a bad size, ...
        raise errors.InvalidRequest(str(exc), exit_code=exit_code) from None
    except (ContainerError, cgroups.CgroupError, OSError) as exc:
        raise errors.Internal(str(exc), exit_code=exit_code) from None


# --- blueprints -----------------------------------------------------------------


def from_request(request: "RunRequest") -> Blueprint:
    """The flags of ``run``/``create`` checked (raising InvalidRequest, exit code 125)
    and put in a blueprint. Nothing is made here."""
    try:
        networks = list(request.get("networks") or [])
        mode = net_mode(networks)
        namespaces = {"net": mode}
        for kind in ("pid", "ipc", "uts"):
            value = request.get(kind) or "private"
            if value not in ("private", "host"):
                raise ValueError(f"--{kind} must be private or host, not {value!r}")
            namespaces[kind] = value
        entrypoint = request.get("entrypoint")
        return Blueprint(
            image=request["image"],
            hostname=request.get("hostname") or None,
            entrypoint=[entrypoint] if entrypoint else ([] if entrypoint == "" else None),
            command=list(request.get("command") or []) or None,
            user=request.get("user") or None,
            env=dict(item.partition("=")[::2] for item in request.get("env") or []),
            workdir=request.get("workdir") or None,
            cap_add=tuple(capabilities(request.get("cap_add") or [])),
            cap_drop=tuple(capabilities(request.get("cap_drop") or [])),
            read_only=bool(request.get("read_only")),
            init=bool(request.get("init")),
            tty=bool(request.get("tty")),
            host_namespaces=tuple(kind for kind, value in namespaces.items() if value == "host"),
            mounts=(
                *_volume_flags(request.get("volumes") or []),
                *(_tmpfs_flag(text) for text in request.get("tmpfs") or []),
            ),
            limits=limits(request),
            stop_signal=_checked_signal(request.get("stop_signal")),
            networks=_network_flags(request, networks) if mode == "bridge" else (),
            ports=_port_flags(request.get("publish") or []) if mode == "bridge" else (),
            labels=dict(request.get("labels") or {}),
        )
    except (ValueError, ContainerError) as exc:
        raise errors.InvalidRequest(str(exc), exit_code=125) from None


def net_mode(networks: list[str]) -> str:
    """``none`` (the default: loopback only), ``host``, or ``bridge`` for named networks.

    Not Docker's default of ``bridge``: wiring a bridge means importing pyroute2
    (about 145 ms), which ``run`` cannot pay for every container; manifests'
    containers join the default ``bridge`` network unless they say otherwise."""
    modes = set(networks)
    if modes <= {"none"}:
        return "none"
    if "host" in modes or "none" in modes:
        if len(modes) > 1:
            raise ValueError("--network none or host cannot be combined with other networks")
        return "host"
    return "bridge"


def limits(request: "RunRequest") -> cgroups.Limits:
    memory_text, swap_text = request.get("memory"), request.get("memory_swap")
    memory = quantities.parse_bytes(memory_text) if memory_text else None
    if memory is not None and memory < MIN_MEMORY:
        raise ValueError(f"minimum memory limit allowed is 6m, got {memory_text}")  # as Docker says
    swap: int | None = None
    if swap_text not in (None, "-1"):
        swap = quantities.parse_bytes(swap_text)
        if memory is None:
            raise ValueError("--memory-swap needs --memory: it is memory plus swap, as in docker run")
        if swap < memory:
            raise ValueError(f"--memory-swap ({swap_text}) must be at least --memory ({memory_text})")
    cpus = request.get("cpus")
    return cgroups.Limits(
        memory=memory,
        memory_swap=swap,
        cpus=quantities.parse_cpus(cpus) if cpus else None,
        cpu_shares=request.get("cpu_shares"),
        cpuset=request.get("cpuset_cpus"),
        pids=request.get("pids_limit"),
    )


def capabilities(names: list[str]) -> list[str]:
    """``NET_ADMIN``, ``cap_net_admin`` or ``ALL``, in the kernel's spelling."""
    out = []
    for name in names:
        canonical = name.upper() if name.upper() == "ALL" else "CAP_" + name.upper().removeprefix("CAP_")
        if canonical != "ALL" and canonical not in linux.CAPABILITY_NUMBERS:
            raise ValueError(f"unknown capability {name!r}")
        out.append(canonical)
    return out


def _checked_signal(text: str | None) -> str | None:
    if text:
        signal_number(text)  # a bad one is refused before anything is made
    return text or None


def _volume_flags(texts: list[str]) -> list[VolumeUse]:
    """``-v NAME:/p[:ro]``, ``-v /host:/p[:ro]`` and ``-v /p`` (anonymous). Relative
    sources (``./data``) are the caller's to resolve: the engine's working directory
    is not the user's."""
    if not texts:
        return []
    from reconciler.volumes.local import VolumeError, parse_volume_flag

    uses = []
    for text in texts:
        try:
            flag = parse_volume_flag(text)
        except VolumeError as exc:
            raise ValueError(str(exc)) from None
        uses.append(VolumeUse(flag.type, flag.target, source=flag.source, read_only=flag.read_only, copy=flag.copy))
    return uses


def _tmpfs_flag(text: str) -> VolumeUse:
    """``--tmpfs /path[:size=64m,mode=1777]``."""
    target, _, options = text.partition(":")
    if not target.startswith("/"):
        raise ValueError(f"invalid tmpfs {text!r}: the container path must be absolute")
    return VolumeUse("tmpfs", target, options=options)


def _network_flags(request: "RunRequest", networks: list[str]) -> tuple[NetworkUse, ...]:
    aliases = tuple(request.get("network_aliases") or [])
    ip = request.get("ip")
    return tuple(
        NetworkUse(network, aliases, ip if index == 0 else None)
        for index, network in enumerate(dict.fromkeys(networks))
    )


def _port_flags(texts: list[str]) -> "tuple[PortMapping, ...]":
    if not texts:
        return ()
    from reconciler.network.manager import NetworkError, parse_ports

    try:
        return tuple(mapping for text in texts for mapping in parse_ports(text))
    except NetworkError as exc:
        raise ValueError(str(exc)) from None


def from_spec(spec: "ContainerSpec", *, image: str, aliases: tuple[str, ...] = (), publish: bool = True) -> Blueprint:
    """A manifest's container; ``image`` is the reference its image resolves to
    (an Image of the stack has a local one). ``aliases`` are added on every network;
    without ``publish`` its ports are not published (a Service's replica: the service
    owns them)."""
    from reconciler.model.container import BindMount, VolumeMount

    mounts: list[VolumeUse] = []
    for mount in spec.volumes:
        if isinstance(mount, VolumeMount):
            mounts.append(
                VolumeUse("volume", mount.target, source=mount.source, read_only=mount.read_only, subpath=mount.subpath)
            )
        elif isinstance(mount, BindMount):
            mounts.append(
                VolumeUse("bind", mount.target, source=mount.source, read_only=mount.read_only, create=mount.create)
            )
    for tmpfs in spec.tmpfs:
        options = ",".join(
            part
            for part in (f"size={tmpfs.size}" if tmpfs.size else "", f"mode={tmpfs.mode:o}" if tmpfs.mode else "")
            if part
        )
        mounts.append(VolumeUse("tmpfs", tmpfs.target, options=options))
    networks: tuple[NetworkUse, ...] = ()
    ports: tuple[PortMapping, ...] = ()
    if spec.network_mode == "bridge":
        from reconciler.network import manager

        networks = tuple(
            NetworkUse(
                name, (*attachment.aliases, *aliases), str(attachment.ipv4_address) if attachment.ipv4_address else None
            )
            for name, attachment in spec.networks.items()
        ) or (NetworkUse(DEFAULT_NETWORK, aliases),)
        if publish:
            ports = tuple(
                manager.PortMapping(p.host_port or _free_port(p.protocol), p.container_port, p.protocol, p.host_ip)
                for p in spec.ports
            )
    modes = (("net", spec.network_mode), ("pid", spec.pid), ("ipc", spec.ipc))
    return Blueprint(
        image=image,
        hostname=spec.hostname,
        entrypoint=_command(spec.entrypoint),
        command=_command(spec.command),
        user=str(spec.user) if spec.user is not None else None,
        env={key: str(value) for key, value in spec.env.items()},
        workdir=spec.working_dir,
        cap_add=tuple(spec.cap_add),
        cap_drop=tuple(spec.cap_drop),
        group_add=tuple(str(g) for g in spec.group_add),
        read_only=spec.read_only,
        init=spec.init,
        host_namespaces=tuple(kind for kind, mode in modes if mode == "host"),
        mounts=tuple(mounts),
        limits=limits_of(spec),
        stop_signal=spec.stop_signal,
        networks=networks,
        ports=ports,
    )


def limits_of(spec: "ContainerSpec") -> cgroups.Limits:
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


def _command(value: Any) -> list[str] | None:
    """A Command field (list, or a shell string run with ``/bin/sh -c``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return ["/bin/sh", "-c", value]
    return [str(part) for part in value]


def _free_port(protocol: str) -> int:
    """An ephemeral host port for a mapping that names none (as docker's ``-p 80``)."""
    import socket

    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


# --- making -----------------------------------------------------------------------


def make(wiring: "Wiring", name: str, blueprint: Blueprint, *, record: dict[str, Any] | None = None) -> Made:
    """Make ``name`` from ``blueprint``, not started; ``record`` is added to its state
    (``owner``, ``service``) before anything else can see it. Raises engine errors
    (exit code 125); on any failure nothing of it is left."""
    images = wiring.image_store()
    runtime = wiring.runtime()
    with translated(exit_code=125):
        stored = images.image(blueprint.image, verify=False)  # trusted: verified when written
        image = ImageConfig.from_document(stored.config)
        layers = images.lower_dirs(stored)
        stop_signal = blueprint.stop_signal or image.stop_signal
        if stop_signal:
            signal_number(stop_signal)
        directory = runtime.reserve(name)
    made: dict[str, Any] = {}  # anonymous_volumes, fill_volumes
    try:
        with translated(exit_code=125):
            hostname = blueprint.hostname or name[:63]
            mounts = [
                *etcfiles.write(os.path.join(directory, "etc"), hostname),
                *_mounts(wiring, blueprint.mounts, made),
            ]
            config = assemble.build(
                directory=directory,
                layers=layers,
                image=image,
                hostname=hostname,
                mounts=mounts,
                entrypoint=blueprint.entrypoint,
                command=blueprint.command,
                user=blueprint.user,
                env=blueprint.env,
                cwd=blueprint.workdir,
                cap_add=blueprint.cap_add,
                cap_drop=blueprint.cap_drop,
                group_add=blueprint.group_add,
                read_only=blueprint.read_only,
                init=blueprint.init,
                tty=blueprint.tty,
                host_namespaces=blueprint.host_namespaces,
            )
            source = {"name": blueprint.image, "id": stored.id, "manifest": stored.manifest_digest}
            # the owner from the start: a pass killed before recording it still knows it made it
            extra = {**made, **(record or {}), **({"labels": blueprint.labels} if blueprint.labels else {})}
            state = runtime.create(
                name,
                config,
                blueprint.limits,
                image=source,
                stop_signal=stop_signal,
                record=extra,
                netns_handle=bool(blueprint.networks),  # only a network to wire needs it before the start
            )
        if blueprint.networks:
            state.spec.update(_attach(wiring, name, directory, hostname, blueprint))
    except BaseException:
        discard(wiring, name, anonymous_volumes=made.get("anonymous_volumes"), networks=bool(blueprint.networks))
        raise
    return Made(name, stored.manifest_digest, state.spec, state.id)


def _mounts(wiring: "Wiring", uses: tuple[VolumeUse, ...], made: dict[str, Any]) -> list[spawn.MountSpec]:
    """Volumes made on first use (anonymous ones always new), bind sources checked
    (and made when ``create``), tmpfs as asked. ``made`` hears the anonymous
    volumes made and the volumes to fill from the image at this first mount."""
    mounts: list[spawn.MountSpec] = []
    if not any(use.type in ("volume", "bind") for use in uses):
        return [spawn.MountSpec(target=use.target, type="tmpfs", options=use.options) for use in uses]
    from reconciler.volumes.local import VolumeError, VolumeNotFoundError, VolumeSpecError, bind_source

    volumes = wiring.volumes()
    try:
        for use in uses:
            if use.type == "tmpfs":
                mounts.append(spawn.MountSpec(target=use.target, type="tmpfs", options=use.options))
            elif use.type == "bind":
                source = bind_source(use.source, create=use.create)
                mounts.append(spawn.MountSpec(target=use.target, source=source, read_only=use.read_only))
            else:
                if use.source:
                    name = volumes.ensure(use.source).name
                else:
                    name = volumes.create_anonymous().name
                    made.setdefault("anonymous_volumes", []).append(name)
                copy_up = use.copy and volumes.copy_up_needed(name)
                if copy_up:
                    made.setdefault("fill_volumes", []).append(name)
                path = volumes.path(name)
                if use.subpath:
                    path = os.path.join(path, use.subpath)
                    os.makedirs(path, exist_ok=True)
                mounts.append(spawn.MountSpec(target=use.target, source=path, read_only=use.read_only, copy_up=copy_up))
    except VolumeSpecError as exc:
        raise errors.InvalidRequest(str(exc), exit_code=125) from None
    except VolumeNotFoundError as exc:
        raise errors.NotFound(str(exc), exit_code=125) from None
    except VolumeError as exc:
        raise errors.Conflict(str(exc), exit_code=125) from None
    return mounts


def _attach(wiring: "Wiring", name: str, directory: str, hostname: str, blueprint: Blueprint) -> dict[str, Any]:
    """Wire the container's network namespace into its networks before it starts,
    then point its resolv.conf at the embedded DNS and its hosts file at its
    address; its endpoints and ports go in its state (``rm`` detaches what is
    there), and are returned as they are recorded."""
    from reconciler.network.manager import Attachment, NetworkError

    manager = wiring.network_manager()
    runtime = wiring.runtime()
    try:
        if any(use.network == DEFAULT_NETWORK for use in blueprint.networks):
            manager.ensure_default()
        attachments = [Attachment(use.network, use.aliases, use.ip) for use in blueprint.networks]
        endpoints = manager.attach(name, runtime.store.path(name, "netns"), attachments, blueprint.ports)
        etcfiles.write(
            os.path.join(directory, "etc"),
            hostname,
            nameservers=manager.nameservers(name),
            address=str(endpoints[0].address),
        )  # the same files the config mounts already
        state = runtime.store.read(name)
        assert state is not None
        recorded = {
            "networks": [
                {"network": e.network, "ifname": e.ifname, "address": str(e.address), "mac": e.mac} for e in endpoints
            ],
            "ports": [_port_text(p) for p in blueprint.ports],
        }
        state.spec.update(recorded)
        runtime.store.write(state)
        return recorded
    except NetworkError as exc:
        text = str(exc)
        if "not found" in text:
            raise errors.NotFound(text, exit_code=125) from None
        raise errors.Conflict(text, exit_code=125) from None  # a port taken, a subnet exhausted
    except OSError as exc:
        raise errors.Internal(str(exc), exit_code=125) from None


def _port_text(port: "PortMapping") -> str:
    host = f"{port.host_ip}:" if port.host_ip else ""
    return f"{host}{port.host_port}:{port.container_port}/{port.protocol}"


def filled(wiring: "Wiring", spec: dict[str, Any]) -> None:
    """A volume is filled from the image at its first mount only: once the process
    is started (the copy happens before it runs), the next mount copies nothing."""
    names = spec.get("fill_volumes") or []
    if names:
        from reconciler.volumes.local import VolumeError

        volumes = wiring.volumes()
        for name in names:
            with contextlib.suppress(VolumeError):
                volumes.mark_copied_up(name)


def release(wiring: "Wiring", name: str, spec: dict[str, Any], *, anonymous_volumes: bool = False) -> None:
    """What a removed container held outside its directory: its network endpoints
    (when it had any) and, with ``anonymous_volumes`` (``run --rm``), those."""
    if spec.get("networks"):
        detach(wiring, name)
    if anonymous_volumes:
        remove_volumes(wiring, spec.get("anonymous_volumes") or [])


def detach(wiring: "Wiring", name: str) -> None:
    from reconciler.network.manager import NetworkError

    try:
        wiring.network_manager().detach(name)
    except NetworkError as exc:
        raise errors.Internal(str(exc)) from None


def remove_volumes(wiring: "Wiring", names: list[str]) -> None:
    if names:
        from reconciler.volumes.local import VolumeError

        volumes = wiring.volumes()
        for name in names:
            with contextlib.suppress(VolumeError):
                volumes.remove(name)


def discard(wiring: "Wiring", name: str, *, anonymous_volumes: list[str] | None = None, networks: bool = True) -> None:
    """Undo a ``make`` that failed half-way: the container (created, not running),
    its endpoints (``networks``: the network layer's own undo may have stopped
    short) and the anonymous volumes it made. Errors are suppressed: the first
    one is the one to report."""
    runtime = wiring.runtime()
    with contextlib.suppress(ContainerError, OSError):
        state = runtime.store.read(name)
        if state is not None and state.status in ("running", "paused"):
            runtime.stop(name, grace=0)
        runtime.delete(name)
    if networks:
        with contextlib.suppress(Exception):
            detach(wiring, name)
    with contextlib.suppress(Exception):
        remove_volumes(wiring, anonymous_volumes or [])
