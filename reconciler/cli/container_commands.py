"""``reconcile run``, ``ps``, ``logs``, ``exec``, ``stop``, ``kill``, ``rm``, ``inspect``, ``stats``, ``pause``.

The hot paths: this module and everything it imports is standard library only
(no pydantic, no ruamel), so ``reconcile run --rm IMG true`` starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable

from reconciler.cli import main as cli
from reconciler.images.store import ImageConfig, ImageError, ImageStore
from reconciler.model import quantities
from reconciler.runtime import assemble, cgroups, etcfiles, linux, logread, process, spawn
from reconciler.runtime import logs as runtime_logs
from reconciler.runtime.containers import ContainerError, Runtime, signal_number
from reconciler.runtime.state import ContainerState

DEFAULT_ROOT = "/var/lib/reconcile"


def _runtime(args: argparse.Namespace) -> Runtime:
    return Runtime(args.root, cgroup_parent=args.cgroup_parent)


def image_import(args: argparse.Namespace) -> int:
    try:
        image = ImageStore(args.root).import_tarball(args.tarball, args.reference)
    except ImageError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    print(image.id)
    return cli.EXIT_OK


def run(args: argparse.Namespace) -> int:
    images = ImageStore(args.root)
    runtime = _runtime(args)
    name = args.name or f"run-{os.urandom(6).hex()}"
    reserved = False
    try:
        if args.detach and args.rm:
            raise ValueError("--rm and -d together are not supported yet: remove the container with rm")
        stored = images.image(args.image, verify=False)  # trusted: verified when written
        image = ImageConfig.from_document(stored.config)
        layers = images.lower_dirs(stored)
        limits = _limits(args)
        stop_signal = args.stop_signal or image.stop_signal
        if stop_signal:
            signal_number(stop_signal)  # a bad one is refused before anything is made
        directory = runtime.reserve(name)
        reserved = True
        config = _config(args, name, directory, image, layers)
        source = {"name": args.image, "id": stored.id, "manifest": stored.manifest_digest}
        runtime.create(name, config, limits, image=source, stop_signal=stop_signal)
        if _net_mode(args) == "bridge":
            _attach(args, runtime, name, directory, config.hostname)
        if args.detach:
            runtime.start(name)
            _after_start(args)
            print(name)
            return cli.EXIT_OK
        _after_start(args)  # the copy happens before the process runs
        try:
            if args.tty:
                from reconciler.cli import terminal

                with terminal.attached(interactive=args.interactive) as pty:
                    return runtime.run(name, stdin=pty, stdout=pty, stderr=pty, remove=args.rm)
            stdin = 0 if args.interactive else os.open(os.devnull, os.O_RDONLY)
            return runtime.run(name, stdin=stdin, remove=args.rm)
        finally:
            if args.rm:
                _remove_anonymous_volumes(args)
                if _net_mode(args) == "bridge":
                    _detach(args, name)
    except (ImageError, ContainerError, process.ProcessError, ValueError) as exc:
        if reserved and args.rm:
            with contextlib.suppress(ContainerError):
                runtime.delete(name)
            _remove_anonymous_volumes(args)
        print(f"reconcile: {exc}", file=sys.stderr)
        return 125  # Docker's code for "the engine could not run it"
    except spawn.StartError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return exc.exit_code


def _config(
    args: argparse.Namespace, name: str, directory: str, image: ImageConfig, layers: tuple[str, ...]
) -> spawn.Config:
    """The container's process and filesystem from the image and the flags, as docker run merges them."""
    hostname = args.hostname or name[:63]
    mounts = (
        *etcfiles.write(os.path.join(directory, "etc"), hostname),
        *_volumes(args),
        *(_tmpfs(t) for t in args.tmpfs),
    )
    modes = (("net", _net_mode(args)), ("pid", args.pid), ("ipc", args.ipc), ("uts", args.uts))
    return assemble.build(
        directory=directory,
        layers=layers,
        image=image,
        hostname=hostname,
        mounts=mounts,
        entrypoint=[args.entrypoint] if args.entrypoint else ([] if args.entrypoint == "" else None),
        command=args.command or None,
        user=args.user,
        env=dict(item.partition("=")[::2] for item in args.env),
        cwd=args.workdir,
        cap_add=_caps(args.cap_add),
        cap_drop=_caps(args.cap_drop),
        read_only=args.read_only,
        init=args.init,
        tty=args.tty,
        host_namespaces=tuple(kind for kind, mode in modes if mode == "host"),
    )


