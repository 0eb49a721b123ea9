"""The engine's stacks, system and events groups, in-process, and stacks through an
agent: validate reports every error under the caller's path (``display_root``, as
an uploaded copy must), plan gives the CLI's ``plan -o json`` document, an invalid
or dry apply touches nothing, system info/version/df/prune, and the event log read
and followed. Through an agent, a manifests directory travels as a tar, errors read
as locally, and a second ``--once`` over unchanged manifests is a no-op."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from reconciler.cli.main import main
from reconciler.control import events as event_log
from reconciler.engine import errors
from reconciler.engine.core import Engine
from reconciler.engine.system import disk_usage
from reconciler.engine.wiring import EngineConfig
from tests.agent_fixtures import Agent, make_agent
from tests.agent_fixtures import agents as agents  # a fixture, used by name
from tests.test_cli_containers import busybox_tarball

if TYPE_CHECKING:
    from reconciler.engine.models.stacks import PlanDocument, PlanResult

REPO = Path(__file__).resolve().parent.parent

BROKEN = """\
apiVersion: reconcile/v1
kind: Container
metadata: {name: web}
spec:
  image: busybox:1.36
  ports: ["8080:80", "bogus"]
"""

MISSING_TARBALL = """\
apiVersion: reconcile/v1
kind: Image
metadata: {name: base}
spec: {import: {path: missing.tar}, tag: "stk-base:1"}
"""


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = Engine(EngineConfig(root=str(tmp_path / "root"), cgroup_parent=f"stktest-{uuid.uuid4().hex[:8]}"))
    try:
        yield made
    finally:
        made.close()


def planned(result: PlanResult) -> PlanDocument:
    """The plan of a ``plan`` answer (not validate's report)."""
    assert "format_version" in result, result
    return cast("PlanDocument", result)


def broken(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "a.yaml").write_text(BROKEN)
    (directory / "b.yaml").write_text("apiVersion: reconcile/v1\nkind: Netwrok\nmetadata: {name: n}\n")
    (directory / "c.yaml").write_text(MISSING_TARBALL)
    return directory


# --- validate ------------------------------------------------------------------


def test_validate_reports_every_error_where_the_files_are(engine: Engine, tmp_path: Path) -> None:
    directory = broken(tmp_path / "stack")
    report = engine.stacks.validate(str(directory))
    assert report["valid"] is False
    texts = [error["text"] for error in report["errors"]]
    assert texts[0].startswith(f"{directory}/a.yaml:6:") and "container/web: spec.ports[1]: invalid port" in texts[0]
    assert f"{directory}/b.yaml:2:1: kind: unknown kind 'Netwrok'; did you mean 'Network'?" in texts
    assert [error["file"] for error in report["errors"]] == [
        f"{directory}/a.yaml",
        f"{directory}/b.yaml",
        f"{directory}/c.yaml",
    ]


def test_validate_names_files_from_the_display_root(engine: Engine, tmp_path: Path) -> None:
    """An uploaded copy extracted to a temporary directory reports the client's paths."""
    directory = broken(tmp_path / "upload-1234" / "tree")
    report = engine.stacks.validate(str(directory), display_root="manifests")
    assert str(tmp_path) not in json.dumps(report)
    first = report["errors"][0]
    assert first["file"] == "manifests/a.yaml" and first["line"] == 6
    assert first["text"].startswith("manifests/a.yaml:6:") and first["object"] == "container/web"
    assert first["field"] == "spec.ports[1]"
    texts = [error["text"] for error in report["errors"]]
    assert "manifests/b.yaml:2:1: kind: unknown kind 'Netwrok'; did you mean 'Network'?" in texts
    # paths inside messages too
    (missing,) = [error for error in report["errors"] if error["file"] == "manifests/c.yaml"]
    assert missing["message"] == "tarball manifests/missing.tar does not exist"


def test_validate_a_valid_directory(engine: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "ok"
    directory.mkdir()
    (directory / "stack.yaml").write_text("name: shop\n")
    (directory / "net.yaml").write_text("apiVersion: reconcile/v1\nkind: Network\nmetadata: {name: front}\n")
    assert engine.stacks.validate(str(directory)) == {"valid": True, "stack": "shop", "objects": 1, "errors": []}


def test_validate_a_missing_directory(engine: Engine, tmp_path: Path) -> None:
    report = engine.stacks.validate(str(tmp_path / "nowhere"))
    assert report["valid"] is False
    assert [e["message"] for e in report["errors"]] == ["manifests directory does not exist"]


# --- plan ------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["examples/webapp", "manifests"])
def test_plan_of_the_examples_is_the_cli_document(
    engine: Engine, example: str, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = str(REPO / example)
    document = planned(engine.stacks.plan(directory))
    assert main(["plan", directory, "-o", "json"]) == 0
    assert document == json.loads(capsys.readouterr().out)
    assert document["format_version"] == 1 and document["actions"]
    assert {action["op"] for action in document["actions"]} == {"create"}  # against an empty host


def test_plan_of_an_invalid_example_is_validates_report(engine: Engine) -> None:
    result = engine.stacks.plan(str(REPO / "examples" / "broken"), display_root="examples/broken")
    assert "format_version" not in result
    assert result["valid"] is False
    assert all(error["text"].startswith("examples/broken/app.yaml:") for error in result["errors"])


def test_plan_against_observed_state(engine: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "ok"
    directory.mkdir()
    (directory / "net.yaml").write_text("apiVersion: reconcile/v1\nkind: Network\nmetadata: {name: front}\n")
    observed = {"objects": [{"kind": "Network", "name": "old", "owner": "ok"}]}
    document = planned(engine.stacks.plan(str(directory), observed=json.dumps(observed)))
    assert {a["key"]: a["op"] for a in document["actions"]} == {"network/front": "create", "network/old": "delete"}
    kept = engine.stacks.plan(str(directory), observed=json.dumps(observed), prune=False)
    assert {a["key"]: a["op"] for a in planned(kept)["actions"]} == {"network/front": "create", "network/old": "noop"}
    with pytest.raises(errors.InvalidRequest, match="cannot read observed state"):
        engine.stacks.plan(str(directory), observed="{")


# --- apply, down, status -------------------------------------------------------------


def test_an_invalid_apply_touches_nothing_and_logs_the_callers_path(engine: Engine, tmp_path: Path) -> None:
    directory = broken(tmp_path / "upload-1" / "tree")
    heard: list[dict[str, Any]] = []
    report = engine.stacks.apply(str(directory), display_root="manifests", progress=heard.append)
    assert report["exit_code"] == 1 and report["valid"] is False and heard == []
    assert all(error["text"].startswith("manifests/") for error in report["errors"])
    (logged,) = engine.events.list()
    assert logged["event"] == "invalid" and logged["directory"] == "manifests"
    root = Path(engine.config.root)
    assert not (root / "state.db").exists() and not (root / "containers").exists()
    assert os.listdir(root / "uploads") == []  # the stable path to the upload is gone with it


@pytest.mark.requires_root
def test_a_dry_run_is_the_plan_against_this_host(engine: Engine) -> None:
    directory = str(REPO / "examples" / "webapp")
    report = engine.stacks.apply(directory, dry_run=True)
    assert report["exit_code"] == 2 and report["dry_run"] is True and report["results"] == []
    assert report["shortcut"] is False and report["healed"] == []
    assert report["plan"] == engine.stacks.plan(directory)  # an empty host: nothing observed
    assert engine.wiring.runtime().containers() == [] and engine.stacks.status() == []


@pytest.mark.requires_root
def test_down_of_a_stack_with_nothing_left(engine: Engine) -> None:
    report = engine.stacks.down("stk-nothing")
    assert report["exit_code"] == 0 and report["stack"] == "stk-nothing" and report["results"] == []
    assert os.listdir(Path(engine.config.root) / "uploads") == []


def test_down_of_a_name_no_stack_can_have(engine: Engine) -> None:
    report = engine.stacks.down("Not a name!")
    assert report["exit_code"] == 1 and report["valid"] is False
    assert report["errors"][0]["text"].startswith("<down Not a name!>/stack.yaml:")


def test_status_lists_what_failed_before_it_was_ever_applied(engine: Engine) -> None:
    assert engine.stacks.status() == []
    event_log.append(engine.config.root, "object", key="container/stk-x", outcome="failed", reason="boom", stack="s")
    (row,) = engine.stacks.status()
    assert row["key"] == "container/stk-x" and row["actual"] == "missing" and row["last_error"] == "boom"
    assert engine.stacks.status(stack="other") == []


# --- system ------------------------------------------------------------------------


def test_version_and_info(engine: Engine) -> None:
    from reconciler import __version__

    version = engine.system.version()
    assert version["version"] == __version__ and version["api_version"] == "1" and version["os"] == "linux"
    assert version["arch"] and version["python"].count(".") == 2
    info = engine.system.info()
    assert info["host"] == "local" and info["root"] == engine.config.root
    assert info["cgroup_parent"] == engine.config.cgroup_parent and info["cgroup_version"] in (1, 2, None)
    assert info["containers"] == {"total": 0, "running": 0, "paused": 0, "exited": 0, "created": 0}
    assert (info["images"], info["networks"], info["volumes"]) == (0, 0, 0)
    assert info["cpus"] >= 1 and info["memory"] > 0 and info["kernel"]


@pytest.mark.requires_root
def test_df_counts_images_and_volumes(engine: Engine, tmp_path: Path) -> None:
    engine.images.import_tarball(str(busybox_tarball(tmp_path / "busybox.tar")), "stk-busybox:1")
    volume = engine.volumes.create({"name": "stk-data"})
    Path(volume["mountpoint"], "file").write_bytes(b"x" * 1000)
    usage = engine.system.df()
    assert usage["images"]["count"] == 1 and usage["images"]["active"] == 0
    assert usage["images"]["bytes"] > 0 and usage["images"]["reclaimable"] == usage["images"]["bytes"]
    assert usage["volumes"] == {"count": 1, "active": 0, "bytes": 1000, "reclaimable": 1000}
    assert usage["containers"] == {"count": 0, "active": 0, "bytes": 0, "reclaimable": 0}
    info = engine.system.info()
    assert (info["images"], info["volumes"]) == (1, 1)


@pytest.mark.requires_root
def test_prune_removes_unused_anonymous_volumes_only_when_asked(engine: Engine) -> None:
    named = engine.volumes.create({"name": "stk-kept"})
    anonymous = engine.volumes.create({})
    Path(anonymous["mountpoint"], "file").write_bytes(b"y" * 500)
    kept = engine.system.prune()
    assert kept["volumes"] == [] and kept["containers"] == [] and kept["networks"] == []
    assert {v["name"] for v in engine.volumes.list()} == {named["name"], anonymous["name"]}
    pruned = engine.system.prune(volumes=True)
    assert pruned["volumes"] == [anonymous["name"]] and pruned["bytes_freed"] >= 500
    assert [v["name"] for v in engine.volumes.list()] == [named["name"]]


def test_disk_usage_counts_hard_links_once_and_follows_no_symlink(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a" * 100)
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c").write_bytes(b"c" * 10)
    outside = tmp_path.parent / f"stk-outside-{uuid.uuid4().hex[:8]}"
    outside.write_bytes(b"o" * 5000)
    try:
        (tmp_path / "link").symlink_to(outside)
        assert disk_usage(str(tmp_path)) == 110
        assert disk_usage(str(tmp_path / "sub" / "c")) == 10 and disk_usage(str(tmp_path / "none")) == 0
    finally:
        outside.unlink()


# --- events ------------------------------------------------------------------------


def test_events_list_since_and_follow(engine: Engine) -> None:
    root = engine.config.root
    assert engine.events.list() == []
    for number in range(3):
        event_log.append(root, "pass", reason=f"r{number}", outcome="unchanged")
    with open(event_log.path(root), "a") as handle:
        handle.write('{"time": 1, "event": "cut by a cra')  # a crash mid-write: skipped
    logged = engine.events.list()
    assert [e["reason"] for e in logged] == ["r0", "r1", "r2"]
    assert [e["reason"] for e in engine.events.list(since=logged[1]["time"])][-2:] == ["r1", "r2"]
    with open(event_log.path(root), "a") as handle:
        handle.write("\n")
    stream = engine.events.follow()
    try:
        assert [next(stream)["reason"] for _ in range(3)] == ["r0", "r1", "r2"]
        event_log.append(root, "pass", reason="r3", outcome="changed")
        assert next(stream)["reason"] == "r3"
    finally:
        stream.close()  # type: ignore[attr-defined]


# --- through an agent ----------------------------------------------------------------

QUICK = """\
apiVersion: reconcile/v1
kind: Image
metadata: {name: base}
spec: {import: {path: base.tar}, tag: "stk-quick:1"}
---
apiVersion: reconcile/v1
kind: Container
metadata: {name: stk-quick}
spec: {image: base, init: true, network_mode: none, stop_grace_period: 1s, command: [sleep, '600']}
"""


@pytest.mark.requires_root
def test_validate_and_plan_through_an_agent_read_as_locally(agents: list[Agent], tmp_path: Path) -> None:
    agent = make_agent(agents, tmp_path / "a")
    directory = broken(tmp_path / "manifests")
    for command in (["validate"], ["validate", "-o", "json"], ["plan"], ["plan", "-o", "json"]):
        remote = agent.cli(*command, str(directory))
        local = agent.cli(*command, str(directory), remote=False)
        assert (remote.returncode, remote.stdout, remote.stderr) == (1, local.stdout, local.stderr)
    assert f"{directory}/a.yaml:6:" in remote.stderr or f"{directory}/a.yaml" in remote.stdout
    good = str(REPO / "examples" / "webapp")
    remote, local = agent.cli("plan", good, "-o", "json"), agent.cli("plan", good, "-o", "json", remote=False)
    assert (remote.returncode, remote.stdout) == (0, local.stdout)


@pytest.mark.requires_root
def test_apply_through_an_agent_converges_then_does_nothing(agents: list[Agent], tmp_path: Path) -> None:
    agent = make_agent(agents, tmp_path / "a")
    stack = tmp_path / "quick"
    stack.mkdir()
    busybox_tarball(stack / "base.tar")
    (stack / "stack.yaml").write_text("name: quick\n")
    (stack / "objects.yaml").write_text(QUICK)
    try:
        first = agent.cli("apply", str(stack))
        assert first.returncode == 2, first.stderr
        assert "image/base: created" in first.stderr and "stack quick: 2 created" in first.stdout
        again = agent.cli("apply", str(stack), "-o", "json")
        assert again.returncode == 0, again.stderr
        assert {r["key"]: r["outcome"] for r in json.loads(again.stdout)["results"]} == {
            "image/base": "unchanged",
            "container/stk-quick": "unchanged",
        }
        status = {row["key"]: row["actual"] for row in json.loads(agent.cli("status", "-o", "json").stdout)}
        assert status == {"image/base": "present", "container/stk-quick": "running"}
        logged = [json.loads(line) for line in agent.cli("events", "-o", "json").stdout.splitlines()]
        assert [e["outcome"] for e in logged if e.get("key") == "container/stk-quick"] == ["created"]
        assert not os.listdir(agent.root / "uploads")  # the stable path to each upload went with it
        status_code, info = agent.request("GET", "/v1/system/info")
        assert status_code == 200 and info["host"] == agent.host and info["containers"]["running"] == 1
    finally:
        (stack / "objects.yaml").unlink()
        down = agent.cli("apply", str(stack))
    assert down.returncode == 2, down.stderr
    assert json.loads(agent.cli("ps", "-a", "-o", "json").stdout) == []
