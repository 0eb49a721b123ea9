"""Volumes: the engine's use cases of named volumes (``engine.models.volumes``), over
the local volume driver the wiring shares.

Errors of the driver are translated: an unknown volume is NotFound, a volume in
use (by a container, or by a mount on the host inside it), one that exists with
other labels, or a directory that is not a volume is a Conflict, a bad name or
label is an InvalidRequest.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reconciler.engine import errors
from reconciler.engine.models import volumes as models
from reconciler.volumes.local import Volume, VolumeError, VolumeNotFoundError, VolumeSpecError

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.volumes.local import LocalVolumes


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except VolumeNotFoundError as exc:
        raise errors.NotFound(str(exc)) from None
    except VolumeSpecError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    except VolumeError as exc:  # in use, exists with other labels, not a volume
        raise errors.Conflict(str(exc)) from None
    except OSError as exc:
        raise errors.Internal(f"volumes: {exc}") from None


class Volumes:
    """``models.VolumesAPI`` in-process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _driver(self) -> LocalVolumes:
        return self._engine.wiring.volumes()

    def create(self, request: models.VolumeCreateRequest) -> models.VolumeSummary:
        name = request.get("name")
        labels = request.get("labels") or {}
        if name is not None and not isinstance(name, str):
            raise errors.InvalidRequest(f"invalid volume name {name!r}: a string")
        driver = self._driver()
        with _translated():
            if not name:  # a random name no one else can be using: no lock to take
                return _summary(driver.create_anonymous(labels=labels))
            with self._engine.locks.hold("volume", name):
                return _summary(driver.create(name, labels=labels))

    def list(self) -> builtins.list[models.VolumeSummary]:
        with _translated():
            return [_summary(volume) for volume in self._driver().list()]

    def inspect(self, name: str) -> dict[str, Any]:
        with _translated():
            return models.inspect_document(_summary(self._driver().get(name)))

    def remove(self, name: str, *, force: bool = False) -> models.VolumeRef:
        """Refused while any container uses it, even with ``force``, which (as
        ``docker volume rm -f``) only makes a missing volume no error."""
        with self._engine.locks.hold("volume", name), _translated():
            self._driver().remove(name, force=force)
        return {"name": name}

    def prune(self, *, all: bool = False) -> models.VolumePruneResult:
        """Unused anonymous volumes, with ``all`` unused named ones too; never one a
        manifest said to retain. The candidates' locks are held throughout, taken
        in name order (no other operation holds two volume locks, so no deadlock)."""
        driver = self._driver()
        with _translated(), contextlib.ExitStack() as held:
            candidates = [v for v in driver.list() if (v.anonymous or all) and v.retain != "retain"]
            for volume in sorted(candidates, key=lambda v: v.name):
                held.enter_context(self._engine.locks.hold("volume", volume.name))
            sizes = {volume.name: _size(volume.mountpoint) for volume in candidates}
            removed = driver.prune(all=all)
        return {"removed": removed, "reclaimed_bytes": sum(sizes.get(name, 0) for name in removed)}


def _summary(volume: Volume) -> models.VolumeSummary:
    return {
        "name": volume.name,
        "driver": volume.driver,
        "mountpoint": volume.mountpoint,
        "labels": dict(volume.labels),
        "options": dict(volume.options),
        "created": volume.created_at,
        "retain": volume.retain,
        "anonymous": volume.anonymous,
    }


def _size(directory: str) -> int:
    """The bytes of the files under ``directory`` (each inode once, symlinks not
    followed, mounts on the host below it not entered), as Docker reports a
    volume's size; what cannot be read counts as nothing."""
    total = 0
    seen: set[int] = set()
    try:
        device = os.lstat(directory).st_dev
    except OSError:
        return 0
    pending = [directory]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if info.st_dev != device or info.st_ino in seen:
                        continue
                    seen.add(info.st_ino)
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(entry.path)
                    elif stat.S_ISREG(info.st_mode):
                        total += info.st_size
        except OSError:
            continue
    return total
