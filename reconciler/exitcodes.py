"""Exit codes shared by every command (documented in README.md; CI depends on them).

Here rather than in ``cli`` so that the reconcile loop (``control``) and the engine
can return them without importing a front end.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CHANGES = 2
EXIT_USAGE = 64
