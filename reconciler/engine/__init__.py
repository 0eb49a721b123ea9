"""The engine: every use case of ``reconcile`` (containers, images, networks, volumes,
stacks, system, events), owned in one place and called by every front end.

Layering (checked by ``tests/test_layering.py``)::

    cli, api, client          front ends: parse, render, serve; no drivers
        │
    engine, control           use cases and the reconcile loop; ``engine.wiring`` is
        │                     the composition root, the only place drivers are built
    runtime, network, images, volumes, state     drivers
        │
    model, plan, manifests    the pure core

This package's ``__init__`` imports nothing: a remote client imports
``engine.models`` and ``engine.errors`` (standard library only) without pulling in a
driver.
"""
