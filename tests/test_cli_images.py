"""The image commands as users run them, each a real process: import, images, tag,
inspect, history, save/load, rm/prune (never an image a container uses), fsck, and
push/pull through a real registry (Debian's docker-registry on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.registry_fixtures import docker_registry, htpasswd_line
from tests.test_cli_containers import busybox_tarball, reconcile
from tests.test_cli_containers import engine as engine

pytestmark = pytest.mark.requires_root


def blobs(root: str) -> set[str]:
    directory = Path(root, "images", "blobs", "sha256")
    return set(os.listdir(directory)) if directory.exists() else set()


def test_list_tag_inspect_history_save_load_and_remove(engine: dict[str, str], tmp_path: Path) -> None:
    root = engine["RECONCILE_ROOT"]
    imported = reconcile(engine, "image", "import", str(busybox_tarball(tmp_path / "b.tar")), "busybox:1")
    image_id = imported.stdout.strip()
    assert imported.returncode == 0 and image_id.startswith("sha256:")
    assert reconcile(engine, "tag", "busybox:1", "mirror/busybox:stable").returncode == 0
    listing = json.loads(reconcile(engine, "images", "-o", "json").stdout)
    assert sorted((r["repository"], r["tag"], r["id"]) for r in listing) == [
        ("busybox", "1", image_id),
        ("mirror/busybox", "stable", image_id),
    ]
    table = reconcile(engine, "images").stdout
    assert "REPOSITORY" in table and image_id.removeprefix("sha256:")[:12] in table
    document = json.loads(reconcile(engine, "image", "inspect", image_id[:19]).stdout)[0]
    assert document["Id"] == image_id and document["RepoTags"] == ["busybox:1", "mirror/busybox:stable"]
    assert "reconcile image import" in reconcile(engine, "history", "busybox:1").stdout

    archive = tmp_path / "saved.tar"
    assert reconcile(engine, "image", "save", "-o", str(archive), "busybox:1").returncode == 0
    removed = reconcile(engine, "image", "rm", "busybox:1", "mirror/busybox:stable")
    assert removed.returncode == 0 and "Untagged: busybox:1" in removed.stdout
    assert blobs(root) == set()  # nothing else used them: removed with the last tag
    loaded = reconcile(engine, "image", "load", "-i", str(archive))
    assert (loaded.returncode, loaded.stdout) == (0, "Loaded image: busybox:1\n")
    assert reconcile(engine, "run", "--rm", "busybox:1", "echo", "loaded").stdout == "loaded\n"
    missing = reconcile(engine, "image", "rm", "nope:1")
    assert missing.returncode == 1 and "no such image: nope:1" in missing.stderr


def test_an_image_a_container_uses_is_never_pruned(engine: dict[str, str], tmp_path: Path) -> None:
    root = engine["RECONCILE_ROOT"]
    reconcile(engine, "image", "import", str(busybox_tarball(tmp_path / "b.tar")), "busybox:1")
    assert reconcile(engine, "run", "-d", "--name", "user", "busybox:1", "sleep", "60").returncode == 0
    before = blobs(root)
    refused = reconcile(engine, "image", "rm", "busybox:1")
    assert refused.returncode == 1 and "used by a container" in refused.stderr
    assert reconcile(engine, "image", "prune", "-a").returncode == 0
    listing = json.loads(reconcile(engine, "images", "-o", "json").stdout)
    assert blobs(root) == before and [(r["repository"], r["tag"]) for r in listing] == [("busybox", "1")]
    assert reconcile(engine, "rm", "-f", "user").returncode == 0
    assert reconcile(engine, "image", "prune", "-a").returncode == 0
    assert blobs(root) == set() and json.loads(reconcile(engine, "images", "-o", "json").stdout) == []


def test_fsck_finds_a_corrupt_blob(engine: dict[str, str], tmp_path: Path) -> None:
    root = engine["RECONCILE_ROOT"]
    reconcile(engine, "image", "import", str(busybox_tarball(tmp_path / "b.tar")), "busybox:1")
    assert reconcile(engine, "image", "fsck").returncode == 0
    layer = max(Path(root, "images", "blobs", "sha256").iterdir(), key=lambda p: p.stat().st_size)
    with open(layer, "r+b") as handle:
        handle.seek(100)
        handle.write(b"corruption")
    checked = reconcile(engine, "image", "fsck")
    assert checked.returncode == 1 and f"blob sha256:{layer.name}" in checked.stdout


def test_push_and_pull_through_a_real_registry(engine: dict[str, str], tmp_path: Path) -> None:
    reconcile(engine, "image", "import", str(busybox_tarball(tmp_path / "b.tar")), "busybox:1")
    with docker_registry(str(tmp_path / "registry")) as registry:
        remote = f"{registry.host}/tools/busybox:1"
        assert reconcile(engine, "tag", "busybox:1", remote).returncode == 0
        pushed = reconcile(engine, "push", remote)
        assert pushed.returncode == 0, pushed.stderr
        digest = pushed.stdout.strip().rsplit(" ", 1)[1]
        other = {**engine, "RECONCILE_ROOT": str(tmp_path / "other-root")}
        pulled = reconcile(other, "pull", remote)
        assert (pulled.returncode, pulled.stdout) == (0, f"{remote}\n"), pulled.stderr
        assert f"Digest: {digest}" in pulled.stderr
        ran = reconcile(other, "run", "--rm", remote, "echo", "pulled and ran")
        assert (ran.returncode, ran.stdout) == (0, "pulled and ran\n")
        unknown = reconcile(other, "pull", f"{registry.host}/tools/busybox:nope")
        assert unknown.returncode == 1 and "manifest unknown" in unknown.stderr
    down = reconcile(other, "pull", remote)  # the registry is gone now
    assert down.returncode == 1 and registry.host in down.stderr
    assert json.loads(reconcile(other, "images", "-o", "json").stdout)[0]["digest"] == digest


def test_login_with_wrong_credentials_fails_cleanly(engine: dict[str, str], tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(htpasswd_line("alice", "secret") + "\n")
    with docker_registry(str(tmp_path / "registry"), htpasswd=str(htpasswd)) as registry:
        wrong = subprocess.run(
            [sys.executable, "-m", "reconciler", "login", registry.host, "-u", "alice", "--password-stdin"],
            env=engine,
            input="wrong\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode == 1 and registry.host in wrong.stderr
        assert not Path(engine["RECONCILE_ROOT"], "auth.json").exists()
        right = reconcile(engine, "login", registry.host, "-u", "alice", "-p", "secret")
        assert (right.returncode, right.stdout) == (0, "Login Succeeded\n")
        assert reconcile(engine, "logout", registry.host).returncode == 0


def test_build_push_pull_run_round_trip(engine: dict[str, str], tmp_path: Path) -> None:
    """The issue's loop: build with our builder, push, pull into a fresh store, run; same digest."""
    reconcile(engine, "image", "import", str(busybox_tarball(tmp_path / "b.tar")), "busybox:1")
    context = tmp_path / "context"
    context.mkdir()
    (context / "greeting.txt").write_text("hello from a build\n")
    (context / "Containerfile").write_text(
        "FROM busybox:1\n"
        "ARG WHO=world\n"
        "COPY greeting.txt /srv/greeting.txt\n"
        'RUN echo "built for $WHO" > /srv/who.txt\n'
        'CMD ["cat", "/srv/greeting.txt", "/srv/who.txt"]\n'
    )
    built = reconcile(engine, "build", "-t", "app:1", "--build-arg", "WHO=ci", str(context))
    assert built.returncode == 0, built.stderr
    assert "STEP 5/5: CMD" in built.stderr and "COMMIT app:1" in built.stderr
    image_id = built.stdout.strip()
    again = reconcile(engine, "build", "-q", "-t", "app:1", "--build-arg", "WHO=ci", str(context))
    assert again.stdout.strip() == image_id and again.stderr == ""  # cached: the same image
    ran = reconcile(engine, "run", "--rm", "app:1")
    assert (ran.returncode, ran.stdout) == (0, "hello from a build\nbuilt for ci\n")

    broken = context / "Broken"
    broken.write_text("FROM busybox:1\nRUN echo about to fail; exit 3\n")
    failed = reconcile(engine, "build", "-f", str(broken), "-t", "broken:1", str(context))
    assert failed.returncode == 1 and "Broken:2" in failed.stderr and "3" in failed.stderr
    assert "broken" not in reconcile(engine, "images").stdout

    with docker_registry(str(tmp_path / "registry")) as registry:
        remote = f"{registry.host}/apps/app:1"
        assert reconcile(engine, "tag", "app:1", remote).returncode == 0
        pushed = reconcile(engine, "push", remote)
        assert pushed.returncode == 0, pushed.stderr
        digest = pushed.stdout.strip().rsplit(" ", 1)[1]
        fresh = {**engine, "RECONCILE_ROOT": str(tmp_path / "fresh-root")}
        assert reconcile(fresh, "pull", remote).returncode == 0
        listing = json.loads(reconcile(fresh, "images", "-o", "json").stdout)
        assert [(r["digest"], r["id"]) for r in listing] == [(digest, image_id)]
        ran = reconcile(fresh, "run", "--rm", remote)
        assert (ran.returncode, ran.stdout) == (0, "hello from a build\nbuilt for ci\n")
