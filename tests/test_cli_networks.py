"""Bridge networks as users run them (root, real kernel): containers on one network
reach each other by name, other networks cannot reach them, an internal network has
no way out, published ports answer on 127.0.0.1 and the host's own address, and 20
containers started at once get 20 addresses. Afterwards the host has no link, rule,
lease, netns handle or DNS daemon of ours left. Traffic goes only to loopback, the
host's own address and containers of networks made here."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry_fixtures import free_port
from tests.test_cli_containers import assert_no_mounts_under, busybox_tarball, reconcile
from tests.test_cli_containers import engine as engine  # a fixture, used by name

pytestmark = pytest.mark.requires_root


def our_links() -> set[str]:
    return {name for name in os.listdir("/sys/class/net") if name.startswith(("rc-", "rv"))}


def nft_tables() -> set[str]:
    listing = json.loads(subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, check=True).stdout)
    return {item["table"]["name"] for item in listing["nftables"] if "table" in item}


@pytest.fixture
def net(engine: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """The engine with an image that has nc and nslookup, cleaned of every network after."""
    links_before, tables_before = our_links(), nft_tables()
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    tarball = busybox_tarball(tmp_path / "busybox.tar")
    import tarfile

    with tarfile.open(tarball, "a") as archive:
        for applet in ("nc", "nslookup", "ip", "true", "ls"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
    assert reconcile(engine, "image", "import", str(tarball), "net:1").returncode == 0
    try:
        yield engine
    finally:
        listing = json.loads(reconcile(engine, "ps", "-a", "-o", "json").stdout or "[]")
        for container in listing:
            reconcile(engine, "rm", "-f", container["name"])
        reconcile(engine, "network", "prune")
        reconcile(engine, "network", "rm", "bridge")
        root = Path(engine["RECONCILE_ROOT"])
        assert our_links() == links_before, "links left behind"
        assert nft_tables() == tables_before, "nftables tables left behind"
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forward_before
        assert not (root / "dns.pid").exists()
        if (root / "state.db").exists():
            with sqlite3.connect(root / "state.db") as db:
                assert db.execute("SELECT count(*) FROM leases").fetchone() == (0,), "leases left behind"
        assert_no_mounts_under(root)


def ask(address: str, port: int) -> str:
    """One line from the server; it is a shell loop around ``nc -l``, which listens
    again a moment after each answer, so a refused connection is tried again."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection((address, port), timeout=5) as connection:
                connection.sendall(b"\n")
                return connection.makefile().readline()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def serve(env: dict[str, str], name: str, network: str, reply: str, *extra: str) -> None:
    script = f"while true; do echo {reply} | nc -l -p 80; done"
    started = reconcile(env, "run", "-d", "--name", name, "--network", network, *extra, "net:1", "sh", "-c", script)
    assert started.returncode == 0, started.stderr


