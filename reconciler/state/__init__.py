"""Persistent engine state in one SQLite file, ``ROOT/state.db``: objects, networks, IP leases, endpoints, volumes."""
