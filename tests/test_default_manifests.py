"""The README's Quick start, end to end (root, real kernel): the default ``manifests/``
directory, with Debian's busybox-static copied in as its Containerfile asks, converges
with one ``--once`` pass (exit 2: the image built with no registry, the seed's page in
the volume, two web replicas, the gateway publishing port 80), serves the page, a
second pass does nothing (exit 0), and a directory holding only its stack.yaml takes
it all away: no container, volume, network, image, bridge, veth, nftables rule or
mount is left.

The stack runs as shipped but for its published port: 8080 becomes a free port (as in
test_examples), since a test must not assume 8080 is free. Its other fixed names do not
clash: the root is the test's own (bridges and veths hash the root, the nftables table
is named after it), the cgroup parent is unique, and the suite runs serially, so its
fixed subnets 10.89.0.0/24 and 10.89.1.0/24 (no other test uses them) are not taken
twice.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.network.manager import table_for
from tests.registry_fixtures import free_port
from tests.test_cli_containers import REPO, assert_no_mounts_under, reconcile
from tests.test_cli_containers import engine as engine  # a fixture, used by name
from tests.test_cli_networks import nft_tables, our_links
from tests.test_examples import fetch

pytestmark = pytest.mark.requires_root

PAGE = "<h1>hello from reconcile</h1>\n"


def test_the_default_manifests_converge_serve_and_go_away(engine: dict[str, str], tmp_path: Path) -> None:
    if not Path("/bin/busybox").exists():
        pytest.skip("needs Debian's busybox-static (/bin/busybox)")
    links_before = our_links()
    root = Path(engine["RECONCILE_ROOT"])
    stack = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", stack, ignore=shutil.ignore_patterns("busybox"))
    shutil.copy2("/bin/busybox", stack / "busybox")  # the Quick start's `cp /bin/busybox manifests/`
    app = stack / "app.yaml"
    assert app.read_text().count('"8080:80"') == 1
    port = free_port()
    app.write_text(app.read_text().replace('"8080:80"', f'"{port}:80"'))
    down = tmp_path / "down"  # the stack's name and nothing else: applying it takes the stack down
    down.mkdir()
    shutil.copy2(stack / "stack.yaml", down / "stack.yaml")
    try:
        assert reconcile(engine, "validate", str(stack)).returncode == 0
        first = reconcile(engine, "--once", str(stack))
        assert first.returncode == 2, first.stderr
        assert first.stdout.startswith("stack demo: 7 created"), first.stdout
        assert fetch(port) == PAGE

        listing = {c["name"]: c for c in json.loads(reconcile(engine, "ps", "-a", "-o", "json").stdout)}
        assert listing["seed"]["status"] == "exited" and listing["seed"]["exit_code"] == 0
        running = sorted(name for name, c in listing.items() if c["status"] == "running")
        assert running == ["gateway", "web-1", "web-2"]
        networks = json.loads(reconcile(engine, "network", "ls", "-o", "json").stdout)
        assert sorted(n["Name"] for n in networks) == ["backend", "frontend"]  # no default bridge made
        up_links = our_links() - links_before
        assert {n["Options"]["bridge"] for n in networks} <= up_links

        second = reconcile(engine, "--once", str(stack), "-o", "json")
        assert second.returncode == 0, second.stderr
        assert {r["outcome"] for r in json.loads(second.stdout)["results"]} == {"unchanged"}
        assert fetch(port) == PAGE
    finally:
        gone = reconcile(engine, "--once", str(down), "--prune-volumes")
    assert gone.returncode == 2 and gone.stdout.startswith("stack demo: 7 deleted"), gone.stdout + gone.stderr
    assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"
    assert json.loads(reconcile(engine, "volume", "ls", "-o", "json").stdout) == []
    assert json.loads(reconcile(engine, "network", "ls", "-o", "json").stdout) == []
    assert json.loads(reconcile(engine, "images", "-o", "json").stdout) == []
    assert not our_links() & up_links, "bridges or veths of the stack left behind"
    table = table_for(str(root))
    if table in nft_tables():
        listing = subprocess.run(["nft", "-j", "list", "table", "inet", table], capture_output=True, check=True)
        assert not [item for item in json.loads(listing.stdout)["nftables"] if "rule" in item], "rules left behind"
    assert_no_mounts_under(root)
    assert not (root / "dns.pid").exists()
