"""`reconcile --once DIR` end to end (root, real kernel): a stack of an image, a
network, a volume and two containers converges (exit 2), a second pass does nothing
(exit 0), --dry-run touches nothing, a changed container is recreated with its
volume's data kept, a container killed by hand is healed, what the manifests drop
is pruned, and taking the whole stack down leaves the host clean."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from reconciler.network import links
from reconciler.network.manager import table_for
from reconciler.runtime.state import process_start
from tests.registry_fixtures import free_port
from tests.test_cli_containers import assert_no_mounts_under, busybox_tarball, reconcile
from tests.test_cli_containers import engine as engine  # a fixture, used by name
from tests.test_cli_networks import ask, our_links

pytestmark = pytest.mark.requires_root


def write_stack(directory: Path, tarball: Path, port: int, *, worker: str = "3600", with_worker: bool = True) -> None:
    directory.mkdir(exist_ok=True)
    shutil.copy(tarball, directory / "base.tar")
    (directory / "stack.yaml").write_text("name: shop\n")
    objects = f"""
apiVersion: reconcile/v1
kind: Image
metadata: {{name: base}}
spec: {{import: {{path: base.tar}}, tag: "shop-base:1"}}
---
apiVersion: reconcile/v1
kind: Network
metadata: {{name: shopnet}}
spec: {{subnet: 10.213.101.0/24}}
---
apiVersion: reconcile/v1
kind: Volume
metadata: {{name: shopdata}}
---
apiVersion: reconcile/v1
kind: Container
metadata: {{name: shopweb}}
spec:
  image: base
  init: true
  stop_grace_period: 1s
  command: ["sh", "-c", "test -f /data/first || date > /data/first; while true; do cat /data/first | nc -l -p 80; done"]
  networks: [shopnet]
  ports: ["{port}:80"]
  volumes: ["shopdata:/data"]
"""
    if with_worker:
        objects += f"""---
apiVersion: reconcile/v1
kind: Container
metadata: {{name: shopworker}}
spec:
  image: base
  init: true
  stop_grace_period: 1s
  command: ["sleep", "{worker}"]
  networks: [shopnet]
"""
    (directory / "objects.yaml").write_text(objects)


def rule_handle(table: str, comment: str) -> str:
    """The handle of the first rule of ``table``'s prerouting chain with ``comment``."""
    listing = subprocess.run(
        ["nft", "-j", "list", "chain", "inet", table, "prerouting"], capture_output=True, text=True
    )
    rules = [item["rule"] for item in json.loads(listing.stdout)["nftables"] if "rule" in item]
    return str(next(rule["handle"] for rule in rules if rule.get("comment") == comment))


def once(env: dict[str, str], directory: Path, *flags: str) -> tuple[int, dict[str, str]]:
    result = reconcile(env, "--once", str(directory), "-o", "json", *flags)
    if not result.stdout.strip():
        return result.returncode, {"error": result.stderr}
    report = json.loads(result.stdout)
    return result.returncode, {r["key"]: r["outcome"] for r in report["results"]}


