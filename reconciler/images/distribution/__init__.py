"""The OCI distribution protocol, client side: pull from and push to registries.

    from reconciler.images import distribution
    image = distribution.pull(store, "127.0.0.1:5000/busybox:1", progress=callback)
    digest = distribution.push(store, "127.0.0.1:5000/busybox:2")
    distribution.login(root, "registry.example", "user", "secret")

Modules: ``config`` (settings, errors, progress events, where a reference
lives), ``credentials`` (Docker-style auth files), ``client`` (one HTTP session:
scheme, authentication, retries; ``login``), ``pull``, ``push``, ``progress``
(rich bars). This package imports httpx, so code that may never talk to a
registry imports it lazily.
"""

from __future__ import annotations

from reconciler.images.distribution.client import login, logout
from reconciler.images.distribution.config import ProgressCallback, ProgressEvent, RegistryConfig, RegistryError
from reconciler.images.distribution.progress import rich_progress
from reconciler.images.distribution.pull import pull
from reconciler.images.distribution.push import push

__all__ = [
    "ProgressCallback",
    "ProgressEvent",
    "RegistryConfig",
    "RegistryError",
    "login",
    "logout",
    "pull",
    "push",
    "rich_progress",
]
