"""A container's ``spawn.Config`` put together from its image's defaults and what the
caller asks, merged as Docker merges them: the one place ``reconcile run`` (flags)
and the reconcile loop (manifests) both build containers from. Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from reconciler.runtime import linux, process, spawn


class ImageDefaults(Protocol):
    """What an image's config contributes (``images.store.ImageConfig`` has these)."""

    @property
    def entrypoint(self) -> list[str] | None: ...
    @property
    def cmd(self) -> list[str] | None: ...
    @property
    def env(self) -> list[str]: ...
    @property
    def user(self) -> str | None: ...
    @property
    def working_dir(self) -> str: ...


def build(
    *,
    directory: str,
    layers: tuple[str, ...],
    image: ImageDefaults,
    hostname: str,
    mounts: Sequence[spawn.MountSpec],
    entrypoint: list[str] | None,
    command: list[str] | None,
    user: str | None,
    env: dict[str, str],
    cwd: str | None,
    cap_add: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    group_add: Sequence[str] = (),
    read_only: bool = False,
    init: bool = False,
    tty: bool = False,
    host_namespaces: tuple[str, ...] = (),
) -> spawn.Config:
    """The config of a container whose state directory is ``directory``: its overlay
    (upper and work dirs, and the empty mount point, made here) over ``layers``."""
    who = process.resolve_user(layers[0], user or image.user, group_add=group_add)
    argv = process.argv(image_entrypoint=image.entrypoint, image_cmd=image.cmd, entrypoint=entrypoint, command=command)
    upper, work, rootfs = (os.path.join(directory, d) for d in ("upper", "work", "rootfs"))
    for path in (upper, work, rootfs):
        os.makedirs(path)
    os.chmod(rootfs, 0o755)
    return spawn.Config(
        rootfs=rootfs,
        argv=argv,
        env=process.environment(image_env=image.env, env=env, hostname=hostname, home=who.home),
        hostname=hostname,
        cwd=cwd or image.working_dir,
        uid=who.uid,
        gid=who.gid,
        groups=who.groups,
        capabilities=process.capabilities(
            add=list(cap_add), drop=list(cap_drop), all_caps=frozenset(linux.CAPABILITY_NUMBERS)
        ),
        read_only=read_only,
        overlay=spawn.Overlay(layers=layers, upper=upper, work=work),
        mounts=tuple(mounts),
        init=init,
        tty=tty,
        host_namespaces=host_namespaces,
    )