def test_a_stack_converges_heals_and_goes_away(engine: dict[str, str], tmp_path: Path) -> None:
    links_before = our_links()
    root = Path(engine["RECONCILE_ROOT"])
    tarball = busybox_tarball(tmp_path / "busybox.tar")
    with tarfile.open(tarball, "a") as archive:
        for applet in ("nc", "date", "test"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
    port = free_port()
    stack = tmp_path / "stack"
    write_stack(stack, tarball, port)
    # the manifests as a git checkout: status shows the commit each object came from
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v1"]):
        subprocess.run(["git", *command], cwd=stack, check=True, capture_output=True)
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=stack, capture_output=True, text=True).stdout.strip()
    try:
        code, _ = once(engine, stack, "--dry-run")
        assert code == 2 and reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"  # nothing touched
        code, results = once(engine, stack)
        assert code == 2 and set(results.values()) == {"created"}, results
        first = ask("127.0.0.1", port)
        assert first.strip()
        code, results = once(engine, stack)
        assert code == 0 and set(results.values()) == {"unchanged"}, results
        status = {row["key"]: row for row in json.loads(reconcile(engine, "status", "-o", "json").stdout)}
        assert status["container/shopweb"]["actual"] == "running" and status["volume/shopdata"]["actual"] == "present"
        assert status["container/shopweb"]["revision"] == revision and status["image/base"]["digest"]
        logged = [json.loads(line) for line in reconcile(engine, "events", "-o", "json").stdout.splitlines()]
        assert {(e["key"], e["outcome"]) for e in logged} >= {("container/shopweb", "created")}

        # drift: a container killed by hand comes back on the next pass
        assert reconcile(engine, "kill", "shopworker").returncode == 0
        time.sleep(0.3)
        code, results = once(engine, stack)
        assert code == 2 and results["container/shopworker"] == "created", results

        # a changed spec: dry-run changes nothing, the pass recreates; the volume keeps its data
        write_stack(stack, tarball, port, worker="3601")
        code, results = once(engine, stack, "--dry-run")
        running = json.loads(reconcile(engine, "inspect", "shopworker").stdout)[0]["Args"]
        assert code == 2 and running[-1] == "3600"
        code, results = once(engine, stack)
        assert (
            code == 2 and results["container/shopworker"] == "recreated" and results["container/shopweb"] == "unchanged"
        )
        assert ask("127.0.0.1", port) == first  # the web container and its volume's first line are untouched

        # dropped from the manifests: pruned
        write_stack(stack, tarball, port, with_worker=False)
        code, results = once(engine, stack)
        assert code == 2 and results["container/shopworker"] == "deleted", results
        assert "shopworker" not in reconcile(engine, "ps", "-a").stdout
    finally:
        for name in ("objects.yaml", "base.tar"):
            (stack / name).unlink(missing_ok=True)
        code, results = once(engine, stack, "--prune-volumes")  # a stack.yaml alone: the stack goes away
    assert code == 2 and set(results.values()) == {"deleted"}, results
    assert our_links() == links_before
    assert json.loads(reconcile(engine, "volume", "ls", "-o", "json").stdout) == []
    assert reconcile(engine, "network", "ls", "-o", "json").stdout.strip() == "[]"
    assert_no_mounts_under(root)
    assert not (root / "dns.pid").exists()


def test_invalid_manifests_a_held_lock_and_a_missing_image_fail_clearly(engine: dict[str, str], tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "stack.yaml").write_text("name: bad\n")
    (stack / "objects.yaml").write_text("apiVersion: reconcile/v1\nkind: Container\nmetadata: {name: x}\nspec: {}\n")
    result = reconcile(engine, "--once", str(stack))
    assert result.returncode == 1 and "nothing applied" in result.stderr
    assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"

    (stack / "objects.yaml").write_text(
        "apiVersion: reconcile/v1\nkind: Service\nmetadata: {name: api}\n"
        "spec: {replicas: 1, template: {image: 'busybox:1', command: [sleep, '1']}}\n"
    )
    root = Path(engine["RECONCILE_ROOT"])
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "reconcile.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = reconcile(engine, "--once", str(stack), "--no-wait")
        assert busy.returncode == 1 and "reconcile.lock" in busy.stderr
    code, results = once(engine, stack)
    assert code == 1 and results == {"service/api": "failed"}
    status = json.loads(reconcile(engine, "status", "-o", "json").stdout)
    assert [(r["key"], r["actual"]) for r in status] == [("service/api", "missing")]
    assert "no such image: busybox:1" in status[0]["last_error"]
    failed = reconcile(engine, "--once", str(stack))
    assert "no such image: busybox:1" in failed.stderr


