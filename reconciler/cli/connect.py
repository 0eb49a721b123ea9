"""Which engine a command talks to.

For now the in-process engine under ``--root``/``--cgroup-parent``; the remote
resolution (``--host``, ``$RECONCILE_HOST``, contexts, the default socket) is added
here, so commands never decide it themselves.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.engine.core import Engine


def engine(args: argparse.Namespace) -> Engine:
    """The engine for this command's arguments."""
    from reconciler.engine.core import Engine
    from reconciler.engine.wiring import EngineConfig

    root = getattr(args, "root", None)
    cgroup_parent = getattr(args, "cgroup_parent", None)
    return Engine(EngineConfig.from_environment(root, cgroup_parent))
