"""Registry credentials in Docker's ``config.json`` format.

Looked up in order: our own ``ROOT/auth.json`` (written by ``login``), then the
Docker config (``RegistryConfig.docker_config``, else ``$DOCKER_CONFIG/config.json``,
else ``~/.docker/config.json``), so a host where ``docker login`` was run works
without a second login. An entry is ``{"auth": base64("user:password")}`` or
``{"username": …, "password": …}``; keys may carry a scheme or path
(``https://index.docker.io/v1/``), which are ignored. Credential helpers
(``credsStore``/``credHelpers``) are not run.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from typing import Any

from reconciler.images.distribution.config import RegistryError, canonical_registry

AUTH_FILE = "auth.json"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password in a traceback
        return f"Credentials(username={self.username!r}, password=***)"


def docker_config_path(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path) as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read credentials from {path}: {exc}") from None
    return document if isinstance(document, dict) else {}


def _entry_credentials(entry: Any, path: str, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryError(f"{path}: the auth of {key!r} is not base64 of user:password") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryError(f"{path}: the auth of {key!r} is not base64 of user:password")
        return Credentials(username, password)
    if entry.get("username") and "password" in entry:
        return Credentials(str(entry["username"]), str(entry["password"]))
    return None


def find_in(path: str, registry: str) -> Credentials | None:
    """The credentials ``path`` holds for ``registry``, if any."""
    wanted = canonical_registry(registry)
    auths = _read(path).get("auths") or {}
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if canonical_registry(str(key)) == wanted:
            found = _entry_credentials(entry, path, str(key))
            if found is not None:
                return found
    return None


def lookup(registry: str, *, root: str | None, docker_config: str | None = None) -> Credentials | None:
    """Credentials for ``registry``: ``ROOT/auth.json`` first, then the Docker config."""
    if root is not None:
        found = find_in(os.path.join(root, AUTH_FILE), registry)
        if found is not None:
            return found
    return find_in(docker_config_path(docker_config), registry)


@contextlib.contextmanager
def _locked(root: str) -> Any:
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, f".{AUTH_FILE}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write(path: str, document: dict[str, Any]) -> None:
    """Atomically, readable by root only: the file holds passwords."""
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def store(root: str, registry: str, credentials: Credentials) -> None:
    """Record ``credentials`` for ``registry`` in ``ROOT/auth.json``."""
    path = os.path.join(root, AUTH_FILE)
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    with _locked(root):
        document = _read(path)
        auths = document.setdefault("auths", {})
        for key in [k for k in auths if canonical_registry(k) == canonical_registry(registry)]:
            del auths[key]
        auths[canonical_registry(registry)] = {"auth": token}
        _write(path, document)


def forget(root: str, registry: str) -> bool:
    """Remove ``registry`` from ``ROOT/auth.json``; whether it was there."""
    path = os.path.join(root, AUTH_FILE)
    with _locked(root):
        document = _read(path)
        auths = document.get("auths") or {}
        keys = [k for k in auths if canonical_registry(k) == canonical_registry(registry)]
        for key in keys:
            del auths[key]
        if keys:
            _write(path, document)
    return bool(keys)
