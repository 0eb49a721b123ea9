"""The command line: output formats, exit codes, and that it runs as a real process."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from reconciler.cli.main import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


def write(directory: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def stack(tmp_path: pathlib.Path) -> pathlib.Path:
    directory = tmp_path / "shop"
    write(
        directory,
        "net.yaml",
        """\
        apiVersion: reconcile/v1
        kind: Network
        metadata: {name: front}
        spec: {subnet: 10.77.0.0/24}
        """,
    )
    write(
        directory,
        "web.yaml",
        """\
        apiVersion: reconcile/v1
        kind: Container
        metadata: {name: web}
        spec:
          image: busybox:1.36
          networks: [front]
          resources: {memory: 512m}
        """,
    )
    return directory


def test_validate_ok(stack: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(stack)]) == 0
    assert "stack 'shop', 2 objects, valid" in capsys.readouterr().out


def test_validate_reports_every_error_like_a_compiler(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        "a.yaml",
        """\
        apiVersion: reconcile/v1
        kind: Container
        metadata: {name: web}
        spec:
          image: busybox:1.36
          ports: ["8080:80", "bogus"]
        """,
    )
    write(tmp_path, "b.yaml", "apiVersion: reconcile/v1\nkind: Netwrok\nmetadata: {name: n}\n")
    assert main(["validate", str(tmp_path), "--color", "never"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{tmp_path}/a.yaml:6:")
    assert ": container/web: spec.ports[1]: invalid port 'bogus'" in err[0]
    assert err[1] == f"{tmp_path}/b.yaml:2:1: kind: unknown kind 'Netwrok'; did you mean 'Network'?"
    assert err[-1] == f"{tmp_path}: 2 errors; nothing applied"


def test_validate_json(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "a.yaml", "apiVersion: reconcile/v1\nkind: Volume\nmetadata: {name: Bad_Name}\n")
    assert main(["validate", str(tmp_path), "-o", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    (error,) = report["errors"]
    assert error["line"] == 3 and error["field"] == "metadata.name" and error["object"] == "volume/Bad_Name"


def test_plan_text_against_an_empty_host(stack: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(stack), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "+ network/front  (create)  wave 0" in out
    assert "+ container/web  (create)  wave 1" in out
    assert "Plan: 2 to create, 0 to update, 0 to recreate, 0 to delete, 0 unchanged" in out
    assert "\033[" not in out


def test_plan_colour_on_request(stack: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["plan", str(stack), "--color", "always"])
    assert "\033[32;1m" in capsys.readouterr().out


def _observed(tmp_path: pathlib.Path, objects: list[dict[str, object]]) -> str:
    path = tmp_path / "observed.json"
    path.write_text(json.dumps({"objects": objects}))
    return str(path)


def _applied(stack: pathlib.Path) -> list[dict[str, object]]:
    """The observed state of a host where ``stack`` was applied."""
    from reconciler.manifests.loader import load_directory
    from reconciler.model.manifest import canonical

    desired = load_directory(str(stack))
    return [
        {"kind": o.kind, "name": o.metadata.name, "owner": desired.stack, "manifest": canonical(o)}
        for o in desired.objects
    ]


def test_plan_json_with_observed_state_and_detailed_exitcode(
    stack: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    applied = _applied(stack)
    observed = _observed(tmp_path, applied)
    assert main(["plan", str(stack), "--observed", observed, "--detailed-exitcode"]) == 0
    capsys.readouterr()

    # the memory limit doubles on disk: an update in place, written as 1g this time
    web = stack / "web.yaml"
    web.write_text(web.read_text().replace("512m", "1g"))
    code = main(["plan", str(stack), "--observed", observed, "--detailed-exitcode", "-o", "json"])
    assert code == 2
    plan = json.loads(capsys.readouterr().out)
    assert plan["format_version"] == 1 and plan["stack"] == "shop"
    (action,) = [a for a in plan["actions"] if a["op"] != "noop"]
    assert action["key"] == "container/web" and action["op"] == "update"
    assert action["changes"] == [{"path": "spec.resources.memory", "old": 536870912, "new": 1073741824}]
    assert plan["steps"] == [{"wave": 0, "key": "container/web", "phase": "setup", "after": []}]


def test_plan_conflict_exits_1(stack: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    observed = _observed(tmp_path, [{"kind": "Container", "name": "web", "owner": None}])
    assert main(["plan", str(stack), "--observed", observed, "--color", "never"]) == 1
    out = capsys.readouterr().out
    assert "! container/web  (conflict)" in out
    assert "belongs to nobody (made by hand)" in out


def test_plan_prunes_only_its_own_stack(
    stack: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = [
        {"kind": "Container", "name": "old", "owner": "shop", "manifest": None},
        {"kind": "Container", "name": "theirs", "owner": "other", "manifest": None},
        {"kind": "Container", "name": "by-hand", "owner": None},
        {"kind": "Volume", "name": "keep", "owner": "shop", "manifest": {"spec": {"retain_policy": "retain"}}},
    ]
    observed = _observed(tmp_path, _applied(stack) + extra)
    assert main(["plan", str(stack), "--observed", observed, "-o", "json"]) == 0
    ops = {a["key"]: a["op"] for a in json.loads(capsys.readouterr().out)["actions"]}
    assert ops["container/old"] == "delete"
    assert ops["volume/keep"] == "noop"
    assert "container/theirs" not in ops and "container/by-hand" not in ops
    assert main(["plan", str(stack), "--observed", observed, "-o", "json", "--no-prune"]) == 0
    ops = {a["key"]: a["op"] for a in json.loads(capsys.readouterr().out)["actions"]}
    assert ops["container/old"] == "noop"
    assert main(["plan", str(stack), "--observed", observed, "-o", "json", "--prune-volumes"]) == 0
    ops = {a["key"]: a["op"] for a in json.loads(capsys.readouterr().out)["actions"]}
    assert ops["volume/keep"] == "delete"


def test_plan_bad_observed_file(
    stack: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "observed.json"
    bad.write_text("{not json")
    assert main(["plan", str(stack), "--observed", str(bad)]) == 1
    assert "cannot read observed state" in capsys.readouterr().err


def test_stack_option_overrides(stack: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(stack), "--stack", "prod", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["stack"] == "prod"


def test_schema_command(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "container"]) == 0
    assert json.loads(capsys.readouterr().out)["$id"] == "container.json"
    assert main(["schema", "--check", "--dir", str(tmp_path)]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["schema", "--write", "--dir", str(tmp_path)]) == 0
    assert main(["schema", "--check", "--dir", str(tmp_path)]) == 0
    assert main(["schema", "nope"]) == 64


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 64


def test_shipped_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "manifests")]) == 0
    assert main(["validate", str(ROOT / "examples" / "webapp")]) == 0
    assert main(["validate", str(ROOT / "examples" / "broken")]) == 1
    err = capsys.readouterr().err
    assert "spec.networks.backend: undefined network 'backend'" in err
    assert "did you mean 'image'?" in err


def _run(*args: str, cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_runs_as_a_module_with_the_default_directory() -> None:
    result = _run("plan")
    assert result.returncode == 0, result.stderr
    assert "Plan for stack demo" in result.stdout


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0 and result.stdout.startswith("reconcile ")


def test_text_plan_writes_sizes_and_durations_as_users_do() -> None:
    from reconciler.cli.render import plan_text
    from reconciler.cli.style import Style
    from reconciler.model.plan import Action, Change, Plan

    changes = [
        Change(path="spec.resources.memory", old=268435456, new=536870912),
        Change(path="spec.healthcheck.interval", old=30.0, new=90.0),
        Change(path="spec.replicas", old=3, new=4),
    ]
    update = Action(key="container/db", kind="Container", name="db", op="update", reasons=["changed"], changes=changes)
    kept = Action(key="volume/v", kind="Volume", name="v", op="noop", reasons=["no longer in the manifests; kept"])
    same = Action(key="network/n", kind="Network", name="n", op="noop", reasons=["up to date"])
    text = plan_text(Plan(stack="s", actions=[update, kept, same]), Style(False))
    assert "~ spec.resources.memory: 256Mi → 512Mi" in text
    assert "~ spec.healthcheck.interval: 30s → 1m30s" in text
    assert "~ spec.replicas: 3 → 4" in text
    assert "= volume/v  (unchanged)" in text  # a noop with news is listed
    assert "network/n" not in text  # an up-to-date one is not, without -v
    assert "network/n" in plan_text(Plan(stack="s", actions=[same]), Style(False), verbose=True)


def test_usage_errors_exit_64_not_2() -> None:
    """2 means "changes" under --detailed-exitcode; a typo must never read as that."""
    with pytest.raises(SystemExit) as info:
        main(["plan", "--output", "yaml"])
    assert info.value.code == 64
    with pytest.raises(SystemExit) as info:
        main(["nonsense"])
    assert info.value.code == 64


@pytest.mark.parametrize(
    "statement",
    [
        "from reconciler.cli.main import build_parser; build_parser().parse_args(['validate'])",
        "import reconciler.cli.container_commands",  # run, ps, logs, exec
    ],
)
def test_hot_paths_import_only_the_standard_library(statement: str) -> None:
    """Argument parsing and the container commands must not pull in pydantic or ruamel."""
    code = (
        f"import sys; {statement};"
        "heavy = [m for m in ('pydantic', 'ruamel', 'rich', 'httpx', 'typer') if m in sys.modules];"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
