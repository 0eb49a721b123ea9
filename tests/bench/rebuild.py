#!/usr/bin/env python3
"""Rebuild latency of ``reconcile build`` through the Python API; prints a table.

    sudo .venv/bin/python tests/bench/rebuild.py [--runs 10] [--files 200]

A store under a temporary root gets a busybox base image; a 10-step Containerfile
(ARG, ENV, LABEL, WORKDIR, two COPYs of ``--files`` small files and two scripts, two
RUNs, USER, CMD) is built once, then timed:

- ``first build``: every step runs (two RUN containers, four layers written);
- ``unchanged rebuild``: every step is a cache hit; the target is < 0.3 s;
- ``touched, same content``: every context file gets a new mtime first (untimed), so
  each is hashed again, but the content is the same and every step still hits;
- ``lib.sh changed``: one copied file changes (untimed), so its COPY and the steps
  after it (two RUNs, USER, CMD) run again.

An unchanged rebuild must also write no blob and no snapshot; the bench checks that.
Not part of the test suite (pytest collects ``test_*.py`` only); needs root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from reconciler.images.build import builder  # noqa: E402
from reconciler.images.store import ImageStore  # noqa: E402
from reconciler.runtime import cgroups  # noqa: E402

CONTAINERFILE = """FROM busybox:base
ARG VERSION=1.0
ENV APP_HOME=/app VERSION=$VERSION
LABEL org.example.version=$VERSION
WORKDIR /app
COPY config/ /app/config/
COPY main.sh lib.sh /app/
RUN chmod +x /app/main.sh && echo built > /app/stamp
RUN /app/main.sh > /app/out.txt
USER 1000
CMD ["/app/main.sh"]
"""


def base_image(store: ImageStore, scratch: str) -> None:
    tarball = os.path.join(scratch, "busybox.tar")
    applets = subprocess.run(["/bin/busybox", "--list"], check=True, capture_output=True, text=True).stdout.split()
    with tarfile.open(tarball, "w") as archive:
        for directory in ("bin", "etc", "proc", "sys", "dev", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        archive.add("/bin/busybox", "bin/busybox")
        for applet in (name for name in applets if name != "busybox"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(info)
    store.import_tarball(tarball, "busybox:base")


def make_context(directory: str, files: int) -> None:
    os.makedirs(os.path.join(directory, "config", "sub"))
    for number in range(files):
        sub = "sub" if number % 2 else ""
        with open(os.path.join(directory, "config", sub, f"file{number}.conf"), "w") as handle:
            handle.write(f"setting{number} = {number * 7}\n" * 20)
    with open(os.path.join(directory, "main.sh"), "w") as handle:
        handle.write('#!/bin/sh\n. /app/lib.sh\ngreet "$VERSION"\n')
    with open(os.path.join(directory, "lib.sh"), "w") as handle:
        handle.write('greet() { echo "hello from version $1"; }\n')
    with open(os.path.join(directory, "Containerfile"), "w") as handle:
        handle.write(CONTAINERFILE)


def listing(store: ImageStore) -> tuple[list[str], list[str]]:
    def names(path: str) -> list[str]:
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    return names(os.path.join(store.directory, "blobs", "sha256")), names(os.path.join(store.directory, "snapshots"))


def timed(runs: int, prepare: Callable[[int], None], once: Callable[[], object]) -> list[float]:
    out = []
    for run in range(runs):
        prepare(run)
        start = time.perf_counter()
        once()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--files", type=int, default=200, help="files in the copied config/ directory")
    args = parser.parse_args()
    parent = f"reconcile-bench-{uuid.uuid4().hex[:8]}"
    scratch = tempfile.mkdtemp(prefix="reconcile-rebuild-")
    try:
        store = ImageStore(os.path.join(scratch, "root"))
        base_image(store, scratch)
        context = os.path.join(scratch, "context")
        make_context(context, args.files)

        def once(**options: object) -> str:
            return builder.build(store, context, tags=["bench:latest"], cgroup_parent=parent, **options).id  # type: ignore[arg-type]

        start = time.perf_counter()
        first_id = once()
        first = time.perf_counter() - start
        store.layers("bench:latest")
        time.sleep(2.1)  # files changed in the last 2 s are hashed on every build (racy); let them settle
        once()  # hashes the context once more, now remembered
        before = listing(store)
        unchanged = timed(args.runs, lambda _: None, once)
        assert once() == first_id and listing(store) == before, "an unchanged rebuild changed the store"

        def touch(_: int) -> None:
            for directory, _dirs, names in os.walk(context):
                for name in names:
                    os.utime(os.path.join(directory, name))

        touched = timed(args.runs, touch, once)

        def change(run: int) -> None:
            with open(os.path.join(context, "lib.sh"), "a") as handle:
                handle.write(f"# change {run}\n")

        changed = timed(args.runs, change, once)
        no_cache = timed(max(1, args.runs // 3), lambda _: None, lambda: once(no_cache=True))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for directory in cgroups.new_cgroup("probe", parent=parent).parent_dirs():
            if os.path.isdir(directory):
                os.rmdir(directory)

    print(f"10-step Containerfile, {args.files} files copied; {args.runs} runs each (seconds)\n")
    print(f"{'':38} {'median':>8} {'min':>8}")
    print(f"{'first build':38} {first:8.3f} {first:8.3f}")
    for name, times in (
        ("unchanged rebuild (target < 0.3)", unchanged),
        ("touched, same content", touched),
        ("lib.sh changed: COPY + 2 RUNs redone", changed),
        ("--no-cache", no_cache),
    ):
        print(f"{name:38} {statistics.median(times):8.3f} {min(times):8.3f}")
    print("\nunchanged rebuilds: same image ID, no new blob or snapshot: checked")


if __name__ == "__main__":
    main()
