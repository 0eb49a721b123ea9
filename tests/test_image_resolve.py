"""Image objects resolved to digests for the planner: from the local store, from a
real registry (a tag that moves there plans a recreate of the containers using it),
pinned digests that never move, and clear errors naming the object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.images import resolve
from reconciler.images.distribution import push
from reconciler.images.store import ImageStore
from reconciler.manifests.loader import load_directory
from reconciler.model.image import Image
from reconciler.model.manifest import canonical
from reconciler.model.observed import Observed, ObservedObject
from tests.registry_fixtures import docker_registry, file_tar
from tests.test_cli_containers import REPO

pytestmark = pytest.mark.requires_root


def image_object(name: str, **spec: object) -> Image:
    return Image.model_validate(
        {"apiVersion": "reconcile/v1", "kind": "Image", "metadata": {"name": name}, "spec": spec}
    )


def import_version(store: ImageStore, tmp_path: Path, reference: str, version: str) -> str:
    """A one-layer image whose content differs per version; its manifest digest."""
    tarball = tmp_path / f"v{version}.tar"
    tarball.write_bytes(file_tar({"VERSION": version.encode()}))
    return store.import_tarball(str(tarball), reference).manifest_digest


def write_stack(directory: Path, reference: str) -> None:
    directory.mkdir()
    (directory / "stack.yaml").write_text("name: shop\n")
    (directory / "objects.yaml").write_text(
        "apiVersion: reconcile/v1\nkind: Image\nmetadata: {name: app}\nspec:\n"
        f"  pull: {reference}\n"
        "---\napiVersion: reconcile/v1\nkind: Container\nmetadata: {name: web}\n"
        "spec: {image: app, command: [sleep, '60']}\n"
    )


def test_local_digests_and_pinned_references(tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "root"))
    first = import_version(store, tmp_path, "app:1", "1")
    assert resolve.digest_of(store, image_object("app", pull="app:1")) == first
    assert resolve.digests(store, [image_object("app", pull="app:1")]) == {"app": first, "app:1": first}
    pinned = "sha256:" + "ab" * 32
    assert resolve.digest_of(store, image_object("p", pull=f"app@{pinned}")) == pinned  # never asked again
    assert resolve.digest_of(store, image_object("missing", pull="nope:1")) is None
    built = image_object("own", build={"context": "."}, tag="own:2")
    assert resolve.digest_of(store, built) is None
    (tmp_path / "v9.tar").write_bytes(file_tar({"VERSION": b"9"}))
    source = image_object("own", **{"import": {"path": "v9.tar"}, "tag": "own:2"})
    imported = resolve.ensure(store, source, base_dir=str(tmp_path))
    assert resolve.digest_of(store, built) == imported.manifest_digest
    with pytest.raises(resolve.ResolveError, match="image/bad: "):
        resolve.ensure(store, image_object("bad", **{"import": {"path": "nope.tar"}}), base_dir=str(tmp_path))


def test_a_tag_that_moves_on_the_registry_plans_a_recreate(tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "root"))
    with docker_registry(str(tmp_path / "registry")) as registry:
        reference = f"{registry.host}/shop/app:1"
        old = import_version(store, tmp_path, reference, "1")
        assert push(store, reference) == old
        obj = image_object("app", pull=reference)
        assert resolve.digest_of(store, obj, refresh=True) == old
        new = import_version(store, tmp_path, reference, "2")  # a new build pushed under the same tag
        assert push(store, reference) == new != old
        assert resolve.digest_of(store, obj, refresh=True) == new

        manifests = tmp_path / "manifests"
        write_stack(manifests, reference)
        desired = load_directory(str(manifests))
        observed = Observed(
            objects=[
                ObservedObject(kind=o.kind, name=o.metadata.name, owner="shop", manifest=canonical(o), digest=old)
                for o in desired.objects
            ]
        )
        observed_file = tmp_path / "observed.json"
        observed_file.write_text(observed.model_dump_json())
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "plan",
                str(manifests),
                "--observed",
                str(observed_file),
                "--resolve-images",
                "registry",
                "--root",
                str(tmp_path / "root"),
                "-o",
                "json",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        actions = {a["key"]: a for a in json.loads(result.stdout)["actions"]}
        assert actions["container/web"]["op"] == "recreate"
        change = actions["container/web"]["changes"][0]
        assert (change["path"], change["old"], change["new"]) == ("image digest", old, new)

        unknown = image_object("gone", pull=f"{registry.host}/shop/app:missing")
        with pytest.raises(resolve.ResolveError, match=r"image/gone: .*manifest unknown"):
            resolve.digest_of(store, unknown, refresh=True)