def test_drift_policies_warn_and_ignore_leave_a_changed_object_alone(engine: dict[str, str], tmp_path: Path) -> None:
    stack = tmp_path / "drift"
    stack.mkdir()
    busybox_tarball(stack / "base.tar")
    (stack / "stack.yaml").write_text("name: drift\n")
    objects = ""
    for name, policy in (("watched", "warn"), ("left", "ignore"), ("healed", "heal")):
        objects += (
            f"---\napiVersion: reconcile/v1\nkind: Container\nmetadata: {{name: {name}, drift: {policy}}}\n"
            "spec: {image: base, init: true, network_mode: none, stop_grace_period: 1s, command: [sleep, '600']}\n"
        )
    (stack / "objects.yaml").write_text(
        'apiVersion: reconcile/v1\nkind: Image\nmetadata: {name: base}\nspec: {import: {path: base.tar}, tag: "d:1"}\n'
        + objects
    )
    try:
        assert reconcile(engine, "--once", str(stack)).returncode == 2
        for name in ("watched", "left", "healed"):
            assert reconcile(engine, "kill", name).returncode == 0
        time.sleep(0.3)
        code, results = once(engine, stack)
        assert code == 2 and results["container/healed"] == "created"
        assert results["container/watched"] == results["container/left"] == "unchanged"
        logged = [json.loads(line) for line in reconcile(engine, "events", "-o", "json").stdout.splitlines()]
        assert [e["key"] for e in logged if e["event"] == "drift"] == ["container/watched"]
    finally:
        (stack / "objects.yaml").unlink()
        reconcile(engine, "--once", str(stack))
    assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"


