"""Docker container ids: 64 hex characters, accepted with a name or a unique prefix.

The engine gives every container an ID at create (``id`` in its list rows and
recorded states, ``Id`` in its inspect document); one recorded before IDs existed
has the sha256 of its name, which the engine's state answers too. The sha256 here is
for a caller that only knows a name (``{"name": ...}``) and is right for those
containers only: look a container up to get its real ID."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.dockerapi.errors import DockerError


def docker_id(info: Mapping[str, Any]) -> str:
    """The Docker id of a container, from its engine inspect or list entry (or state)."""
    value = info.get("id") or info.get("Id")
    if isinstance(value, str) and value:
        return value
    name = str(info.get("name") or info.get("Name") or "").lstrip("/")
    return hashlib.sha256(name.encode()).hexdigest()


def resolve(ref: str, containers: Iterable[Mapping[str, Any]]) -> str:
    """The engine name of the container ``ref`` names (Docker's rule: an exact name,
    a full id, else a unique id prefix); NotFound-like DockerError otherwise."""
    wanted = ref.lstrip("/")
    by_prefix: list[str] = []
    for info in containers:
        name = str(info.get("name") or "")
        if name == wanted:
            return name
        ident = docker_id(info)
        if ident == wanted:
            return name
        if wanted and ident.startswith(wanted.lower()):
            by_prefix.append(name)
    if len(by_prefix) == 1:
        return by_prefix[0]
    if len(by_prefix) > 1:
        raise DockerError(404, f"multiple IDs found with provided prefix: {ref}")
    raise DockerError(404, f"No such container: {ref}")
