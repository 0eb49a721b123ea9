"""reconcile: a declarative container host.

The package is split along the seams described in ``docs/ARCHITECTURE.md``: a pure
core (``model``, ``manifests``, ``plan``) and, later, drivers behind Protocols.
Nothing here imports heavy modules at package import time, so the CLI's hot paths
stay fast.
"""

__version__ = "0.1.0"
