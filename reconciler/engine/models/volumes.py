"""Volumes: what ``volume create`` takes, what ``volume ls``/``inspect``/``prune`` give."""

from __future__ import annotations

import builtins
import time
from typing import Any, Protocol, TypedDict


class VolumeCreateRequest(TypedDict, total=False):
    """``docker volume create [NAME] [--label K=V]``; without a name (or with None)
    an anonymous volume with a random 64-hex-digit name is made."""

    name: str | None
    labels: dict[str, str]


class VolumeRef(TypedDict):
    name: str


class VolumeSummary(TypedDict):
    """One row of ``volume ls``, with everything ``inspect`` shows."""

    name: str
    driver: str  # local
    mountpoint: str  # the directory containers mount
    labels: dict[str, str]
    options: dict[str, str]
    created: float  # seconds since the epoch
    retain: str | None  # "retain" or "delete" for a manifest's volume
    anonymous: bool  # made for ``-v /path``


class VolumePruneResult(TypedDict):
    removed: list[str]  # names of the volumes removed
    reclaimed_bytes: int  # the size of their files


def inspect_document(summary: VolumeSummary) -> dict[str, Any]:
    """The shape of ``docker volume inspect``, from a summary: ``inspect`` answers it,
    and ``volume ls -o json`` prints it for every volume."""
    return {
        "Name": summary["name"],
        "Driver": summary["driver"],
        "Mountpoint": summary["mountpoint"],
        "Labels": summary["labels"],
        "Options": summary["options"],
        "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(summary["created"])),
        "Scope": "local",
        "Retain": summary["retain"],
    }


class VolumesAPI(Protocol):
    """What every front end may do to named volumes (directories under
    ``ROOT/volumes``). Names are ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``, as Docker's.

    Lifecycle: ``create`` (again with the same labels returns the volume; with other
    labels is a Conflict) → containers mount it (``run -v NAME:/p``, which also
    creates it) → ``remove``, refused (Conflict) while any container, running or
    stopped, mounts it. ``prune`` removes unused anonymous volumes, and with ``all``
    unused named ones too, never one a manifest said to retain.

    Worked example::

        engine.volumes.create({"name": "data"})["mountpoint"]   # ROOT/volumes/data/_data
        engine.volumes.remove("data")                            # {"name": "data"}
        engine.volumes.remove("data", force=True)                # missing: no error
    """

    def create(self, request: VolumeCreateRequest) -> VolumeSummary: ...

    def list(self) -> builtins.list[VolumeSummary]: ...

    def inspect(self, name: str) -> dict[str, Any]: ...

    def remove(self, name: str, *, force: bool = False) -> VolumeRef: ...

    def prune(self, *, all: bool = False) -> VolumePruneResult: ...
