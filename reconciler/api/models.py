"""pydantic validation and JSON Schemas for the engine's TypedDict models.

The models are ``typing.TypedDict`` (the remote CLI imports them, and
``typing_extensions`` alone costs it about 22 ms); pydantic on Python 3.11 accepts
only ``typing_extensions.TypedDict``. So the API rebuilds each model as a
``typing_extensions.TypedDict`` with the same fields, required keys and nested
models (recursively), set to refuse unknown fields, and validates against that.
"""

from __future__ import annotations

import functools
import importlib
import typing
from typing import Any

import typing_extensions
from pydantic import ConfigDict, TypeAdapter

MODELS_PACKAGE = "reconciler.engine.models"
FORBID = ConfigDict(extra="forbid")


def resolve(name: str) -> Any:
    """The type a route names: ``containers.RunRequest``, ``list[containers.ContainerSummary]``,
    ``dict`` (any JSON object)."""
    if name == "dict":
        return dict[str, Any]
    if name.startswith("list[") and name.endswith("]"):
        return list[resolve(name[5:-1])]  # type: ignore[misc]
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(f"{MODELS_PACKAGE}.{module}"), attribute)


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


@functools.cache
def validating(tp: Any) -> Any:
    """``tp`` with every ``typing.TypedDict`` in it rebuilt for pydantic."""
    if _is_typeddict(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        fields: dict[str, Any] = {}
        for key, hint in hints.items():
            inner = _strip_requiredness(hint)
            converted = _convert(inner)
            marker = typing_extensions.Required if _required(tp, key, hint) else typing_extensions.NotRequired
            fields[key] = marker[converted]
        make: Any = typing_extensions.TypedDict  # called with a computed name: mypy wants literals
        rebuilt = make(tp.__name__, fields, total=True)
        rebuilt.__pydantic_config__ = FORBID
        rebuilt.__doc__ = tp.__doc__
        rebuilt.__module__ = tp.__module__
        return rebuilt
    return _convert(tp)


def _required(tp: Any, key: str, hint: Any) -> bool:
    """Whether ``key`` must be present. The hint's own ``Required``/``NotRequired``
    decides first: in a module with ``from __future__ import annotations`` Python
    3.11 cannot see them in the string annotations, and ``__required_keys__`` then
    lists a ``NotRequired`` key as required (the ``total`` of the class is right)."""
    origin = typing.get_origin(hint)
    if origin is typing.NotRequired:
        return False
    if origin is typing.Required:
        return True
    return key in tp.__required_keys__


def _strip_requiredness(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Required, typing.NotRequired):
        return typing.get_args(hint)[0]
    return hint


def _convert(tp: Any) -> Any:
    if _is_typeddict(tp):
        return validating(tp)
    origin = typing.get_origin(tp)
    if origin is None:
        return tp
    args = tuple(_convert(arg) for arg in typing.get_args(tp))
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return typing.Union[args]  # noqa: UP007 - built from a tuple
    if origin is typing.Literal:
        return tp
    return origin[args] if len(args) > 1 else origin[args[0]]


@functools.cache
def adapter(name: str) -> TypeAdapter[Any]:
    return TypeAdapter(validating(resolve(name)))


def error_text(errors: list[Any]) -> str:
    """pydantic's errors as one line per field: ``memory: Input should be a valid string``."""
    lines = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())) or "body"
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = "unknown field"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