def _limits(args: argparse.Namespace) -> cgroups.Limits:
    memory = quantities.parse_bytes(args.memory) if args.memory else None
    if memory is not None and memory < MIN_MEMORY:
        raise ValueError(f"minimum memory limit allowed is 6m, got {args.memory}")  # as Docker says
    swap: int | None = None
    if args.memory_swap not in (None, "-1"):
        swap = quantities.parse_bytes(args.memory_swap)
        if memory is None:
            raise ValueError("--memory-swap needs --memory: it is memory plus swap, as in docker run")
        if swap < memory:
            raise ValueError(f"--memory-swap ({args.memory_swap}) must be at least --memory ({args.memory})")
    return cgroups.Limits(
        memory=memory,
        memory_swap=swap,
        cpus=quantities.parse_cpus(args.cpus) if args.cpus else None,
        cpu_shares=args.cpu_shares,
        cpuset=args.cpuset_cpus,
        pids=args.pids,
    )


#: Docker's floor: below it a container cannot even start its runtime's init.
MIN_MEMORY = 6 * 1024 * 1024


def _caps(names: list[str]) -> list[str]:
    """``NET_ADMIN``, ``cap_net_admin`` or ``ALL``, in the kernel's spelling."""
    out = []
    for name in names:
        canonical = name.upper() if name.upper() == "ALL" else "CAP_" + name.upper().removeprefix("CAP_")
        if canonical != "ALL" and canonical not in linux.CAPABILITY_NUMBERS:
            raise ValueError(f"unknown capability {name!r}")
        out.append(canonical)
    return out


def _volumes(args: argparse.Namespace) -> list[spawn.MountSpec]:
    """``-v NAME:/p[:ro]``, ``-v /host:/p[:ro]`` and ``-v /p`` (anonymous) as docker
    run takes them: named volumes are made on first use and filled from the image
    at their first mount; missing bind sources are created, as docker does. The
    anonymous volumes made are kept in ``args.anonymous_volumes`` (``--rm`` removes
    them), the ones to mark as filled in ``args.filled_volumes``."""
    args.anonymous_volumes, args.filled_volumes = [], []
    if not args.volume:
        return []
    from reconciler.volumes.local import LocalVolumes, VolumeError, bind_source, parse_volume_flag

    volumes = LocalVolumes(args.root)
    mounts = []
    try:
        for text in args.volume:
            flag = parse_volume_flag(text, cwd=os.getcwd())
            if flag.type == "bind":
                source = bind_source(flag.source, create=True)
                mounts.append(spawn.MountSpec(target=flag.target, source=source, read_only=flag.read_only))
                continue
            if flag.anonymous:
                name = volumes.create_anonymous().name
                args.anonymous_volumes.append(name)
            else:
                name = volumes.ensure(flag.source).name
            copy_up = flag.copy and volumes.copy_up_needed(name)
            args.filled_volumes.append(name)
            path = volumes.path(name)
            mounts.append(spawn.MountSpec(target=flag.target, source=path, read_only=flag.read_only, copy_up=copy_up))
    except VolumeError as exc:
        raise ContainerError(str(exc)) from None
    return mounts


def _after_start(args: argparse.Namespace) -> None:
    """A volume is filled from the image at its first mount only."""
    if args.filled_volumes:
        from reconciler.volumes.local import LocalVolumes

        volumes = LocalVolumes(args.root)
        for name in args.filled_volumes:
            volumes.mark_copied_up(name)


def _remove_anonymous_volumes(args: argparse.Namespace) -> None:
    """``run --rm`` takes the container's anonymous volumes with it, as docker does."""
    if getattr(args, "anonymous_volumes", None):
        from reconciler.volumes.local import LocalVolumes, VolumeError

        volumes = LocalVolumes(args.root)
        for name in args.anonymous_volumes:
            with contextlib.suppress(VolumeError):
                volumes.remove(name)


def _tmpfs(text: str) -> spawn.MountSpec:
    """``--tmpfs /path[:size=64m,mode=1777]`` as in ``docker run``."""
    target, _, options = text.partition(":")
    return spawn.MountSpec(target=target, type="tmpfs", options=options)


def ps(args: argparse.Namespace) -> int:
    states = [s for s in _runtime(args).containers() if args.all or s.status in ("running", "paused")]
    if args.output == "json":
        print(
            json.dumps([{"name": s.name, "status": s.status, "pid": s.pid, "exit_code": s.exit_code} for s in states])
        )
        return cli.EXIT_OK
    print(f"{'NAME':<24} {'STATUS':<10} {'PID':>8} {'EXIT':>5}  COMMAND")
    for s in states:
        command = " ".join(s.spec.get("config", {}).get("argv", []))[:40]
        exit_code = "" if s.exit_code is None else str(s.exit_code)
        print(f"{s.name:<24} {s.status:<10} {s.pid:>8} {exit_code:>5}  {command}")
    return cli.EXIT_OK


