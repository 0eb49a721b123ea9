"""Contexts: named hosts the CLI can talk to, as ``docker context`` keeps them.

Stored in ``$RECONCILE_CONFIG`` (default ``$XDG_CONFIG_HOME/reconcile`` or
``~/.config/reconcile``) as ``contexts.json``: ``{"current": NAME, "contexts": {NAME:
{"host", "description", "tls": {"ca", "cert", "key"}}}}``, written atomically, mode
0600. ``default`` is built in and means "no context": the default socket if an agent
listens there, else the in-process engine.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT = "default"
#: Context names (checked with ``re``, imported then: the CLI reads contexts on every command).
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"


class ContextError(Exception):
    pass


def directory() -> str:
    configured = os.environ.get("RECONCILE_CONFIG")
    if configured:
        return configured
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "reconcile")


def path() -> str:
    return os.path.join(directory(), "contexts.json")


def load() -> dict[str, Any]:
    import json

    try:
        with open(path()) as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return {"current": DEFAULT, "contexts": {}}
    except ValueError as exc:
        raise ContextError(f"{path()}: not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("contexts"), dict):
        raise ContextError(f"{path()}: not a contexts file")
    document.setdefault("current", DEFAULT)
    return document


def save(document: dict[str, Any]) -> None:
    import json

    os.makedirs(directory(), mode=0o700, exist_ok=True)
    temporary = path() + ".tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle, indent=2)
    os.replace(temporary, path())


def get(name: str) -> dict[str, Any]:
    if name == DEFAULT:
        return {"name": DEFAULT, "host": None, "description": "the default socket if an agent listens, else in-process"}
    found = load()["contexts"].get(name)
    if found is None:
        raise ContextError(f"no such context: {name}")
    return {"name": name, **found}


def current() -> str:
    return str(load().get("current") or DEFAULT)


def create(name: str, *, host: str, description: str = "", tls: dict[str, str] | None = None) -> dict[str, Any]:
    import re

    if not re.match(NAME, name) or name == DEFAULT:
        raise ContextError(f"invalid context name {name!r}")
    if not (host.startswith("unix://") or host.startswith("tcp://")):
        raise ContextError(f"invalid host {host!r}: use unix:///PATH or tcp://HOST:PORT")
    if tls:
        for key in ("ca", "cert", "key"):
            if not tls.get(key):
                raise ContextError(f"TLS needs --tls-ca, --tls-cert and --tls-key (missing {key})")
        for key in ("ca", "cert", "key"):
            tls[key] = os.path.abspath(tls[key])
            if not os.path.isfile(tls[key]):
                raise ContextError(f"--tls-{key}: no such file {tls[key]}")
    document = load()
    if name in document["contexts"]:
        raise ContextError(f"context {name!r} already exists")
    entry: dict[str, Any] = {"host": host, "description": description}
    if tls:
        entry["tls"] = tls
    document["contexts"][name] = entry
    save(document)
    return {"name": name, **entry}


def use(name: str) -> None:
    document = load()
    if name != DEFAULT and name not in document["contexts"]:
        raise ContextError(f"no such context: {name}")
    document["current"] = name
    save(document)


def remove(name: str) -> None:
    document = load()
    if name == DEFAULT:
        raise ContextError("the default context cannot be removed")
    if name not in document["contexts"]:
        raise ContextError(f"no such context: {name}")
    del document["contexts"][name]
    if document.get("current") == name:
        document["current"] = DEFAULT
    save(document)


def listing() -> list[dict[str, Any]]:
    document = load()
    rows = [{**get(DEFAULT), "current": document["current"] == DEFAULT}]
    for name, entry in sorted(document["contexts"].items()):
        rows.append({"name": name, **entry, "current": document["current"] == name})
    return rows