def test_a_no_op_pass_on_a_converged_host_is_answered_from_its_record(engine: dict[str, str], tmp_path: Path) -> None:
    """The shortcut of ``control.converged``, end to end: taken only when nothing a
    pass depends on changed, and any change (a manifest, an env file, a new file, a
    container killed with its monitor, other arguments) gets a full pass that acts."""
    links_before = our_links()
    root = Path(engine["RECONCILE_ROOT"])
    port = free_port()
    stack = tmp_path / "quick"
    stack.mkdir()
    busybox_tarball(stack / "base.tar")
    (stack / "stack.yaml").write_text("name: quick\n")
    (stack / "app.env").write_text("MODE=one\n")
    container = (
        "spec: {{image: base, init: true, network_mode: none, stop_grace_period: 1s, {extra}command: [sleep, '600']}}\n"
    )
    (stack / "objects.yaml").write_text(
        'apiVersion: reconcile/v1\nkind: Image\nmetadata: {name: base}\nspec: {import: {path: base.tar}, tag: "q:1"}\n'
        # qa on a bridge: the DNS daemon then holds the state database open too
        "---\napiVersion: reconcile/v1\nkind: Network\nmetadata: {name: quicknet}\nspec: {subnet: 10.213.102.0/24}\n"
        "---\napiVersion: reconcile/v1\nkind: Container\nmetadata: {name: qa}\n"
        + container.format(extra=f"env_file: [app.env], networks: [quicknet], ports: ['{port}:80'], ").replace(
            "network_mode: none, ", ""
        )
        + "---\napiVersion: reconcile/v1\nkind: Container\nmetadata: {name: qb}\n"
        + container.format(extra="")
    )

    healed: list[list[str]] = []

    def report(*flags: str, env: dict[str, str] = engine) -> tuple[int, bool, dict[str, str]]:
        result = reconcile(env, "--once", str(stack), "-o", "json", *flags)
        document = json.loads(result.stdout)
        healed.append(document.get("healed", []))
        return result.returncode, document["shortcut"], {r["key"]: r["outcome"] for r in document["results"]}

    def state(name: str) -> dict[str, int]:
        return dict(json.loads((root / "containers" / name / "state.json").read_text()))

    try:
        assert report()[:2] == (2, False)
        code, shortcut, first = report()  # the first no-op is a full pass, and records itself
        assert (code, shortcut) == (0, False) and set(first.values()) == {"unchanged"}
        assert report() == (0, True, first)
        assert report("--dry-run")[1] is False
        assert report(env={**engine, "RECONCILE_NO_SHORTCUT": "1"})[:2] == (0, False)
        assert report("--no-prune")[:2] == (0, False)  # recorded under other arguments

        (stack / "app.env").write_text("MODE=two\n")  # outside the manifests, read by them
        code, shortcut, results = report()
        assert (code, shortcut) == (2, False)
        assert (results["container/qa"], results["container/qb"]) == ("recreated", "unchanged")
        assert report()[:2] == (0, False) and report()[:2] == (0, True)

        # killed with its monitor: its state file still says running; /proc does not
        killed = state("qb")
        for pid in (killed["monitor_pid"], killed["pid"]):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        code, shortcut, results = report()
        assert (code, shortcut, results["container/qb"]) == (2, False, "created")
        assert state("qb")["pid"] != killed["pid"]
        assert report()[:2] == (0, False) and report()[:2] == (0, True)

        # the network's bridge deleted by hand: made again, and qa's veth is its port again
        bridge = links.bridge_name(f"{os.path.abspath(root)}\0quicknet")
        ports = sorted(os.listdir(f"/sys/class/net/{bridge}/brif"))
        assert len(ports) == 1
        subprocess.run(["ip", "link", "del", bridge], check=True)
        code, shortcut, results = report()
        assert (code, shortcut, results["network/quicknet"]) == (2, False, "created")
        assert results["container/qa"] == "unchanged"
        assert sorted(os.listdir(f"/sys/class/net/{bridge}/brif")) == ports
        # and the embedded DNS answers on the gateway made anew
        lookup = reconcile(engine, "exec", "qa", "busybox", "nslookup", "qa.quicknet")
        assert "10.213.102." in lookup.stdout, lookup.stdout + lookup.stderr
        assert report()[:2] == (0, False) and report()[:2] == (0, True)

        # the embedded DNS daemon killed: started again
        dns_pid = int((root / "dns.pid").read_text())
        os.kill(dns_pid, signal.SIGKILL)
        time.sleep(0.3)
        code, shortcut, results = report()
        assert (code, shortcut, set(results.values())) == (2, False, {"unchanged"})
        restarted = int((root / "dns.pid").read_text())
        assert restarted != dns_pid and process_start(restarted)
        logged = [json.loads(line) for line in reconcile(engine, "events", "-o", "json").stdout.splitlines()]
        assert [e["key"] for e in logged if e["event"] == "healed"] == ["dns"]
        assert report()[:2] == (0, False) and report()[:2] == (0, True)

        # our nftables table dropped (a firewall reload): the network's rules and qa's
        # published port put back
        table = table_for(str(root))

        def comments() -> set[str]:
            listing = subprocess.run(["nft", "-j", "list", "table", "inet", table], capture_output=True, text=True)
            items = json.loads(listing.stdout)["nftables"] if listing.returncode == 0 else []
            return {item["rule"].get("comment", "") for item in items if "rule" in item}

        rules = comments()
        assert "ctr.qa" in rules and f"net:{bridge}:masquerade" in rules
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)
        code, shortcut, results = report()
        assert (code, shortcut, set(results.values())) == (2, False, {"unchanged"})
        assert healed[-1] == ["network/quicknet", "container/qa"] and comments() == rules
        logged = [json.loads(line) for line in reconcile(engine, "events", "-o", "json").stdout.splitlines()]
        assert [e["key"] for e in logged if e["event"] == "healed"] == ["dns", "network/quicknet", "container/qa"]
        assert report()[:2] == (0, False) and report()[:2] == (0, True)
        subprocess.run(["nft", "delete", "rule", "inet", table, "prerouting", "handle", rule_handle(table, "ctr.qa")])
        assert report()[:2] == (2, False) and "ctr.qa" in comments()  # one rule deleted by hand

        # forwarding turned off by something else (sysctl --system): turned on again
        Path("/proc/sys/net/ipv4/ip_forward").write_text("0\n")
        code, shortcut, _ = report()
        assert (code, shortcut) == (2, False) and Path("/proc/sys/net/ipv4/ip_forward").read_text() == "1\n"
        assert report()[:2] == (0, False) and report()[:2] == (0, True)

        # healing that fails (no nft on PATH) is reported and fails the pass; nothing else changes
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)
        no_nft = {**engine, "PATH": "/nonexistent", "RECONCILE_NO_SHORTCUT": "1"}
        result = reconcile(no_nft, "--once", str(stack))
        assert result.returncode == 1 and "could not heal" in result.stderr, result.stderr
        assert report()[:2] == (2, False) and comments() == rules

        (stack / "more.yaml").write_text(
            "apiVersion: reconcile/v1\nkind: Container\nmetadata: {name: qc}\n" + container.format(extra="")
        )
        code, shortcut, results = report()
        assert (code, shortcut, results["container/qc"]) == (2, False, "created")
    finally:
        for name in ("objects.yaml", "more.yaml"):
            (stack / name).unlink(missing_ok=True)
        reconcile(engine, "--once", str(stack))
    assert reconcile(engine, "ps", "-a", "-o", "json").stdout.strip() == "[]"
    assert our_links() == links_before and not (root / "dns.pid").exists()
