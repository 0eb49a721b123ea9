"""``image save`` / ``image load``: round trips in both formats, skopeo as the peer that
must read what we write and write what we read, and hostile archives that must leave
the store as it was.

Every store here unpacks layers (chown, device nodes for whiteouts), hence root.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import zstandard

from reconciler.images import archive, oci
from reconciler.images import store as image_store

pytestmark = pytest.mark.requires_root

FORMATS = ["oci-archive", "docker-archive"]
BUSYBOX = "/bin/busybox"


# --- helpers -------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rootfs_tar(path: Path, *, compress: str = "", extra: dict[str, bytes] | None = None) -> Path:
    """A busybox root filesystem as a tarball: /bin/busybox, /bin/sh -> busybox, /etc/hostname."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "etc"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        info = tarfile.TarInfo("bin/sh")
        info.type, info.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(info)
        for name, data in {"etc/hostname": b"archive-test\n", **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    if compress == "gzip":
        import gzip

        raw = gzip.compress(raw)
    elif compress == "zstd":
        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    return path


def layer_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def members(path: Path) -> dict[str, bytes]:
    """Every regular file of a (small, test-made) tar, by name."""
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def member_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return [m.name for m in tar]


def write_tar(path: Path, files: dict[str, bytes], *, specials: list[tarfile.TarInfo] = ()) -> Path:  # type: ignore[assignment]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in specials:
            tar.addfile(info)
    return path


def link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = (tarfile.LNKTYPE if hard else tarfile.SYMTYPE), target
    return info


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def assert_busybox_files(store: image_store.ImageStore, reference: str) -> None:
    root = Path(store.layers(reference)[-1])
    assert (root / "bin/busybox").read_bytes() == Path(BUSYBOX).read_bytes()
    assert os.readlink(root / "bin/sh") == "busybox"
    assert (root / "etc/hostname").read_bytes() == b"archive-test\n"


class OneWay(io.RawIOBase):
    """A non-seekable stream, as a pipe is: save and load must not seek."""

    def __init__(self, inner: BinaryIO, *, writable: bool) -> None:
        super().__init__()
        self.inner = inner
        self._writable = writable

    def readable(self) -> bool:
        return not self._writable

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1, /) -> bytes:
        return self.inner.read(size)

    def write(self, data: Any, /) -> int:
        return self.inner.write(data)


