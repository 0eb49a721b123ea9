"""The containers as the Docker API sees them: the runtime's recorded states (one
read for a whole listing), found by name, id or id prefix, and the Docker fields the
engine has no place for (``docker.json`` in the container's own state directory, so
it goes with the container). Blocking: call these through ``DockerContext.call``."""

from __future__ import annotations

import contextlib
import json
import os
import weakref
from typing import TYPE_CHECKING, Any

from reconciler.dockerapi import ids
from reconciler.dockerapi.errors import DockerError

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.runtime.containers import Runtime
    from reconciler.runtime.state import ContainerState

SIDECAR = "docker.json"


def runtime(engine: Engine) -> Runtime:
    return engine.wiring.runtime()


def identity(state: ContainerState) -> dict[str, Any]:
    """What ``ids.docker_id`` reads: the name, and the engine's id once it has one."""
    return {"name": state.name, "id": getattr(state, "id", None) or (state.spec or {}).get("id")}


def docker_id(state: ContainerState) -> str:
    return ids.docker_id(identity(state))


def states(engine: Engine) -> list[ContainerState]:
    return [s for s in runtime(engine).containers() if s.spec]  # a reserved name being made is no container yet


#: Full id → name of containers seen, per engine: a client that names containers by
#: id (docker-py's ``containers.list()`` inspects each by id) costs one state read
#: per lookup instead of reading every container's.
_NAMES: weakref.WeakKeyDictionary[Engine, dict[str, str]] = weakref.WeakKeyDictionary()


def remember(engine: Engine, state: ContainerState) -> str:
    ident = docker_id(state)
    _NAMES.setdefault(engine, {})[ident] = state.name
    return ident


def find(engine: Engine, ref: str) -> ContainerState:
    """The container ``ref`` names (name, full id, unique id prefix); 404 otherwise."""
    rt = runtime(engine)
    wanted = ref.lstrip("/")
    known = _NAMES.get(engine, {}).get(wanted)
    for name in (wanted, known) if known else (wanted,):
        if name and "/" not in name:
            state = rt.store.read(name)  # the common cases: a name, an id seen before; one file read
            if state is not None and state.spec and (name == wanted or docker_id(state) == wanted):
                return rt.inspect(state.name)
    everything = states(engine)
    for state in everything:
        remember(engine, state)
    name = ids.resolve(ref, (identity(s) for s in everything))
    try:
        return rt.inspect(name)
    except Exception:
        raise DockerError(404, f"No such container: {ref}") from None


def name_of(engine: Engine, ref: str) -> str:
    return find(engine, ref).name


def sidecar(engine: Engine, name: str) -> dict[str, Any]:
    try:
        with open(runtime(engine).store.path(name, SIDECAR)) as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


#: Docker records by container ID, once read: a record is written once, at create,
#: so the restart and healthcheck tasks, which look at every container each second,
#: read each file once and not at every look.
_RECORDS: dict[str, dict[str, Any]] = {}


def recorded(engine: Engine, name: str, ident: str) -> dict[str, Any]:
    """``sidecar(engine, name)`` for the container whose ID is ``ident``, kept once found
    (an empty one is not kept: the create may not have written it yet)."""
    found = _RECORDS.get(ident)
    if found is None:
        found = sidecar(engine, name)
        if found:
            if len(_RECORDS) > 4096:
                _RECORDS.clear()
            _RECORDS[ident] = found
    return found


def write_sidecar(engine: Engine, name: str, record: dict[str, Any]) -> None:
    path = runtime(engine).store.path(name, SIDECAR)
    with contextlib.suppress(FileNotFoundError):  # removed meanwhile
        with open(path + ".tmp", "w") as handle:
            json.dump(record, handle)
        os.replace(path + ".tmp", path)
