"""The values every part of the distribution client shares: settings, errors,
progress events, and where a reference's registry is and how to reach it.

Kept free of httpx so that code which only names these types (the CLI building a
``RegistryConfig``) does not pay for importing the HTTP stack.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from reconciler.model.reference import DEFAULT_REGISTRY, parse_reference

#: Docker Hub's names, all meaning one registry; its API lives at ``registry-1``.
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
DOCKER_HUB_API = "registry-1.docker.io"

Phase = Literal["exists", "downloading", "done", "unpacking", "unpacked", "mounted", "uploading"]


class RegistryError(Exception):
    """A pull, push or login that failed, saying where and why.

    ``registry``, ``repository`` and ``reference`` name what was being fetched or
    sent; ``cause`` is the reason alone, for callers that format their own message.
    """

    def __init__(self, message: str, *, registry: str = "", repository: str = "", reference: str = "", cause: str = ""):
        super().__init__(message)
        self.registry = registry
        self.repository = repository
        self.reference = reference
        self.cause = cause or message


@dataclass(frozen=True)
class ProgressEvent:
    """One step of one blob: ``done`` of ``total`` bytes in ``phase``.

    Events for a digest arrive in order (``downloading``… then ``done``), possibly
    from a worker thread; a callback that draws must therefore be thread-safe.
    """

    digest: str
    total: int
    done: int
    phase: Phase


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class RegistryConfig:
    """How to talk to registries. The defaults suit a real network; tests shrink
    the waits so that a run of retries takes milliseconds.

    ``insecure`` lists registries reached over plain HTTP: ``host``, ``host:port``
    or a CIDR (as Docker's ``insecure-registries``); loopback registries always are.
    ``docker_config`` replaces the default ``$DOCKER_CONFIG/config.json`` or
    ``~/.docker/config.json`` (our own ``ROOT/auth.json`` is read first either way).
    """

    insecure: tuple[str, ...] = ()
    docker_config: str | None = None
    ca_file: str | None = None
    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    timeout: float = 60.0
    connect_timeout: float = 10.0
    parallel: int = 4
    chunk_threshold: int = 32 << 20
    chunk_size: int = 16 << 20
    max_manifest_size: int = 4 << 20
    user_agent: str = "reconcile/0.1"


@dataclass(frozen=True)
class Target:
    """Where a reference lives: ``registry`` as users write it (``docker.io``,
    ``127.0.0.1:5000``), ``host`` where its API answers, the repository and either
    a tag or a digest (``reference`` is what goes after ``/manifests/``)."""

    registry: str
    host: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """``registry/repository``, as errors and ``source`` records name it."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        return self.name + (f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}")


def parse_target(text: str) -> Target:
    """A reference resolved as Docker does: no registry means Docker Hub, where a
    single-component name lives under ``library/``."""
    try:
        ref = parse_reference(text)
    except ValueError as exc:
        raise RegistryError(str(exc), reference=text) from None
    registry = ref.registry or DEFAULT_REGISTRY
    repository = ref.repository
    host = registry
    if registry in DOCKER_HUB_ALIASES:
        registry, host = DEFAULT_REGISTRY, DOCKER_HUB_API
        if "/" not in repository:
            repository = f"library/{repository}"
    return Target(registry=registry, host=host, repository=repository, tag=ref.tag, digest=ref.digest)


def canonical_registry(name: str) -> str:
    """The key credentials are stored under: no scheme, no path, Hub's aliases as one."""
    name = name.strip()
    for prefix in ("https://", "http://"):
        name = name.removeprefix(prefix)
    name = name.split("/", 1)[0]
    return DEFAULT_REGISTRY if name in DOCKER_HUB_ALIASES else name


def split_host(registry: str) -> str:
    """The host part of ``host[:port]`` or ``[v6]:port``."""
    if registry.startswith("["):
        return registry[1:].split("]", 1)[0]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def is_loopback(registry: str) -> bool:
    host = split_host(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_insecure(registry: str, insecure: tuple[str, ...]) -> bool:
    """True when ``registry`` is spoken to in plain HTTP: loopback, or listed."""
    if is_loopback(registry):
        return True
    host = split_host(registry)
    for entry in insecure:
        if entry in (registry, host):
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def base_url(target: Target, config: RegistryConfig) -> str:
    scheme = "http" if is_insecure(target.registry, config.insecure) else "https"
    return f"{scheme}://{target.host}"
