"""The ``reconcile`` command line: thin, fast to start, heavy imports only inside commands."""
