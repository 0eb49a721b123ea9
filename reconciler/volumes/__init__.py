"""Volumes: named and anonymous storage that outlives containers, and bind-mount sources.

``local.py`` is the local driver (Docker's layout: ``ROOT/volumes/NAME/_data``), with
the ``-v`` flag parser and the copy-up helper. Standard library only: it is on the
path of ``reconcile run -v NAME:/path``.
"""
