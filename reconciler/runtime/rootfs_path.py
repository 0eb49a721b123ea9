"""Paths inside a container's root filesystem, resolved without leaving it.

An image is untrusted input: its ``/etc/passwd`` may be a symlink to ``/etc/shadow``
of the host, or ``../../..`` deep. ``resolve`` walks the path one component at a time
and evaluates every symlink as if ``root`` were ``/`` (what runc's securejoin does),
so the result always lies under ``root``.
"""

from __future__ import annotations

import os

#: Symlinks followed in one resolution before giving up (the kernel's own limit is 40).
MAX_LINKS = 40


class EscapeError(Exception):
    pass


def resolve(root: str, path: str) -> str:
    """``path`` (absolute or not) inside ``root``, symlinks resolved within ``root``.

    Missing components are fine (the result names where the file would be);
    too many symlinks raise EscapeError.
    """
    root = os.path.abspath(root)
    pending = [part for part in path.split("/") if part]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:  # not a symlink, or missing: take it as it is
            resolved.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise EscapeError(f"too many symlinks resolving {path} in {root}")
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p] + pending
    return os.path.join(root, *resolved)
