#!/usr/bin/env python3
"""Pull throughput from a loopback registry: our ``pull`` against ``skopeo copy``;
prints a table.

    .venv/bin/python tests/bench/pull.py [--runs 5] [--mib 100] [--layers 5]

Starts Debian's ``docker-registry`` on 127.0.0.1, pushes (with our ``push``) an
image of ``--layers`` gzip layers of incompressible data, ``--mib`` MiB in all,
then times each run into an empty store or directory:

- ``ours, blobs``: ``pull(..., unpack=False)`` in this (warm) process: the
  download, digest and size checks, commit and tag; what skopeo does;
- ``ours, blobs, new process``: the same in a fresh interpreter, so start-up and
  imports count, as skopeo's do;
- ``ours, + unpack``: a full pull that also unpacks every layer to a snapshot;
- ``skopeo``: ``skopeo copy --src-tls-verify=false docker://… oci:DIR:tag``.

Not part of the test suite (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)

from reconciler.images.distribution import RegistryConfig, pull, push  # noqa: E402
from reconciler.images.store import ImageStore  # noqa: E402
from tests.registry_fixtures import docker_registry, file_tar, make_image  # noqa: E402

CONFIG = RegistryConfig(docker_config="/nonexistent/config.json")


def build_image(store: ImageStore, reference: str, *, mib: int, layers: int) -> None:
    """``layers`` layers of random bytes (gzip cannot shrink them) in a few files each."""
    per_layer = (mib << 20) // layers
    noise = random.Random(42)
    tars = []
    for index in range(layers):
        files = {f"data/{index}/{n}.bin": noise.randbytes(per_layer // 4) for n in range(4)}
        tars.append(file_tar(files))
    make_image(store, reference, tars, compress=True)


def time_runs(runs: int, prepare: Callable[[str], None], once: Callable[[str], None], scratch: str) -> list[float]:
    """Seconds per run; each run gets an empty directory made (untimed) by ``prepare``."""
    out = []
    for run in range(runs + 1):  # the first run warms caches and is dropped
        directory = os.path.join(scratch, f"run-{run}")
        prepare(directory)
        start = time.perf_counter()
        once(directory)
        elapsed = time.perf_counter() - start
        shutil.rmtree(directory)
        if run:
            out.append(elapsed)
    return out


def ours(reference: str, *, unpack: bool) -> Callable[[str], None]:
    def once(directory: str) -> None:
        pull(ImageStore(directory), reference, config=CONFIG, unpack=unpack)

    return once


def ours_process(reference: str) -> Callable[[str], None]:
    code = (
        "import sys\n"
        "from reconciler.images.distribution import RegistryConfig, pull\n"
        "from reconciler.images.store import ImageStore\n"
        "pull(ImageStore(sys.argv[1]), sys.argv[2], config=RegistryConfig(docker_config='/nonexistent'),"
        " unpack=False)\n"
    )

    def once(directory: str) -> None:
        subprocess.run([sys.executable, "-c", code, directory, reference], check=True, cwd=REPO)

    return once


def skopeo(reference: str) -> Callable[[str], None]:
    def once(directory: str) -> None:
        subprocess.run(
            ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{reference}", f"oci:{directory}:bench"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--layers", type=int, default=5)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="reconcile-bench-pull-") as scratch,
        docker_registry(os.path.join(scratch, "registry")) as registry,
    ):
        reference = f"{registry.host}/bench/big:1"
        source = ImageStore(os.path.join(scratch, "source"))
        build_image(source, reference, mib=args.mib, layers=args.layers)
        push(source, reference, config=CONFIG)
        size = sum(layer.size for layer in source.image(reference).layers)
        print(f"image: {args.layers} gzip layers, {size / (1 << 20):.1f} MiB; {args.runs} runs each\n")

        def empty(directory: str) -> None:
            os.makedirs(directory)

        def absent(directory: str) -> None:
            pass

        rows: list[tuple[str, list[float]]] = [
            ("ours, blobs", time_runs(args.runs, empty, ours(reference, unpack=False), scratch)),
            ("ours, blobs, new process", time_runs(args.runs, empty, ours_process(reference), scratch)),
            ("ours, + unpack", time_runs(args.runs, empty, ours(reference, unpack=True), scratch)),
        ]
        if shutil.which("skopeo"):
            rows.append(("skopeo copy", time_runs(args.runs, absent, skopeo(reference), scratch)))
    peer = dict(rows).get("skopeo copy")
    print(f"{'':26} {'median s':>9} {'min s':>7} {'MiB/s':>7} {'vs skopeo':>10}")
    for name, times in rows:
        median = statistics.median(times)
        ratio = f"{median / statistics.median(peer):.2f}x" if peer else "-"
        print(f"{name:26} {median:9.3f} {min(times):7.3f} {size / (1 << 20) / median:7.0f} {ratio:>10}")
    print("\n(vs skopeo: our median time over skopeo's; below 1.00x is faster)")


if __name__ == "__main__":
    main()
