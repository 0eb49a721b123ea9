"""Did-you-mean hints for unknown fields and kinds."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

#: Names people bring from Compose, Docker or Kubernetes, and what they are called here.
KNOWN_SPELLINGS = {
    "environment": "env",
    "cmd": "command",
    "args": "command",
    "container_name": "metadata.name",
    "mem_limit": "resources.memory",
    "memory": "resources.memory",
    "cpus": "resources.cpus",
    "pids_limit": "resources.pids",
    "restart_policy": "restart",
    "workdir": "working_dir",
    "workingdir": "working_dir",
    "capabilities": "cap_add / cap_drop",
    "deploy": "a Service (kind: Service) with replicas and update",
    "dockerfile": "containerfile",
    "expose": "ports",
    "read_only_rootfs": "read_only",
    "ipv4address": "ipv4_address",
    "healthcheck_test": "healthcheck.test",
    "scale": "replicas",
    "update_config": "update",
}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'image'?)`` or an empty string."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    lowered = word.lower()
    if lowered in KNOWN_SPELLINGS and lowered not in choices:
        return f"; this is called {KNOWN_SPELLINGS[lowered]!r} here"
    return ""


def fields_at(model: type[BaseModel], path: Sequence[object]) -> list[str]:
    """Field names (as written in YAML) of the model found by following ``path`` from ``model``."""
    current: Any = model
    for element in path:
        current = _step(current, element)
        if current is None:
            return []
    models = [t for t in _flatten(current) if isinstance(t, type) and issubclass(t, BaseModel)]
    names: list[str] = []
    for m in models:
        names.extend(f.alias or name for name, f in m.model_fields.items())
    return names


def _step(annotation: Any, element: object) -> Any:
    for candidate in _flatten(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel) and isinstance(element, str):
            for name, field in candidate.model_fields.items():
                if element in (name, field.alias):
                    return field.annotation
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if origin is list and isinstance(element, int):
            return args[0]
        if origin is dict and isinstance(element, str):
            return args[1]
    return None


def _flatten(annotation: Any) -> list[Any]:
    """Unwrap Annotated, Optional and unions into the plain types they allow."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_flatten(arg))
        return out
    return [annotation]
