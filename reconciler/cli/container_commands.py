"""``reconcile image import``, ``run``, ``ps``, ``logs``, ``exec``, ``stop``, ``rm``.

The hot paths: this module and everything it imports is standard library only
(no pydantic, no ruamel), so ``reconcile run --rm IMG true`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
import uuid

from reconciler.cli import main as cli
from reconciler.images.local import ImageError, LocalImages
from reconciler.model import quantities
from reconciler.runtime import cgroups, etcfiles, linux, logread, process, spawn
from reconciler.runtime import logs as runtime_logs
from reconciler.runtime.containers import ContainerError, Runtime

DEFAULT_ROOT = "/var/lib/reconcile"


def _runtime(args: argparse.Namespace) -> Runtime:
    return Runtime(args.root, cgroup_parent=args.cgroup_parent)


def image_import(args: argparse.Namespace) -> int:
    try:
        digest = LocalImages(args.root).import_tarball(args.tarball, args.reference)
    except ImageError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    print(digest)
    return cli.EXIT_OK


def run(args: argparse.Namespace) -> int:
    images = LocalImages(args.root)
    runtime = _runtime(args)
    name = args.name or f"run-{uuid.uuid4().hex[:12]}"
    try:
        image = images.config(args.image)
        layers = images.layers(args.image)
        user = process.resolve_user(layers[0], args.user or image.user)
        argv = process.argv(
            image_entrypoint=image.entrypoint,
            image_cmd=image.cmd,
            entrypoint=None,
            command=args.command or None,
        )
        env = dict(item.partition("=")[::2] for item in args.env)
        directory = runtime.store.path(name)
        if os.path.exists(directory):
            raise ContainerError(f"container {name!r} already exists")
        overlay_dirs = [os.path.join(directory, d) for d in ("upper", "work", "rootfs")]
        for path in overlay_dirs:
            os.makedirs(path)
        os.chmod(overlay_dirs[2], 0o755)
        hostname = args.hostname or name[:63]
        mounts = (
            *etcfiles.write(os.path.join(directory, "etc"), hostname),
            *(_volume(v) for v in args.volume),
            *(_tmpfs(t) for t in args.tmpfs),
        )
        config = spawn.Config(
            rootfs=overlay_dirs[2],
            argv=argv,
            env=process.environment(image_env=image.env, env=env, hostname=hostname, home=user.home),
            hostname=hostname,
            cwd=args.workdir or image.working_dir,
            uid=user.uid,
            gid=user.gid,
            groups=user.groups,
            capabilities=process.capabilities(
                add=_caps(args.cap_add), drop=_caps(args.cap_drop), all_caps=frozenset(linux.CAPABILITY_NUMBERS)
            ),
            read_only=args.read_only,
            overlay=spawn.Overlay(layers=layers, upper=overlay_dirs[0], work=overlay_dirs[1]),
            mounts=mounts,
        )
        memory = quantities.parse_bytes(args.memory) if args.memory else None
        if memory is not None and memory < MIN_MEMORY:
            raise ValueError(f"minimum memory limit allowed is 6m, got {args.memory}")  # as Docker says
        limits = cgroups.Limits(
            memory=memory,
            cpus=quantities.parse_cpus(args.cpus) if args.cpus else None,
            pids=args.pids,
        )
        if args.detach:
            runtime.create(name, config, limits)
            runtime.start(name)
            print(name)
            return cli.EXIT_OK
        return _foreground(runtime, name, config, limits, remove=args.rm)
    except (ImageError, ContainerError, process.ProcessError, ValueError) as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 125  # Docker's code for "the engine could not run it"
    except spawn.StartError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return exc.exit_code


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


def _volume(text: str) -> spawn.MountSpec:
    """``-v /host/path:/target[:ro]``; named volumes arrive with the volumes issue."""
    source, target, *rest = [*text.split(":"), ""]
    if not source.startswith("/") or not target.startswith("/"):
        raise ValueError(f"invalid volume {text!r}: use /host/path:/container/path[:ro]")
    return spawn.MountSpec(target=target, source=source, read_only=rest[0] == "ro")


def _tmpfs(text: str) -> spawn.MountSpec:
    """``--tmpfs /path[:size=64m,mode=1777]`` as in ``docker run``."""
    target, _, options = text.partition(":")
    return spawn.MountSpec(target=target, type="tmpfs", options=options)


def _foreground(runtime: Runtime, name: str, config: spawn.Config, limits: cgroups.Limits, *, remove: bool) -> int:
    """``run`` without ``-d``: this process is the container's parent, no monitor."""
    group = cgroups.new_cgroup(name, parent=runtime.cgroup_parent)
    group.create()
    try:
        group.set(limits)
        return spawn.run(config, cgroup=group)
    finally:
        for _ in range(100):
            try:
                group.destroy()
                break
            except cgroups.CgroupError:
                time.sleep(0.01)
        if remove:
            shutil.rmtree(runtime.store.path(name), ignore_errors=True)


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
    try:
        return _runtime(args).exec(args.name, args.command)
    except ContainerError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 125
    except spawn.StartError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return exc.exit_code


def stop(args: argparse.Namespace) -> int:
    try:
        state = _runtime(args).stop(args.name, grace=args.time, sig=signal.SIGTERM)
    except ContainerError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    print(state.name)
    return cli.EXIT_OK


def rm(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    status = cli.EXIT_OK
    for name in args.names:
        try:
            if args.force:
                runtime.stop(name, grace=0)
            runtime.delete(name)
            print(name)
        except ContainerError as exc:
            print(f"reconcile: {exc}", file=sys.stderr)
            status = cli.EXIT_FAILED
    return status
