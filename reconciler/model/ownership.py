"""Labels that record who owns an object, written on everything reconcile applies.

Prune deletes only what carries this stack's ``STACK`` label: objects of other
stacks and objects made by hand never match.
"""

STACK = "reconcile.stack"
MANIFEST = "reconcile.manifest"
SPEC_HASH = "reconcile.spec-hash"
