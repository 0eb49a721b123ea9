"""Labels that record who owns an object, written on everything reconcile applies.

Prune deletes only what carries this stack's ``STACK`` label: objects of other
stacks and objects made by hand never match. The keys sit under the prefix that
manifests may not use, so no manifest can forge another stack's ownership.
"""

from reconciler.model.common import RESERVED_LABEL_PREFIX

STACK = RESERVED_LABEL_PREFIX + "stack"
MANIFEST = RESERVED_LABEL_PREFIX + "manifest"
SPEC_HASH = RESERVED_LABEL_PREFIX + "spec-hash"
