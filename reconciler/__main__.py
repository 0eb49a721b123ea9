"""``python -m reconciler`` is the same as the ``reconcile`` console script."""

from reconciler.cli.main import main

raise SystemExit(main())
