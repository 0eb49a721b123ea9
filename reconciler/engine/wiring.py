"""The composition root: the only place that builds concrete drivers from
configuration. Front ends and the reconcile loop get drivers from here (through an
``Engine``), never by constructing them.

Every driver is built on first use and kept: ``reconcile run`` with ``--network none``
never imports pyroute2 (about 145 ms), and the agent shares one of each across
requests and passes.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from reconciler.images.store import ImageStore
    from reconciler.network.manager import NetworkManager
    from reconciler.runtime.containers import Runtime
    from reconciler.state.db import StateDB
    from reconciler.volumes.local import LocalVolumes

DEFAULT_ROOT = "/var/lib/reconcile"
DEFAULT_CGROUP_PARENT = "reconcile"


class EngineConfig(NamedTuple):
    """Where an engine keeps its state and makes its cgroups. Two engines with
    different roots and cgroup parents share nothing on a host."""

    root: str = DEFAULT_ROOT
    cgroup_parent: str = DEFAULT_CGROUP_PARENT
    #: A long-lived engine (the agent) answers a pull once the blobs are verified and
    #: stored, and unpacks the layers right after, in the background; a one-shot CLI
    #: process unpacks before it returns (nothing of it would be there to do it later).
    unpack_after_pull: bool = False

    @classmethod
    def from_environment(cls, root: str | None = None, cgroup_parent: str | None = None) -> EngineConfig:
        return cls(
            root=root or os.environ.get("RECONCILE_ROOT", DEFAULT_ROOT),
            cgroup_parent=cgroup_parent or os.environ.get("RECONCILE_CGROUP_PARENT", DEFAULT_CGROUP_PARENT),
        )


class Wiring:
    """The drivers of one engine, each built on first use. Thread-safe: the agent's
    request threads and its reconcile pass share one ``Wiring``."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._runtime: Runtime | None = None
        self._images: ImageStore | None = None
        self._networks: NetworkManager | None = None
        self._volumes: LocalVolumes | None = None
        self._db: StateDB | None = None

    def runtime(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                from reconciler.runtime.containers import Runtime

                self._runtime = Runtime(self.config.root, cgroup_parent=self.config.cgroup_parent)
            return self._runtime

    def image_store(self) -> ImageStore:
        with self._lock:
            if self._images is None:
                from reconciler.images.store import ImageStore

                self._images = ImageStore(self.config.root)
            return self._images

    def network_manager(self) -> NetworkManager:
        with self._lock:
            if self._networks is None:
                from reconciler.network.manager import NetworkManager

                self._networks = NetworkManager(self.config.root)
            return self._networks

    def volumes(self) -> LocalVolumes:
        with self._lock:
            if self._volumes is None:
                from reconciler.volumes.local import LocalVolumes

                self._volumes = LocalVolumes(self.config.root)
            return self._volumes

    def state_db(self) -> StateDB:
        with self._lock:
            if self._db is None:
                from reconciler.state.db import StateDB

                self._db = StateDB(self.config.root)
            return self._db

    def close(self) -> None:
        """Release what holds file descriptors or sockets (netlink, SQLite)."""
        with self._lock:
            if self._networks is not None:
                self._networks.close()
                self._networks = None
            if self._db is not None:
                self._db.close()
                self._db = None