def logs(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    try:
        runtime.inspect(args.name)
    except ContainerError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    path = runtime.store.path(args.name, "container.log")
    if not os.path.exists(path):
        return cli.EXIT_OK
    since = int(float(args.since) * 1e9) if args.since else None
    if args.follow:
        entries = logread.follow(
            path, tail=args.tail, since_ns=since, stop=lambda: runtime.inspect(args.name).status == "exited"
        )
    else:
        entries = iter(logread.read(path, tail=args.tail, since_ns=since))
    for entry in entries:
        stream = sys.stdout if entry.stream == "stdout" else sys.stderr
        prefix = f"{runtime_logs.timestamp(entry.time_ns)} " if args.timestamps else ""
        stream.write(prefix + entry.text)
        stream.flush()
    return cli.EXIT_OK


def exec_(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    try:
        if args.tty:
            from reconciler.cli import terminal

            with terminal.attached(interactive=args.interactive) as pty:
                return runtime.exec(args.name, args.command, stdin=pty, stdout=pty, stderr=pty, tty=True)
        stdin = 0 if args.interactive else os.open(os.devnull, os.O_RDONLY)
        return runtime.exec(args.name, args.command, stdin=stdin)
    except ContainerError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 125
    except spawn.StartError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return exc.exit_code


def stop(args: argparse.Namespace) -> int:
    try:
        state = _runtime(args).stop(args.name, grace=args.time)
    except ContainerError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    print(state.name)
    return cli.EXIT_OK


def rm(args: argparse.Namespace) -> int:
    runtime = _runtime(args)

    def remove(name: str) -> None:
        if args.force:
            runtime.stop(name, grace=0)
        networks = (runtime.inspect(name).spec or {}).get("networks")
        runtime.delete(name)
        if networks:
            _detach(args, name)

    return _each(args.names, remove)


def kill(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    try:
        sig = signal_number(args.signal)
    except ContainerError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_USAGE
    return _each(args.names, lambda name: runtime.kill(name, sig))


def pause(args: argparse.Namespace) -> int:
    return _each(args.names, _runtime(args).pause)


def unpause(args: argparse.Namespace) -> int:
    return _each(args.names, _runtime(args).unpause)


def _each(names: list[str], action: Callable[[str], object]) -> int:
    """Apply ``action`` to every name, as docker does: report each failure, go on."""
    status = cli.EXIT_OK
    for name in names:
        try:
            action(name)
            print(name)
        except ContainerError as exc:
            print(f"reconcile: {exc}", file=sys.stderr)
            status = cli.EXIT_FAILED
    return status


def inspect(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    found, status = [], cli.EXIT_OK
    for name in args.names:
        try:
            found.append(_inspect_document(runtime.inspect(name)))
        except ContainerError as exc:
            print(f"reconcile: {exc}", file=sys.stderr)
            status = cli.EXIT_FAILED
    print(json.dumps(found, indent=2))
    return status


def _iso(timestamp: float | None) -> str:
    if timestamp is None:
        return "0001-01-01T00:00:00Z"  # Docker's zero time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp % 1 * 1e9):09d}Z"


def _inspect_document(state: ContainerState) -> dict[str, object]:
    """The container in the shape of ``docker inspect`` (the fields we have)."""
    config = state.spec.get("config", {})
    limits = state.spec.get("limits", {})
    image = state.spec.get("image") or {}
    return {
        "Name": state.name,
        "Created": _iso(state.created_at),
        "Path": (config.get("argv") or [""])[0],
        "Args": (config.get("argv") or [])[1:],
        "State": {
            "Status": state.status,
            "Running": state.status in ("running", "paused"),
            "Paused": state.status == "paused",
            "OOMKilled": state.oom_killed,
            "Pid": state.pid if state.status in ("running", "paused") else 0,
            "ExitCode": state.exit_code or 0,
            "Error": state.error or "",
            "StartedAt": _iso(state.started_at),
            "FinishedAt": _iso(state.finished_at),
        },
        "Image": image.get("id", ""),
        "Config": {
            "Hostname": config.get("hostname"),
            "Image": image.get("name", ""),
            "User": f"{config.get('uid', 0)}:{config.get('gid', 0)}",
            "Env": config.get("env", []),
            "Cmd": config.get("argv", []),
            "WorkingDir": config.get("cwd", "/"),
            "Tty": config.get("tty", False),
        },
        "HostConfig": {
            "Memory": limits.get("memory") or 0,
            "MemorySwap": limits.get("memory_swap") or 0,
            "NanoCpus": int((limits.get("cpus") or 0) * 1e9),
            "CpuShares": limits.get("cpu_shares") or 0,
            "CpusetCpus": limits.get("cpuset") or "",
            "PidsLimit": limits.get("pids"),
            "ReadonlyRootfs": config.get("read_only", False),
            "Init": config.get("init", False),
            "CapAdd": None,
            "Mounts": config.get("mounts", []),
        },
    }


def stats(args: argparse.Namespace) -> int:
    """One snapshot of every running container's usage (``docker stats --no-stream``)."""
    runtime = _runtime(args)
    rows = []
    for state in runtime.containers():
        if state.status not in ("running", "paused") or (args.names and state.name not in args.names):
            continue
        try:
            usage = cgroups.new_cgroup(state.name, parent=runtime.cgroup_parent).stats()
        except cgroups.CgroupError:
            continue  # it exited meanwhile
        limit = state.spec.get("limits", {}).get("memory")
        rows.append(
            {
                "name": state.name,
                "memory_usage": usage.memory_usage,
                "memory_peak": usage.memory_peak,
                "memory_limit": limit,
                "cpu_seconds": usage.cpu_usage_ns / 1e9,
                "pids": usage.pids,
            }
        )
    if args.output == "json":
        print(json.dumps(rows))
        return cli.EXIT_OK
    print(f"{'NAME':<24} {'MEM USAGE / LIMIT':>24} {'CPU TIME':>10} {'PIDS':>5}")
    for row in rows:
        limit_text = quantities.human_size(row["memory_limit"]) if row["memory_limit"] else "-"
        memory = f"{quantities.human_size(row['memory_usage'])} / {limit_text}"
        print(f"{row['name']:<24} {memory:>24} {row['cpu_seconds']:>9.2f}s {row['pids']:>5}")
    return cli.EXIT_OK


def _net_mode(args: argparse.Namespace) -> str:
    """``none`` (the default: loopback only), ``host``, or ``bridge`` for named networks.

    Not Docker's default of ``bridge``: wiring a bridge means importing pyroute2
    (about 145 ms), which ``run`` cannot pay for every container; manifests'
    containers join the default ``bridge`` network unless they say otherwise."""
    modes = set(args.network)
    if modes <= {"none"}:
        return "none"
    if "host" in modes or "none" in modes:
        if len(modes) > 1:
            raise ValueError("--network none or host cannot be combined with other networks")
        return "host"
    return "bridge"


def _attach(args: argparse.Namespace, runtime: Runtime, name: str, directory: str, hostname: str) -> None:
    """Wire the container's network namespace into its networks before it starts,
    then point its resolv.conf at the embedded DNS and its hosts file at its address.
    On failure nothing of the container is left (leases, veths, rules, state)."""
    from reconciler.network.manager import DEFAULT_NETWORK, Attachment, NetworkError, NetworkManager, parse_ports

    manager = NetworkManager(args.root)
    try:
        ports = [mapping for text in args.publish for mapping in parse_ports(text)]
        if DEFAULT_NETWORK in args.network:
            manager.ensure_default()
        attachments = [
            Attachment(network, tuple(args.network_alias), args.ip if index == 0 else None)
            for index, network in enumerate(dict.fromkeys(args.network))
        ]
        handle = runtime.store.path(name, "netns")
        endpoints = manager.attach(name, handle, attachments, ports)
        mounts = etcfiles.write(
            os.path.join(directory, "etc"),
            hostname,
            nameservers=manager.nameservers(name),
            address=str(endpoints[0].address),
        )
        assert mounts  # same files, same mounts: the config already has them
        state = runtime.store.read(name)
        assert state is not None
        state.spec["networks"] = [
            {"network": e.network, "ifname": e.ifname, "address": str(e.address), "mac": e.mac} for e in endpoints
        ]
        state.spec["ports"] = args.publish
        runtime.store.write(state)
    except (NetworkError, OSError) as exc:
        with contextlib.suppress(Exception):
            manager.detach(name)
        with contextlib.suppress(ContainerError):
            runtime.delete(name)
        raise ContainerError(str(exc)) from None
    finally:
        manager.close()


def _detach(args: argparse.Namespace, name: str) -> None:
    from reconciler.network.manager import NetworkManager

    manager = NetworkManager(args.root)
    try:
        manager.detach(name)
    finally:
        manager.close()