def test_containers_reach_each_other_by_name_and_other_networks_cannot(net: dict[str, str]) -> None:
    assert reconcile(net, "network", "create", "front", "--subnet", "10.213.91.0/24").returncode == 0
    assert reconcile(net, "network", "create", "back", "--subnet", "10.213.92.0/24").returncode == 0
    assert reconcile(net, "network", "create", "sealed", "--subnet", "10.213.93.0/24", "--internal").returncode == 0
    serve(net, "web", "front", "hello-web", "--network-alias", "www")
    time.sleep(0.3)
    by_name = reconcile(net, "run", "--rm", "--network", "front", "net:1", "sh", "-c", "echo | nc -w 2 web 80")
    assert (by_name.returncode, by_name.stdout) == (0, "hello-web\n"), by_name.stderr
    by_alias = reconcile(net, "run", "--rm", "--network", "front", "net:1", "sh", "-c", "echo | nc -w 2 www 80")
    assert by_alias.stdout == "hello-web\n"
    address = json.loads(reconcile(net, "network", "inspect", "front").stdout)[0]["Containers"]["web"]["IPv4Address"]
    web_ip = address.split("/")[0]
    other = reconcile(
        net, "run", "--rm", "--network", "back", "net:1", "sh", "-c", f"nslookup web; echo | nc -w 1 {web_ip} 80"
    )
    assert "hello-web" not in other.stdout and web_ip not in other.stdout  # no name, no route through
    routes = reconcile(net, "run", "--rm", "--network", "sealed", "net:1", "ip", "route")
    assert routes.returncode == 0 and "default" not in routes.stdout and "10.213.93.0/24" in routes.stdout
    # the issue's own check: busybox wget to busybox httpd, by container name
    site = Path(net["RECONCILE_ROOT"]).parent / "www"
    site.mkdir()
    (site / "index.html").write_text("<p>served by httpd</p>\n")
    started = reconcile(
        net,
        "run",
        "-d",
        "--name",
        "httpd",
        "--network",
        "front",
        "-v",
        f"{site}:/www:ro",
        "net:1",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    )
    assert started.returncode == 0, started.stderr
    fetched = ""
    for _ in range(50):  # httpd binds a moment after it starts
        fetched = reconcile(
            net,
            "run",
            "--rm",
            "--network",
            "front",
            "net:1",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://httpd/index.html",
        ).stdout
        if fetched:
            break
        time.sleep(0.1)
    assert fetched == "<p>served by httpd</p>\n"
    in_use = reconcile(net, "network", "rm", "front")
    assert in_use.returncode == 1 and "web" in in_use.stderr


def test_published_ports_answer_on_loopback_and_the_hosts_address(net: dict[str, str]) -> None:
    port = free_port()
    assert reconcile(net, "network", "create", "pub", "--subnet", "10.213.94.0/24").returncode == 0
    serve(net, "site", "pub", "published", "-p", f"{port}:80")
    time.sleep(0.3)
    host_address = next(
        a
        for a in subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
        if not a.startswith(("10.213.", "172.17.")) and ":" not in a
    )
    for address in ("127.0.0.1", host_address):
        assert ask(address, port) == "published\n", address
    taken = reconcile(net, "run", "--rm", "--network", "pub", "-p", f"{port}:81", "net:1", "true")
    assert taken.returncode == 125 and "already published by" in taken.stderr and "site" in taken.stderr


def test_twenty_containers_at_once_get_twenty_addresses(net: dict[str, str]) -> None:
    assert reconcile(net, "network", "create", "many", "--subnet", "10.213.95.0/24").returncode == 0

    def start(index: int) -> subprocess.CompletedProcess[str]:
        return reconcile(net, "run", "-d", "--name", f"c{index}", "--network", "many", "net:1", "sleep", "60")

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(start, range(20)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    containers = json.loads(reconcile(net, "network", "inspect", "many").stdout)[0]["Containers"]
    addresses = {entry["IPv4Address"] for entry in containers.values()}
    assert len(containers) == 20 and len(addresses) == 20


def test_the_default_bridge_network_and_bad_flags(net: dict[str, str]) -> None:
    ran = reconcile(net, "run", "--rm", "--network", "bridge", "net:1", "sh", "-c", "ip -4 addr show eth0")
    assert ran.returncode == 0 and "inet " in ran.stdout
    unknown = reconcile(net, "run", "--rm", "--network", "nope", "net:1", "true")
    assert unknown.returncode == 125 and "network 'nope' not found" in unknown.stderr
    mixed = reconcile(net, "run", "--rm", "--network", "host", "--network", "bridge", "net:1", "true")
    assert mixed.returncode == 125 and "cannot be combined" in mixed.stderr
    overlapping = reconcile(net, "network", "create", "clash", "--subnet", "10.213.96.0/24")
    assert overlapping.returncode == 0
    again = reconcile(net, "network", "create", "clash2", "--subnet", "10.213.96.128/25")
    assert again.returncode == 1 and "clash" in again.stderr
