#!/usr/bin/env python3
"""Cost of wiring a container's network namespace to a bridge network; prints a table.

    sudo .venv/bin/python tests/bench/network_attach.py [--count 50] [--podman-runs 10]

Ours, in a warm process: ``links.attach`` of N fresh namespace handles
(``reconciler.runtime.netns.create``) to one bridge (veth pair with the peer made
inside the namespace, address, MAC, MTU, up, default route), then the same plus the
firewall work of a container with one published port (``Firewall.publish``: one
``nft -j list`` and one ``nft -j -f -`` batch), then ``detach``. Peer, when
installed and set up by ../shared/bench/peers.sh: podman's start time with
``--network bridge`` against ``--network none`` (netavark behind it); the
difference is what its network setup and teardown cost per container.

Everything is made under a random prefix (links ``rb…``, table
``reconcile_bench_…``, subnet 10.213.80.0/24) and removed at the end, also on
failure. Not part of the test suite; needs root.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from ipaddress import IPv4Interface, IPv4Network

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from reconciler.network import firewall, links  # noqa: E402
from reconciler.runtime import netns  # noqa: E402

PODMAN_DIR = "/tmp/peer-podman"
SUBNET = IPv4Network("10.213.80.0/24")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(once: Callable[[], object]) -> float:
    start = time.perf_counter()
    once()
    return (time.perf_counter() - start) * 1000


def ours(directory: str, count: int) -> list[tuple[str, list[float]]]:
    prefix = f"rb{secrets.token_hex(2)}"
    bridge = f"{prefix}br"
    gateway = IPv4Interface(f"{SUBNET[1]}/{SUBNET.prefixlen}")
    wall = firewall.Firewall(f"reconcile_bench_{secrets.token_hex(4)}", state_dir=os.path.join(directory, "fw"))
    handles = [os.path.join(directory, f"netns-{i}") for i in range(2 * count)]
    made: list[str] = []
    rows: list[tuple[str, list[float]]] = []
    try:
        for path in handles:
            netns.create(path)
            made.append(path)
        setup = [timed(lambda: links.ensure_bridge(bridge, gateway))]
        setup.append(timed(lambda: wall.ensure_network(bridge, SUBNET, internal=False)))
        rows.append(("ensure_bridge + Firewall.ensure_network (once per network)", [sum(setup)]))

        def attach(i: int) -> links.Endpoint:
            return links.attach(
                handles[i],
                bridge=bridge,
                host_ifname=f"{prefix}v{i}",
                ifname="eth0",
                address=IPv4Interface(f"{SUBNET[2 + i]}/{SUBNET.prefixlen}"),
                gateway=gateway.ip,
                mtu=1500,
            )

        def attach_and_publish(i: int) -> None:
            endpoint = attach(i)
            wall.publish(
                f"bench{i}",
                host_ip=None,
                host_port=20000 + i,
                container_ip=endpoint.address.ip,
                container_port=80,
            )

        plain, ported = range(count), range(count, 2 * count)
        rows.append((f"links.attach, {count} namespaces on one bridge", [timed(partial(attach, i)) for i in plain]))
        with_port = [timed(partial(attach_and_publish, i)) for i in ported]
        rows.append(("links.attach + Firewall.publish of one port", with_port))
        rows.append(("Firewall.unpublish", [timed(partial(wall.unpublish, f"bench{i}")) for i in ported]))
        rows.append(("links.detach", [timed(partial(links.detach, f"{prefix}v{i}")) for i in range(2 * count)]))
        return rows
    finally:
        for name in links.list_links(prefix):
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
        wall.remove_all()
        for path in made:
            netns.remove(path)
        if links.list_links(prefix):
            raise SystemExit(f"links with prefix {prefix} are left behind")


def manager_attach(directory: str, count: int) -> list[tuple[str, list[float]]]:
    """The whole attach as ``run --network`` does it: IPAM lease (SQLite), veth,
    address, routes, endpoint row (what the DNS answers from); and its detach."""
    from reconciler.network.manager import Attachment, NetworkManager

    root = os.path.join(directory, "manager-root")
    manager = NetworkManager(root)
    handles = []
    try:
        manager.create("benchnet", subnet="10.213.81.0/24")
        for i in range(count):
            handles.append(os.path.join(directory, f"m{i}.netns"))
            netns.create(handles[-1])
        attach = [timed(partial(manager.attach, f"c{i}", handles[i], [Attachment("benchnet")])) for i in range(count)]
        detach = [timed(partial(manager.detach, f"c{i}")) for i in range(count)]
        return [
            (f"NetworkManager.attach (lease + veth + address + route + DNS row), {count} containers", attach),
            ("NetworkManager.detach", detach),
        ]
    finally:
        for i in range(count):
            manager.detach(f"c{i}")
        manager.remove("benchnet")
        manager.close()
        for path in handles:
            netns.remove(path)


def podman(runs: int) -> list[tuple[str, list[float]]]:
    """podman run --rm with and without its bridge network, when peers.sh set it up."""
    if not shutil.which("podman") or not os.path.exists(os.path.join(PODMAN_DIR, "containers.conf")):
        return []
    env = {
        **os.environ,
        "CONTAINERS_CONF": os.path.join(PODMAN_DIR, "containers.conf"),
        "CONTAINERS_STORAGE_CONF": os.path.join(PODMAN_DIR, "storage.conf"),
    }
    rows = []
    for network in ("none", "bridge"):
        argv = ["podman", "run", "--rm", "--network", network, "busybox:local", "true"]
        subprocess.run(argv, env=env, check=True, capture_output=True)  # warm-up

        def once(argv: list[str] = argv) -> None:
            subprocess.run(argv, env=env, check=True, capture_output=True)

        rows.append((f"podman run --rm --network {network} busybox true", [timed(once) for _ in range(runs)]))
    none, bridge = rows[0][1], rows[1][1]
    rows.append(
        ("podman: bridge minus none (network setup + teardown)", [statistics.median(bridge) - statistics.median(none)])
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--podman-runs", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    if not 1 <= args.count <= 120:
        raise SystemExit("--count: 1-120 (two namespaces each, in one /24)")
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as directory:
        rows = ours(directory, args.count)
        rows += manager_attach(directory, args.count)
    rows += podman(args.podman_runs)
    print("| what | median | p95 |")
    print("|---|---:|---:|")
    for label, values in rows:
        print(f"| {label} | {statistics.median(values):.1f} ms | {percentile(values, 0.95):.1f} ms |")


if __name__ == "__main__":
    main()
