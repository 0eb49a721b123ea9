"""The runnable example stack, end to end (root, real kernel): examples/web (three
httpd replicas behind a published port serving what a one-shot container wrote into
a named volume, on a network) converges with --once (exit 2), serves the page, a
second --once does nothing (exit 0), --dry-run touches nothing, the published port
comes back after our nftables table is dropped, and it goes away."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from reconciler.network.manager import table_for
from tests.registry_fixtures import free_port
from tests.test_cli_containers import REPO, assert_no_mounts_under, reconcile
from tests.test_cli_containers import engine as engine  # a fixture, used by name

pytestmark = pytest.mark.requires_root


def fetch(port: int) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_web_example_converges_serves_and_goes_away(engine: dict[str, str], tmp_path: Path) -> None:
    stack = tmp_path / "web"
    shutil.copytree(REPO / "examples" / "web", stack, ignore=shutil.ignore_patterns("rootfs.tar"))
    subprocess.run([str(stack / "make-rootfs.sh")], check=True, capture_output=True)
    port = free_port()  # the example publishes 8080; a test must not assume it is free
    manifest = stack / "web.yaml"
    manifest.write_text(manifest.read_text().replace('"8080:80"', f'"{port}:80"'))
    try:
        dry = reconcile(engine, "--once", str(stack), "--dry-run")
        assert dry.returncode == 2 and "5 to create" in dry.stdout
        assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"
        first = reconcile(engine, "--once", str(stack))
        assert first.returncode == 2, first.stderr
        assert fetch(port) == "<h1>hello from reconcile</h1>\n"
        listing = {c["name"]: c for c in json.loads(reconcile(engine, "ps", "-a", "-o", "json").stdout)}
        assert listing["publish-site"]["status"] == "exited" and listing["publish-site"]["exit_code"] == 0
        assert sorted(n for n, c in listing.items() if c["status"] == "running") == ["web-1", "web-2", "web-3"]
        second = reconcile(engine, "--once", str(stack), "-o", "json")
        assert second.returncode == 0, second.stderr
        assert {r["outcome"] for r in json.loads(second.stdout)["results"]} == {"unchanged"}

        # a firewall reload drops our table: the next pass puts the service's port back
        subprocess.run(["nft", "delete", "table", "inet", table_for(engine["RECONCILE_ROOT"])], check=True)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3)
        healed = reconcile(engine, "--once", str(stack))
        assert healed.returncode == 2 and "service/web: firewall rules put back" in healed.stderr, healed.stderr
        assert fetch(port) == "<h1>hello from reconcile</h1>\n"
    finally:
        manifest.unlink()
        reconcile(engine, "--once", str(stack), "--prune-volumes")
    assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"
    assert json.loads(reconcile(engine, "volume", "ls", "-o", "json").stdout) == []
    assert_no_mounts_under(Path(engine["RECONCILE_ROOT"]))