def skopeo(tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- fixtures --------------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> image_store.ImageStore:
    """A store with busybox:1.36 (one gzip layer) and app:1 (that layer plus one more)."""
    store = image_store.ImageStore(str(tmp_path / "source"))
    base = store.import_tarball(
        str(rootfs_tar(tmp_path / "rootfs.tar.gz", compress="gzip")), "busybox:1.36", changes={"Cmd": ["/bin/sh"]}
    )
    extra = layer_tar({"app/hello.txt": b"hello\n"})
    extra_digest = store.content.put(extra)
    config = {
        **oci.host_platform(),
        "config": {"Env": [f"PATH={image_store.DEFAULT_PATH}"], "Cmd": ["/bin/cat", "/app/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [*base.diff_ids, extra_digest]},
    }
    store.commit(config, [*base.layers, oci.Descriptor(oci.OCI_LAYER, extra_digest, len(extra))], ["app:1"])
    return store


@pytest.fixture
def target(tmp_path: Path) -> image_store.ImageStore:
    """A store that already has an image, so refs.json exists and must stay as it is."""
    store = image_store.ImageStore(str(tmp_path / "target"))
    store.import_tarball(str(rootfs_tar(tmp_path / "existing.tar", extra={"existing": b"1"})), "existing:1")
    return store


def store_state(store: image_store.ImageStore) -> tuple[bytes, set[str], list[str]]:
    ingest = Path(store.content.ingest_dir)
    leftovers = sorted(p.name for p in ingest.iterdir()) if ingest.exists() else []
    return Path(store.refs_path).read_bytes(), set(store.content.digests()), leftovers


# --- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("format", FORMATS)
def test_round_trip_keeps_image_id_tag_and_files(
    tmp_path: Path, source: image_store.ImageStore, format: archive.Format
) -> None:
    path = tmp_path / "out.tar"
    archive.save(source, ["busybox:1.36"], str(path), format=format)
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    assert archive.load(fresh, str(path)) == ["busybox:1.36"]
    assert fresh.image("busybox:1.36").id == source.image("busybox:1.36").id
    assert fresh.config("busybox:1.36").cmd == ["/bin/sh"]
    assert_busybox_files(fresh, "busybox:1.36")
    assert not os.listdir(fresh.content.ingest_dir)


@pytest.mark.parametrize("format", FORMATS)
def test_round_trip_of_two_images_sharing_a_layer(
    tmp_path: Path, source: image_store.ImageStore, format: archive.Format
) -> None:
    path = tmp_path / "out.tar"
    archive.save(source, ["busybox:1.36", "app:1"], str(path), format=format)
    shared = source.image("busybox:1.36").diff_ids[0]
    shared_blob = source.image("busybox:1.36").layers[0].digest
    names = member_names(path)
    if format == "oci-archive":
        assert names.count(blob_name(shared_blob)) == 1
    else:
        assert names.count(f"{shared.removeprefix('sha256:')}/layer.tar") == 1
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    assert archive.load(fresh, str(path)) == ["busybox:1.36", "app:1"]
    for name in ("busybox:1.36", "app:1"):
        assert fresh.image(name).id == source.image(name).id
    assert (Path(fresh.layers("app:1")[0]) / "app/hello.txt").read_bytes() == b"hello\n"
    assert_busybox_files(fresh, "app:1")


def test_oci_archive_layout_and_names(tmp_path: Path, source: image_store.ImageStore) -> None:
    path = tmp_path / "out.tar"
    archive.save(source, ["busybox:1.36"], str(path))
    files = members(path)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["index.json"])["manifests"]
    image = source.image("busybox:1.36")
    assert entry["digest"] == image.manifest_digest
    assert entry["annotations"] == {
        "io.containerd.image.name": "docker.io/library/busybox:1.36",
        "org.opencontainers.image.ref.name": "1.36",
    }
    blobs = {name: data for name, data in files.items() if name.startswith("blobs/")}
    assert all(sha256(data) == "sha256:" + name.rsplit("/", 1)[1] for name, data in blobs.items())
    assert set(blobs) == {blob_name(d) for d in (image.manifest_digest, image.id, image.layers[0].digest)}


def test_docker_archive_layers_are_plain_tars_named_by_diff_id(tmp_path: Path, source: image_store.ImageStore) -> None:
    path = tmp_path / "out.tar"
    archive.save(source, ["app:1", "busybox:1.36"], str(path), format="docker-archive")
    files = members(path)
    manifest = json.loads(files["manifest.json"])
    assert [item["RepoTags"] for item in manifest] == [["app:1"], ["busybox:1.36"]]
    for item, name in zip(manifest, ("app:1", "busybox:1.36"), strict=True):
        image = source.image(name)
        config = files[item["Config"]]
        assert sha256(config) == image.id  # the config bytes, exactly
        assert [sha256(files[layer]) for layer in item["Layers"]] == list(image.diff_ids)
    repositories = json.loads(files["repositories"])
    assert set(repositories) == {"app", "busybox"}
    assert repositories["busybox"]["1.36"] == source.image("busybox:1.36").diff_ids[-1].removeprefix("sha256:")


def test_zstd_layer_is_decompressed_into_a_docker_archive(tmp_path: Path) -> None:
    store = image_store.ImageStore(str(tmp_path / "source"))
    image = store.import_tarball(str(rootfs_tar(tmp_path / "rootfs.tar.zst", compress="zstd")), "zbox:1")
    assert image.layers[0].media_type == oci.OCI_LAYER_ZSTD
    path = tmp_path / "out.tar"
    archive.save(store, ["zbox:1"], str(path), format="docker-archive")
    files = members(path)
    (item,) = json.loads(files["manifest.json"])
    assert sha256(files[item["Layers"][0]]) == image.diff_ids[0]
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    assert archive.load(fresh, str(path)) == ["zbox:1"]
    assert fresh.image("zbox:1").id == image.id
    assert_busybox_files(fresh, "zbox:1")


@pytest.mark.parametrize("format", FORMATS)
def test_save_is_reproducible(tmp_path: Path, source: image_store.ImageStore, format: archive.Format) -> None:
    first, second = tmp_path / "1.tar", tmp_path / "2.tar"
    archive.save(source, ["app:1", "busybox:1.36"], str(first), format=format)
    archive.save(source, ["app:1", "busybox:1.36"], str(second), format=format)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("format", FORMATS)
def test_save_to_and_load_from_pipes(tmp_path: Path, source: image_store.ImageStore, format: archive.Format) -> None:
    read_fd, write_fd = os.pipe()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            with open(write_fd, "wb") as sink:
                archive.save(source, ["app:1"], OneWay(sink, writable=True), format=format)  # type: ignore[arg-type]
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    try:
        with open(read_fd, "rb") as pipe:
            loaded = archive.load(fresh, OneWay(pipe, writable=False))  # type: ignore[arg-type]
    finally:
        thread.join()
    assert not failures
    assert loaded == ["app:1"]
    assert fresh.image("app:1").id == source.image("app:1").id


def test_load_reads_a_gzipped_archive(tmp_path: Path, source: image_store.ImageStore) -> None:
    import gzip

    path = tmp_path / "out.tar"
    archive.save(source, ["busybox:1.36"], str(path), format="docker-archive")
    zipped = tmp_path / "out.tar.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    assert archive.load(fresh, str(zipped)) == ["busybox:1.36"]


def test_load_into_a_store_that_has_the_blobs_already(tmp_path: Path, source: image_store.ImageStore) -> None:
    path = tmp_path / "out.tar"
    archive.save(source, ["app:1"], str(path))
    source.untag("app:1")
    assert archive.load(source, str(path)) == ["app:1"]
    assert not os.listdir(source.content.ingest_dir)


def test_one_image_under_two_tags(tmp_path: Path, source: image_store.ImageStore) -> None:
    source.tag("registry.example:5000/team/app:stable", source.resolve("app:1"))
    references = ["app:1", "registry.example:5000/team/app:stable"]
    for format, path in (("oci-archive", tmp_path / "o.tar"), ("docker-archive", tmp_path / "d.tar")):
        archive.save(source, references, str(path), format=format)  # type: ignore[arg-type]
        fresh = image_store.ImageStore(str(tmp_path / f"fresh-{format}"))
        assert archive.load(fresh, str(path)) == references
        assert fresh.image(references[0]).id == fresh.image(references[1]).id == source.image("app:1").id
    entries = json.loads(members(tmp_path / "o.tar")["index.json"])["manifests"]
    assert [e["annotations"]["io.containerd.image.name"] for e in entries] == [
        "docker.io/library/app:1",
        "registry.example:5000/team/app:stable",
    ]
    (item,) = json.loads(members(tmp_path / "d.tar")["manifest.json"])
    assert item["RepoTags"] == references


def test_save_by_image_id_writes_no_name(tmp_path: Path, source: image_store.ImageStore) -> None:
    image = source.image("app:1")
    for format, path in (("oci-archive", tmp_path / "o.tar"), ("docker-archive", tmp_path / "d.tar")):
        archive.save(source, [image.id.removeprefix("sha256:")[:12]], str(path), format=format)  # type: ignore[arg-type]
    (entry,) = json.loads(members(tmp_path / "o.tar")["index.json"])["manifests"]
    assert "annotations" not in entry
    (item,) = json.loads(members(tmp_path / "d.tar")["manifest.json"])
    assert item["RepoTags"] == []
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    assert archive.load(fresh, str(tmp_path / "d.tar")) == [image.id]
    assert fresh.refs() == {}
    assert fresh.content.has(image.id)
    assert os.path.isdir(fresh.snapshot_path(image.diff_ids[1]))


# --- names on load -------------------------------------------------------------------


def _retagged_oci(tmp_path: Path, source: image_store.ImageStore, annotations: dict[str, str] | None) -> Path:
    """Our oci-archive of app:1 with the index entry's annotations replaced."""
    saved = tmp_path / "saved.tar"
    archive.save(source, ["app:1"], str(saved))
    files = members(saved)
    index = json.loads(files["index.json"])
    index["manifests"][0].pop("annotations")
    if annotations:
        index["manifests"][0]["annotations"] = annotations
    files["index.json"] = json.dumps(index).encode()
    return write_tar(tmp_path / "retagged.tar", files)


@pytest.mark.parametrize(
    ("annotations", "tag", "expected"),
    [
        ({"org.opencontainers.image.ref.name": "1.0"}, None, None),
        ({"org.opencontainers.image.ref.name": "1.0"}, "repo", "repo:1.0"),
        ({"org.opencontainers.image.ref.name": "1.0"}, "repo:2", "repo:2"),
        ({"org.opencontainers.image.ref.name": "example.com/x/y:3"}, "repo", "example.com/x/y:3"),
        ({"org.opencontainers.image.ref.name": "1.0", "io.containerd.image.name": "docker.io/x/y:4"}, None, "x/y:4"),
        (None, None, None),
        (None, "repo", "repo:latest"),
        (None, "localhost:5000/repo:5", "localhost:5000/repo:5"),
    ],
)
def test_names_from_annotations_and_the_tag_argument(
    tmp_path: Path,
    source: image_store.ImageStore,
    annotations: dict[str, str] | None,
    tag: str | None,
    expected: str | None,
) -> None:
    path = _retagged_oci(tmp_path, source, annotations)
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    image = source.image("app:1")
    loaded = archive.load(fresh, str(path), tag=tag)
    if expected is None:
        assert loaded == [image.id]
        assert fresh.refs() == {}
    else:
        assert loaded == [expected]
        assert fresh.image(expected).id == image.id


def test_tag_argument_with_a_digest_is_refused(tmp_path: Path, source: image_store.ImageStore) -> None:
    path = tmp_path / "out.tar"
    archive.save(source, ["app:1"], str(path))
    with pytest.raises(archive.ArchiveError, match="digest"):
        archive.load(image_store.ImageStore(str(tmp_path / "fresh")), str(path), tag="x@sha256:" + "a" * 64)


def _platform_image(store: image_store.ImageStore, architecture: str) -> tuple[bytes, bytes]:
    """A manifest and config for ``architecture`` over busybox:1.36's layer."""
    base = store.image("busybox:1.36")
    config = oci.canonical({**base.config, "architecture": architecture})
    manifest = oci.new_manifest(oci.Descriptor(oci.OCI_CONFIG, sha256(config), len(config)), list(base.layers))
    return manifest, config


def test_multi_platform_index_loads_every_platform_and_tags_the_hosts(
    tmp_path: Path, source: image_store.ImageStore
) -> None:
    host = oci.host_platform()
    other = "s390x" if host["architecture"] != "s390x" else "amd64"
    layer = source.image("busybox:1.36").layers[0]
    files = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        blob_name(layer.digest): source.content.read(layer.digest),
    }
    children = []
    for architecture in (other, host["architecture"]):
        manifest, config = _platform_image(source, architecture)
        files[blob_name(sha256(manifest))] = manifest
        files[blob_name(sha256(config))] = config
        platform = {"os": "linux", "architecture": architecture}
        children.append(oci.Descriptor(oci.OCI_MANIFEST, sha256(manifest), len(manifest), platform=platform).to_json())
    # a platform whose blobs were left out, as docker save does for platforms it has not pulled
    children.append(
        {
            "mediaType": oci.OCI_MANIFEST,
            "digest": "sha256:" + "e" * 64,
            "size": 10,
            "platform": {"os": "linux", "architecture": "riscv64"},
        }
    )
    index = oci.canonical({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": children})
    files[blob_name(sha256(index))] = index
    annotations = {"io.containerd.image.name": "docker.io/library/multi:1", "org.opencontainers.image.ref.name": "1"}
    top = oci.Descriptor(oci.OCI_INDEX, sha256(index), len(index), annotations=annotations)
    files["index.json"] = oci.canonical({"schemaVersion": 2, "manifests": [top.to_json()]})
    path = write_tar(tmp_path / "multi.tar", files)

    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    assert archive.load(fresh, str(path)) == ["multi:1"]
    assert fresh.image("multi:1").config["architecture"] == host["architecture"]
    assert fresh.content.has(children[0]["digest"])  # the other platform is stored, untagged
    assert_busybox_files(fresh, "multi:1")


def test_docker_archive_with_symlinked_layers_as_old_docker_wrote(
    tmp_path: Path, source: image_store.ImageStore
) -> None:
    saved = tmp_path / "saved.tar"
    archive.save(source, ["busybox:1.36", "app:1"], str(saved), format="docker-archive")
    files = members(saved)
    manifest = json.loads(files["manifest.json"])
    shared = manifest[0]["Layers"][0]
    # app:1's first layer becomes a v1-id directory whose layer.tar links to busybox's
    manifest[1]["Layers"][0] = "v1id/layer.tar"
    files["manifest.json"] = json.dumps(manifest).encode()
    path = write_tar(tmp_path / "linked.tar", files, specials=[link("v1id/layer.tar", f"../{shared}")])
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    assert archive.load(fresh, str(path)) == ["busybox:1.36", "app:1"]
    assert fresh.image("app:1").id == source.image("app:1").id


# --- skopeo, the peer ------------------------------------------------------------------


def test_skopeo_inspects_our_oci_archive(tmp_path: Path, source: image_store.ImageStore) -> None:
    path = tmp_path / "out.tar"
    archive.save(source, ["app:1"], str(path))
    image = source.image("app:1")
    found = json.loads(skopeo(tmp_path, "inspect", f"oci-archive:{path}"))
    assert found["Digest"] == image.manifest_digest
    assert found["Layers"] == [layer.digest for layer in image.layers]
    config = skopeo(tmp_path, "inspect", "--config", "--raw", f"oci-archive:{path}")
    assert sha256(config.encode()) == image.id


def test_skopeo_inspects_our_docker_archive(tmp_path: Path, source: image_store.ImageStore) -> None:
    path = tmp_path / "out.tar"
    archive.save(source, ["app:1"], str(path), format="docker-archive")
    image = source.image("app:1")
    found = json.loads(skopeo(tmp_path, "inspect", f"docker-archive:{path}"))
    assert found["Layers"] == list(image.diff_ids)  # plain tars: their digests are the diff-ids
    config = skopeo(tmp_path, "inspect", "--config", "--raw", f"docker-archive:{path}")
    assert sha256(config.encode()) == image.id
    raw = json.loads(skopeo(tmp_path, "inspect", "--raw", f"docker-archive:{path}"))
    assert raw["config"]["digest"] == image.id


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("docker-archive:{path}:example.com/team/app:2", "example.com/team/app:2"),
        ("oci-archive:{path}:app:3", "app:3"),
    ],
)
def test_we_load_what_skopeo_copies_from_our_archive(
    tmp_path: Path, source: image_store.ImageStore, destination: str, expected: str
) -> None:
    ours = tmp_path / "ours.tar"
    archive.save(source, ["app:1"], str(ours))
    theirs = tmp_path / "theirs.tar"
    skopeo(tmp_path, "copy", "-q", f"oci-archive:{ours}", destination.format(path=theirs))
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    assert archive.load(fresh, str(theirs)) == [expected]
    image = fresh.image(expected)
    assert image.id == source.image("app:1").id
    assert fresh.config(expected).cmd == ["/bin/cat", "/app/hello.txt"]
    assert (Path(fresh.layers(expected)[0]) / "app/hello.txt").read_bytes() == b"hello\n"
    assert_busybox_files(fresh, expected)


def test_we_load_skopeos_unnamed_oci_archive_of_our_docker_archive(
    tmp_path: Path, source: image_store.ImageStore
) -> None:
    ours = tmp_path / "ours.tar"
    archive.save(source, ["busybox:1.36"], str(ours), format="docker-archive")
    theirs = tmp_path / "theirs.tar"
    skopeo(tmp_path, "copy", "-q", f"docker-archive:{ours}", f"oci-archive:{theirs}")
    fresh = image_store.ImageStore(str(tmp_path / "fresh"))
    assert archive.load(fresh, str(theirs), tag="mine") == ["mine:latest"]
    # skopeo re-serialises the config when it converts (another key order), so the ID
    # differs; the content does not
    loaded, original = fresh.image("mine:latest"), source.image("busybox:1.36")
    assert loaded.config == original.config
    assert loaded.diff_ids == original.diff_ids
    assert_busybox_files(fresh, "mine:latest")


# --- save errors -----------------------------------------------------------------------


def test_save_of_an_unknown_image_writes_nothing(tmp_path: Path, source: image_store.ImageStore) -> None:
    path = tmp_path / "out.tar"
    with pytest.raises(archive.ArchiveError, match=r"out\.tar: cannot save nope:1: no such image"):
        archive.save(source, ["busybox:1.36", "nope:1"], str(path))
    with pytest.raises(archive.ArchiveError, match="no image to save"):
        archive.save(source, [], str(path))
    with pytest.raises(archive.ArchiveError, match="unknown archive format"):
        archive.save(source, ["app:1"], str(path), format="zip")  # type: ignore[arg-type]
    assert sorted(os.listdir(tmp_path)) == ["rootfs.tar.gz", "source"]


@pytest.mark.parametrize("format", FORMATS)
def test_save_of_a_corrupt_blob_fails_and_leaves_no_file(
    tmp_path: Path, source: image_store.ImageStore, format: archive.Format
) -> None:
    layer = source.image("busybox:1.36").layers[0].digest
    blob = Path(source.content.path(layer))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(archive.ArchiveError, match=r"corrupt|decompress|CRC|hashes"):
        archive.save(source, ["busybox:1.36"], str(out / "x.tar"), format=format)
    assert os.listdir(out) == []
    assert not os.listdir(source.content.ingest_dir)


# --- hostile and corrupt archives --------------------------------------------------------


Maker = Callable[[Path, image_store.ImageStore], Path]


def _oci_files(tmp_path: Path, source: image_store.ImageStore) -> dict[str, bytes]:
    saved = tmp_path / "saved-oci.tar"
    archive.save(source, ["app:1"], str(saved))
    return members(saved)


def _docker_files(tmp_path: Path, source: image_store.ImageStore) -> dict[str, bytes]:
    saved = tmp_path / "saved-docker.tar"
    archive.save(source, ["app:1"], str(saved), format="docker-archive")
    return members(saved)


def _not_a_tar(tmp_path: Path, source: image_store.ImageStore) -> Path:
    path = tmp_path / "bad.tar"
    path.write_bytes(os.urandom(4096))
    return path


def _empty(tmp_path: Path, source: image_store.ImageStore) -> Path:
    path = tmp_path / "bad.tar"
    path.write_bytes(b"")
    return path


def _truncated(tmp_path: Path, source: image_store.ImageStore) -> Path:
    saved = tmp_path / "saved.tar"
    archive.save(source, ["app:1"], str(saved))
    path = tmp_path / "bad.tar"
    path.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    return path


def _dotdot(tmp_path: Path, source: image_store.ImageStore) -> Path:
    return write_tar(tmp_path / "bad.tar", {**_oci_files(tmp_path, source), "blobs/../../evil": b"x"})


def _absolute(tmp_path: Path, source: image_store.ImageStore) -> Path:
    return write_tar(tmp_path / "bad.tar", {"/etc/evil": b"x", **_oci_files(tmp_path, source)})


def _blob_mismatch(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _oci_files(tmp_path, source)
    layer = source.image("app:1").layers[1].digest
    files[blob_name(layer)] = layer_tar({"app/hello.txt": b"evil!\n"})
    return write_tar(tmp_path / "bad.tar", files)


def _big_blob_mismatch(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _oci_files(tmp_path, source)
    layer = source.image("app:1").layers[0].digest
    data = bytearray(files[blob_name(layer)])
    data[-100] ^= 0xFF
    files[blob_name(layer)] = bytes(data)
    return write_tar(tmp_path / "bad.tar", files)


def _index_missing_blob(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _oci_files(tmp_path, source)
    del files[blob_name(source.image("app:1").layers[1].digest)]
    return write_tar(tmp_path / "bad.tar", files)


def _no_layout(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _oci_files(tmp_path, source)
    del files["oci-layout"]
    return write_tar(tmp_path / "bad.tar", files)


def _bad_index_json(tmp_path: Path, source: image_store.ImageStore) -> Path:
    return write_tar(tmp_path / "bad.tar", {**_oci_files(tmp_path, source), "index.json": b"{not json"})


def _deeply_nested_json(tmp_path: Path, source: image_store.ImageStore) -> Path:
    return write_tar(tmp_path / "bad.tar", {**_oci_files(tmp_path, source), "index.json": b"[" * 200_000})


def _manifest_missing_layer(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _docker_files(tmp_path, source)
    manifest = json.loads(files["manifest.json"])
    del files[manifest[0]["Layers"][1]]
    return write_tar(tmp_path / "bad.tar", files)


def _manifest_missing_config(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _docker_files(tmp_path, source)
    del files[json.loads(files["manifest.json"])[0]["Config"]]
    return write_tar(tmp_path / "bad.tar", files)


def _config_name_mismatch(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _docker_files(tmp_path, source)
    name = json.loads(files["manifest.json"])[0]["Config"]
    config = json.loads(files[name])
    config["config"]["Cmd"] = ["/bin/evil"]
    files[name] = json.dumps(config).encode()
    return write_tar(tmp_path / "bad.tar", files)


def _manifest_layer_dotdot(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _docker_files(tmp_path, source)
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"][1] = "../../etc/passwd"
    files["manifest.json"] = json.dumps(manifest).encode()
    return write_tar(tmp_path / "bad.tar", files)


def _manifest_config_absolute(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _docker_files(tmp_path, source)
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Config"] = "/etc/passwd"
    files["manifest.json"] = json.dumps(manifest).encode()
    return write_tar(tmp_path / "bad.tar", files)


def _diff_id_mismatch(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _docker_files(tmp_path, source)
    manifest = json.loads(files["manifest.json"])
    files[manifest[0]["Layers"][1]] = layer_tar({"app/hello.txt": b"evil!\n"})
    return write_tar(tmp_path / "bad.tar", files)


def _no_metadata(tmp_path: Path, source: image_store.ImageStore) -> Path:
    return write_tar(tmp_path / "bad.tar", {"hello.txt": b"hello"})


def _symlink_out_of_oci(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _oci_files(tmp_path, source)
    layer = blob_name(source.image("app:1").layers[1].digest)
    del files[layer]
    return write_tar(tmp_path / "bad.tar", files, specials=[link(layer, "/etc/passwd")])


def _symlink_inside_oci(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _oci_files(tmp_path, source)
    layer = blob_name(source.image("app:1").layers[1].digest)
    files["elsewhere"] = files.pop(layer)
    return write_tar(tmp_path / "bad.tar", files, specials=[link(layer, "../../elsewhere")])


def _symlink_out_of_docker(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _docker_files(tmp_path, source)
    layer = json.loads(files["manifest.json"])[0]["Layers"][1]
    del files[layer]
    return write_tar(tmp_path / "bad.tar", files, specials=[link(layer, "../../../etc/passwd")])


def _hardlink_out_of_docker(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _docker_files(tmp_path, source)
    layer = json.loads(files["manifest.json"])[0]["Layers"][1]
    del files[layer]
    return write_tar(tmp_path / "bad.tar", files, specials=[link(layer, "/etc/passwd", hard=True)])


def _device_member(tmp_path: Path, source: image_store.ImageStore) -> Path:
    device = tarfile.TarInfo("dev-null")
    device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
    return write_tar(tmp_path / "bad.tar", _oci_files(tmp_path, source), specials=[device])


def _duplicate_member(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _docker_files(tmp_path, source)
    path = write_tar(tmp_path / "bad.tar", files)
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"[]"))
    return path


def _compressed_diff_id_mismatch(tmp_path: Path, source: image_store.ImageStore) -> Path:
    """A gzip layer whose config diff-id is wrong: found only when unpacking."""
    files = _oci_files(tmp_path, source)
    image = source.image("app:1")
    config = json.loads(files[blob_name(image.id)])
    config["rootfs"]["diff_ids"][0] = "sha256:" + "0" * 64
    config_bytes = oci.canonical(config)
    manifest = oci.new_manifest(
        oci.Descriptor(oci.OCI_CONFIG, sha256(config_bytes), len(config_bytes)), list(image.layers)
    )
    del files[blob_name(image.id)], files[blob_name(image.manifest_digest)]
    files[blob_name(sha256(config_bytes))] = config_bytes
    files[blob_name(sha256(manifest))] = manifest
    index = json.loads(files["index.json"])
    index["manifests"][0].update(digest=sha256(manifest), size=len(manifest))
    files["index.json"] = json.dumps(index).encode()
    return write_tar(tmp_path / "bad.tar", files)


def _ambiguous_name(tmp_path: Path, source: image_store.ImageStore) -> Path:
    saved = tmp_path / "saved.tar"
    archive.save(source, ["app:1", "busybox:1.36"], str(saved))
    files = members(saved)
    index = json.loads(files["index.json"])
    for entry in index["manifests"]:
        entry["annotations"] = {"io.containerd.image.name": "docker.io/library/same:1"}
    files["index.json"] = json.dumps(index).encode()
    return write_tar(tmp_path / "bad.tar", files)


def _bad_ref_name(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _oci_files(tmp_path, source)
    index = json.loads(files["index.json"])
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "../../Evil Name"}
    files["index.json"] = json.dumps(index).encode()
    return write_tar(tmp_path / "bad.tar", files)


def _bad_bare_ref_name(tmp_path: Path, source: image_store.ImageStore) -> Path:
    files = _oci_files(tmp_path, source)
    index = json.loads(files["index.json"])
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "Evil Name"}
    files["index.json"] = json.dumps(index).encode()
    return write_tar(tmp_path / "bad.tar", files)


HOSTILE: list[tuple[Maker, str, bool]] = [
    # maker, what the error says, whether verified blobs may have been committed before it
    (_not_a_tar, "not a tar archive", False),
    (_empty, "not a tar archive", False),
    (_truncated, "corrupt or truncated|not in the archive", False),
    (_dotdot, r"'\.\.' in its name", False),
    (_absolute, "absolute name", False),
    (_blob_mismatch, "does not match its name", False),
    (_big_blob_mismatch, "does not match its name", False),
    (_index_missing_blob, "not in the archive", False),
    (_no_layout, "no oci-layout", False),
    (_bad_index_json, "index.json' is not valid JSON", False),
    (_deeply_nested_json, "index.json' is not valid JSON", False),
    (_manifest_missing_layer, "manifest.json entry 0 names .*layer.tar', which is not in the archive", False),
    (_manifest_missing_config, r"manifest.json entry 0 names '[0-9a-f]{64}\.json', which is not in the archive", False),
    (_config_name_mismatch, "does not match its name", False),
    (_manifest_layer_dotdot, "manifest.json entry 0 layer '../../etc/passwd' has '..' in its name", False),
    (_manifest_config_absolute, "manifest.json entry 0 Config '/etc/passwd' is an absolute name", False),
    (_diff_id_mismatch, "but its image config says", False),
    (_no_metadata, "not an image archive", False),
    (_symlink_out_of_oci, "outside the archive", False),
    (_symlink_inside_oci, "which is a link: an OCI layout has only regular files", False),
    (_symlink_out_of_docker, "outside the archive", False),
    (_hardlink_out_of_docker, "outside the archive", False),
    (_device_member, "not a regular file, directory or link", False),
    (_duplicate_member, "appears twice", False),
    (_compressed_diff_id_mismatch, "unpacks to", True),
    (_ambiguous_name, "same:1: 2 different images", False),
    (_bad_ref_name, "invalid image reference '../../Evil Name'", False),
    (_bad_bare_ref_name, "invalid tag 'Evil Name'", False),
]


@pytest.mark.parametrize(
    ("maker", "message", "may_commit"), HOSTILE, ids=[m.__name__.strip("_") for m, _, _ in HOSTILE]
)
def test_hostile_archive_fails_clearly_and_leaves_the_store_as_it_was(
    tmp_path: Path,
    source: image_store.ImageStore,
    target: image_store.ImageStore,
    maker: Maker,
    message: str,
    may_commit: bool,
) -> None:
    path = maker(tmp_path, source)
    refs, blobs, ingests = store_state(target)
    with pytest.raises(archive.ArchiveError, match=message) as caught:
        archive.load(target, str(path))
    assert str(caught.value).startswith(f"{path}: ")
    after_refs, after_blobs, after_ingests = store_state(target)
    assert after_refs == refs
    assert after_ingests == ingests == []
    if not may_commit:
        assert after_blobs == blobs
    assert target.image("existing:1")


def test_load_of_a_missing_file(tmp_path: Path, target: image_store.ImageStore) -> None:
    with pytest.raises(archive.ArchiveError, match=r"nope\.tar: cannot open"):
        archive.load(target, str(tmp_path / "nope.tar"))
