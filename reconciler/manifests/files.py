"""Which files of a manifests directory are manifests. Standard library only: the
loader reads them, and the converged check of ``reconcile --once`` stats them
without importing the loader (pydantic, ruamel.yaml).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

STACK_FILE = "stack.yaml"
SUFFIXES = (".yaml", ".yml")


def manifest_files(directory: str) -> Iterator[tuple[str, str | None]]:
    """Manifest files under ``directory`` in a stable order, each with a problem or None.

    Symlinks are followed (checkouts use them) but a directory reached twice through
    its real path is a loop and is reported, not walked forever.
    """
    seen_dirs: set[str] = set()

    def walk(current: str, top: bool) -> Iterator[tuple[str, str | None]]:
        real = os.path.realpath(current)
        if real in seen_dirs:
            yield current, "symlink loop: this directory was already read through another path"
            return
        seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            yield current, f"cannot read directory: {exc.strerror}"
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = entry.path
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError as exc:  # is_dir() raises ELOOP; only a missing target reads as False
                loop = exc.errno == errno.ELOOP
                yield path, "symlink loop" if loop else f"cannot stat: {exc.strerror}"
                continue
            if entry.is_symlink() and not (is_dir or is_file) and entry.name.lower().endswith(SUFFIXES):
                try:
                    os.stat(path)
                except OSError as exc:
                    loop = exc.errno == errno.ELOOP
                    yield path, "symlink loop" if loop else f"broken symlink ({exc.strerror})"
                continue
            if is_dir:
                yield from walk(path, False)
            elif is_file and entry.name.lower().endswith(SUFFIXES) and not (top and entry.name == STACK_FILE):
                yield path, None

    yield from walk(directory, True)
