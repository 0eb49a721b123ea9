"""Volumes as users run them: a named volume keeps data across containers, a new one
is filled from the image, a read-only bind refuses writes, a volume in use cannot be
removed, and `run --rm` takes its anonymous volumes with it."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.test_cli_containers import busybox_tarball, reconcile
from tests.test_cli_containers import engine as engine  # a fixture, used by name

pytestmark = pytest.mark.requires_root


@pytest.fixture
def image(engine: dict[str, str], tmp_path: Path) -> str:
    tarball = busybox_tarball(tmp_path / "busybox.tar")
    seed = tmp_path / "seed.txt"
    seed.write_text("shipped in the image\n")
    with tarfile.open(tarball, "a") as archive:
        for applet in ("ls", "touch", "rm", "true"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
        archive.add(seed, arcname="srv/data/seed.txt")
    assert reconcile(engine, "image", "import", str(tarball), "vol:1").returncode == 0
    return "vol:1"


def test_a_named_volume_is_filled_from_the_image_and_keeps_data(engine: dict[str, str], image: str) -> None:
    first = reconcile(
        engine,
        "run",
        "--rm",
        "-v",
        "appdata:/srv/data",
        image,
        "sh",
        "-c",
        "cat /srv/data/seed.txt; echo written > /srv/data/mine.txt",
    )
    assert (first.returncode, first.stdout) == (0, "shipped in the image\n"), first.stderr
    second = reconcile(engine, "run", "--rm", "-v", "appdata:/srv/data", image, "cat", "/srv/data/mine.txt")
    assert (second.returncode, second.stdout) == (0, "written\n")
    # emptied by the user: not filled again
    assert (
        reconcile(
            engine, "run", "--rm", "-v", "appdata:/srv/data", image, "rm", "/srv/data/seed.txt", "/srv/data/mine.txt"
        ).returncode
        == 0
    )
    third = reconcile(engine, "run", "--rm", "-v", "appdata:/srv/data", image, "ls", "/srv/data")
    assert (third.returncode, third.stdout) == (0, "")
    listing = json.loads(reconcile(engine, "volume", "ls", "-o", "json").stdout)
    assert [v["Name"] for v in listing] == ["appdata"]


def test_a_volume_in_use_cannot_be_removed(engine: dict[str, str], image: str) -> None:
    assert (
        reconcile(engine, "run", "-d", "--name", "holder", "-v", "kept:/srv/data", image, "sleep", "60").returncode == 0
    )
    refused = reconcile(engine, "volume", "rm", "kept")
    assert refused.returncode == 1 and "holder" in refused.stderr
    assert reconcile(engine, "volume", "prune", "-a").returncode == 0
    assert [v["Name"] for v in json.loads(reconcile(engine, "volume", "ls", "-o", "json").stdout)] == ["kept"]
    assert reconcile(engine, "rm", "-f", "holder").returncode == 0
    assert reconcile(engine, "volume", "rm", "kept").returncode == 0


def test_binds_and_anonymous_volumes(engine: dict[str, str], image: str, tmp_path: Path) -> None:
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "config").write_text("from the host\n")
    read = reconcile(
        engine, "run", "--rm", "-v", f"{host}:/etc/app:ro", image, "sh", "-c", "cat /etc/app/config; touch /etc/app/new"
    )
    assert read.stdout == "from the host\n" and read.returncode != 0  # read-only: the write fails
    assert "Read-only file system" in read.stderr and not (host / "new").exists()
    wrote = reconcile(engine, "run", "--rm", "-v", f"{host}:/etc/app", image, "touch", "/etc/app/new")
    assert wrote.returncode == 0 and (host / "new").exists()
    made = tmp_path / "made-by-run"
    assert reconcile(engine, "run", "--rm", "-v", f"{made}:/x", image, "true").returncode == 0
    assert made.is_dir()  # a missing bind source is created, as docker run does
    anonymous = reconcile(engine, "run", "--rm", "-v", "/scratch", image, "touch", "/scratch/file")
    assert anonymous.returncode == 0
    assert json.loads(reconcile(engine, "volume", "ls", "-o", "json").stdout) == []  # --rm took it
    bad = reconcile(engine, "run", "--rm", "-v", "bad name:/x", image, "true")
    assert bad.returncode == 125 and "bad name" in bad.stderr
