"""Pull and push over the OCI distribution protocol, against Debian's real
``docker-registry`` on loopback, with skopeo and umoci as independent peers, and
against a hand-made server for faults a real registry will not produce on demand.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import random
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.images import oci
from reconciler.images.distribution import (
    ProgressEvent,
    RegistryConfig,
    RegistryError,
    credentials,
    login,
    logout,
    pull,
    push,
    rich_progress,
)
from reconciler.images.distribution import config as dconfig
from reconciler.images.distribution.client import parse_challenge
from reconciler.images.store import ImageError, ImageStore
from tests.registry_fixtures import (
    REGISTRY_BINARY,
    DockerRegistry,
    busybox_tar,
    docker_registry,
    fake_registry,
    file_tar,
    htpasswd_line,
    make_image,
    no_ingests,
    sha256,
)

needs_registry = pytest.mark.skipif(not os.path.exists(REGISTRY_BINARY), reason="docker-registry is not installed")
needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
needs_umoci = pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed")


@pytest.fixture
def cfg(tmp_path: Path) -> RegistryConfig:
    """Fast retries, no credentials from the host's Docker config."""
    return RegistryConfig(
        attempts=3, backoff=0.01, max_backoff=0.05, timeout=10, docker_config=str(tmp_path / "no-docker.json")
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    if not os.path.exists(REGISTRY_BINARY):
        pytest.skip("docker-registry is not installed")
    with docker_registry(str(tmp_path / "registry")) as running:
        yield running


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    if not os.path.exists(REGISTRY_BINARY):
        pytest.skip("docker-registry is not installed")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(htpasswd_line("alice", "s3cret") + "\n")
    with docker_registry(str(tmp_path / "auth-registry"), htpasswd=str(htpasswd)) as running:
        yield running


def new_store(tmp_path: Path, name: str) -> ImageStore:
    return ImageStore(str(tmp_path / name))


def assert_unpacked(store: ImageStore, reference: str) -> None:
    lowers = store.layers(reference)
    assert any(os.path.isfile(os.path.join(d, "bin", "busybox")) for d in lowers)


def docker_config(tmp_path: Path, registry: str, user: str, password: str) -> str:
    """A Docker config file of its own for these credentials."""
    path = tmp_path / f"docker-config-{user}-{password}.json"
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry: {"auth": token}}}))
    return str(path)


# --- pure parts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "registry", "host", "repository", "manifest_ref"),
    [
        ("busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest"),
        ("user/app:1", "docker.io", "registry-1.docker.io", "user/app", "1"),
        ("docker.io/busybox:1", "docker.io", "registry-1.docker.io", "library/busybox", "1"),
        ("index.docker.io/library/alpine", "docker.io", "registry-1.docker.io", "library/alpine", "latest"),
        ("127.0.0.1:5000/a/b:x", "127.0.0.1:5000", "127.0.0.1:5000", "a/b", "x"),
        ("localhost/app", "localhost", "localhost", "app", "latest"),
        ("quay.io/org/app@sha256:" + "a" * 64, "quay.io", "quay.io", "org/app", "sha256:" + "a" * 64),
    ],
)
def test_references_resolve_as_docker_does(reference, registry, host, repository, manifest_ref) -> None:
    target = dconfig.parse_target(reference)
    assert (target.registry, target.host, target.repository, target.reference) == (
        registry,
        host,
        repository,
        manifest_ref,
    )


@pytest.mark.parametrize("reference", ["", "Busybox", "a:b:c", "x@sha256:short"])
def test_bad_references_are_registry_errors(reference, tmp_path, cfg) -> None:
    with pytest.raises(RegistryError, match="reference"):
        pull(new_store(tmp_path, "root"), reference, config=cfg)


@pytest.mark.parametrize(
    ("registry", "insecure", "scheme"),
    [
        ("127.0.0.1:5000", (), "http"),
        ("127.3.4.5", (), "http"),
        ("localhost:5000", (), "http"),
        ("[::1]:5000", (), "http"),
        ("registry.example", (), "https"),
        ("10.0.0.8:5000", (), "https"),
        ("registry.example:5000", ("registry.example:5000",), "http"),
        ("registry.example:5000", ("registry.example",), "http"),
        ("10.0.0.8:5000", ("10.0.0.0/8",), "http"),
        ("10.0.0.8:5000", ("192.168.0.0/16",), "https"),
    ],
)
def test_plain_http_only_for_loopback_and_listed_registries(registry, insecure, scheme) -> None:
    target = dconfig.parse_target(f"{registry}/app")
    assert dconfig.base_url(target, RegistryConfig(insecure=insecure)).startswith(f"{scheme}://")


def test_challenges_parse_with_quoted_commas() -> None:
    header = 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    assert parse_challenge(header) == (
        "bearer",
        {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull,push"},
    )
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_docker_config_formats(tmp_path) -> None:
    path = tmp_path / "config.json"
    auth = base64.b64encode(b"bob:pw:with:colons").decode()
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": auth},
                    "http://reg.example:5000/v2/": {"username": "carol", "password": "pw2"},
                    "broken.example": {"auth": "!!!not base64"},
                }
            }
        )
    )
    assert credentials.find_in(str(path), "docker.io") == credentials.Credentials("bob", "pw:with:colons")
    assert credentials.find_in(str(path), "reg.example:5000") == credentials.Credentials("carol", "pw2")
    assert credentials.find_in(str(path), "other.example") is None
    with pytest.raises(RegistryError, match="not base64"):
        credentials.find_in(str(path), "broken.example")
    assert "pw" not in repr(credentials.Credentials("bob", "pw"))


def test_docker_config_env_and_root_auth_precedence(tmp_path, monkeypatch) -> None:
    directory = tmp_path / "dockercfg"
    directory.mkdir()
    (directory / "config.json").write_text(
        json.dumps({"auths": {"reg.example": {"username": "fromdocker", "password": "a"}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    root = tmp_path / "root"
    assert credentials.lookup("reg.example", root=str(root)) == credentials.Credentials("fromdocker", "a")
    credentials.store(str(root), "reg.example", credentials.Credentials("fromroot", "b"))
    assert credentials.lookup("reg.example", root=str(root)) == credentials.Credentials("fromroot", "b")
    assert stat.S_IMODE(os.stat(root / "auth.json").st_mode) == 0o600
    assert logout(str(root), "reg.example") is True
    assert credentials.lookup("reg.example", root=str(root)) == credentials.Credentials("fromdocker", "a")
    assert logout(str(root), "reg.example") is False


def test_rich_progress_draws_from_events() -> None:
    from rich.console import Console

    out = io.StringIO()
    with rich_progress(Console(file=out, force_terminal=False, width=100)) as callback:
        callback(ProgressEvent("sha256:" + "ab" * 32, 100, 0, "downloading"))
        callback(ProgressEvent("sha256:" + "ab" * 32, 100, 100, "done"))
    assert "abababababab" in out.getvalue()


# --- the real registry -----------------------------------------------------------


@needs_registry
def test_push_then_pull_into_a_fresh_store(registry, tmp_path, cfg) -> None:
    source = new_store(tmp_path, "a")
    ref = f"{registry.host}/tests/busybox:1"
    image = make_image(source, ref, [busybox_tar(), file_tar({"etc/motd": b"hello\n"})], compress=True)
    events: list[ProgressEvent] = []
    digest = push(source, ref, progress=events.append, config=cfg)
    assert digest == image.manifest_digest
    assert {e.phase for e in events} >= {"uploading", "done"}

    target = new_store(tmp_path, "b")
    events.clear()
    pulled = pull(target, ref, progress=events.append, config=cfg)
    assert pulled.manifest_digest == image.manifest_digest
    assert pulled.id == image.id
    assert target.image(ref).id == image.id
    assert target.refs()[ref]["source"] == f"{registry.host}/tests/busybox@{digest}"
    assert target.fsck() == []
    assert no_ingests(target)
    assert {e.phase for e in events} >= {"downloading", "done"}
    assert_unpacked(target, ref)

    # a second pull finds every blob and pushes nothing new
    events.clear()
    assert pull(target, ref, progress=events.append, config=cfg).id == image.id
    assert {e.phase for e in events if e.phase != "unpacked"} <= {"exists"}
    events.clear()
    assert push(source, ref, progress=events.append, config=cfg) == digest
    assert {e.phase for e in events} == {"exists"}


@needs_registry
@needs_skopeo
def test_skopeo_reads_what_we_push(registry, tmp_path, cfg) -> None:
    store = new_store(tmp_path, "root")
    ref = f"{registry.host}/tests/seen-by-skopeo:v1"
    image = make_image(store, ref, [busybox_tar()])
    push(store, ref, config=cfg)
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"], check=True, capture_output=True, text=True
    )
    inspected = json.loads(out.stdout)
    assert inspected["Digest"] == image.manifest_digest
    assert inspected["Layers"] == [layer.digest for layer in image.layers]


def _umoci_layout(tmp_path: Path) -> str:
    """An OCI layout made by umoci from directory trees, two layers: nothing of
    ours involved. (``umoci unpack``/``repack``: 0.4.7's ``insert`` writes a tar
    without its end-of-archive blocks.)"""
    layout = str(tmp_path / "umoci-layout")

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True)

    umoci("init", "--layout", layout)
    umoci("new", "--image", f"{layout}:t")
    first, second = tmp_path / "bundle1", tmp_path / "bundle2"
    umoci("unpack", "--image", f"{layout}:t", str(first))
    (first / "rootfs" / "bin").mkdir()
    shutil.copy("/bin/busybox", first / "rootfs" / "bin" / "busybox")
    os.symlink("busybox", first / "rootfs" / "bin" / "sh")
    umoci("repack", "--image", f"{layout}:t", str(first))
    umoci("unpack", "--image", f"{layout}:t", str(second))
    (second / "rootfs" / "etc").mkdir()
    (second / "rootfs" / "etc" / "made-by").write_text("umoci\n")
    umoci("repack", "--image", f"{layout}:t", str(second))
    return layout


@needs_registry
@needs_skopeo
@needs_umoci
@pytest.mark.parametrize("form", ["oci", "v2s2"])
def test_pull_an_image_made_by_umoci_and_copied_by_skopeo(registry, tmp_path, cfg, form) -> None:
    layout = _umoci_layout(tmp_path)
    ref = f"{registry.host}/external/{form}:t"
    subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", "--format", form, f"oci:{layout}:t", f"docker://{ref}"],
        check=True,
        capture_output=True,
    )
    store = new_store(tmp_path, "root")
    image = pull(store, ref, config=cfg)
    expected_layer = oci.OCI_LAYER_GZIP if form == "oci" else oci.DOCKER_LAYER_GZIP
    assert [layer.media_type for layer in image.layers] == [expected_layer, expected_layer]
    expected_manifest = oci.OCI_MANIFEST if form == "oci" else oci.DOCKER_MANIFEST
    assert image.manifest_media_type == expected_manifest
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"], check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout)["Digest"] == image.manifest_digest
    assert_unpacked(store, ref)
    assert any(os.path.isfile(os.path.join(d, "etc", "made-by")) for d in store.layers(ref))


def _push_index(registry: DockerRegistry, store: ImageStore, cfg: RegistryConfig) -> dict[str, str]:
    """Two platform images pushed by digest, then an OCI index naming both, PUT by hand."""
    digests: dict[str, str] = {}
    entries = []
    for arch in ("amd64", "arm64"):
        local = f"{registry.host}/multi/app:{arch}"
        image = make_image(store, local, [busybox_tar({"etc/arch": arch.encode()})], architecture=arch)
        push(store, local, config=cfg)
        digests[arch] = image.manifest_digest
        size = len(store.content.read(image.manifest_digest))
        platform = {"os": "linux", "architecture": arch, **({"variant": "v8"} if arch == "arm64" else {})}
        entries.append(
            {"mediaType": oci.OCI_MANIFEST, "digest": image.manifest_digest, "size": size, "platform": platform}
        )
    index = oci.canonical({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": entries})
    response = httpx.put(
        f"{registry.url}/v2/multi/app/manifests/both", content=index, headers={"Content-Type": oci.OCI_INDEX}
    )
    assert response.status_code == 201, response.text
    digests["index"] = sha256(index)
    return digests


@needs_registry
def test_an_index_resolves_to_the_platform(registry, tmp_path, cfg) -> None:
    digests = _push_index(registry, new_store(tmp_path, "maker"), cfg)
    ref = f"{registry.host}/multi/app:both"
    store = new_store(tmp_path, "root")
    assert oci.host_platform()["architecture"] == "amd64", "this test assumes an amd64 host"
    assert pull(store, ref, config=cfg, unpack=False).manifest_digest == digests["amd64"]
    other = new_store(tmp_path, "other")
    arm = pull(other, ref, platform={"os": "linux", "architecture": "arm64"}, config=cfg, unpack=False)
    assert arm.manifest_digest == digests["arm64"]
    assert arm.config["architecture"] == "arm64"
    with pytest.raises(RegistryError, match=r"no manifest for platform linux/s390x \(the index has: linux/amd64, "):
        pull(new_store(tmp_path, "s390x"), ref, platform={"os": "linux", "architecture": "s390x"}, config=cfg)
    assert new_store(tmp_path, "s390x").refs() == {}
    # by the index's digest, too
    by_digest = f"{registry.host}/multi/app@{digests['index']}"
    assert pull(new_store(tmp_path, "d"), by_digest, config=cfg, unpack=False).manifest_digest == digests["amd64"]


@needs_registry
def test_unknown_tag_and_repository_are_clear_errors(registry, tmp_path, cfg) -> None:
    store = new_store(tmp_path, "root")
    make_image(store, "keep:1", [busybox_tar()])
    make_image(store, f"{registry.host}/known/app:1", [busybox_tar()])
    push(store, f"{registry.host}/known/app:1", config=cfg)
    with pytest.raises(RegistryError) as caught:
        pull(store, f"{registry.host}/known/app:nope", config=cfg)
    assert f"manifest unknown: nope not found in {registry.host}/known/app" in str(caught.value)
    assert caught.value.registry == registry.host and caught.value.repository == "known/app"
    with pytest.raises(RegistryError, match=f"manifest unknown: 1 not found in {registry.host}/unknown/repo"):
        pull(store, f"{registry.host}/unknown/repo:1", config=cfg)
    assert set(store.refs()) == {"keep:1", f"{registry.host}/known/app:1"}
    assert no_ingests(store)


@needs_registry
def test_registry_gone_is_an_error_after_retries(registry, tmp_path, cfg) -> None:
    store = new_store(tmp_path, "root")
    make_image(store, "keep:1", [busybox_tar()])
    registry.stop()
    with pytest.raises(RegistryError) as caught:
        pull(store, f"{registry.host}/any/app:1", config=cfg)
    message = str(caught.value)
    assert f"pull {registry.host}/any/app:1" in message and "ConnectError" in message
    assert "gave up after 3 attempts" in message
    assert list(store.refs()) == ["keep:1"]


@needs_registry
def test_push_mounts_across_repositories(registry, tmp_path, cfg) -> None:
    maker = new_store(tmp_path, "maker")
    a_ref = f"{registry.host}/team/a:1"
    make_image(maker, a_ref, [busybox_tar(), file_tar({"etc/a": b"a"})])
    push(maker, a_ref, config=cfg)

    store = new_store(tmp_path, "root")
    image = pull(store, a_ref, config=cfg, unpack=False)
    b_ref = f"{registry.host}/team/b:1"
    store.tag(b_ref, image.manifest_digest)  # a plain retag: the source is found through the manifest
    events: list[ProgressEvent] = []
    assert push(store, b_ref, progress=events.append, config=cfg) == image.manifest_digest
    phases = {e.digest: e.phase for e in events}
    assert phases == {d: "mounted" for d in (image.config_digest, *(layer.digest for layer in image.layers))}
    log = registry.log()
    for digest in (image.config_digest, *(layer.digest for layer in image.layers)):
        mount = f"mount={digest.replace(':', '%3A')}&from=team%2Fa"
        assert f'"POST /v2/team/b/blobs/uploads/?{mount} HTTP/1.1" 201' in log
    assert "PATCH /v2/team/b" not in log
    fresh = new_store(tmp_path, "fresh")
    assert pull(fresh, b_ref, config=cfg, unpack=False).manifest_digest == image.manifest_digest


@needs_registry
def test_chunked_uploads_past_the_threshold(registry, tmp_path, cfg) -> None:
    store = new_store(tmp_path, "root")
    ref = f"{registry.host}/chunked/app:1"
    noise = random.Random(7).randbytes(300_000)
    image = make_image(store, ref, [busybox_tar(), file_tar({"noise": noise})], compress=True)
    small = dataclasses.replace(cfg, chunk_threshold=4096, chunk_size=100_000)
    assert push(store, ref, config=small) == image.manifest_digest
    log = registry.log()
    big = [layer.size for layer in image.layers if layer.size > 4096]
    assert log.count('"PATCH /v2/chunked/app/blobs/uploads/') == sum(-(-size // 100_000) for size in big)
    assert "PUT /v2/chunked/app/blobs/uploads/" in log
    fresh = new_store(tmp_path, "fresh")
    assert pull(fresh, ref, config=cfg).id == image.id
    assert fresh.fsck() == []
    assert_unpacked(fresh, ref)


@needs_registry
def test_push_of_a_missing_image_says_so(registry, tmp_path, cfg) -> None:
    with pytest.raises(RegistryError, match="no such image"):
        push(new_store(tmp_path, "root"), f"{registry.host}/nothing/here:1", config=cfg)


# --- basic auth ----------------------------------------------------------------------


@needs_registry
def test_basic_auth_wrong_missing_and_right_credentials(auth_registry, tmp_path, cfg) -> None:
    store = new_store(tmp_path, "root")
    ref = f"{auth_registry.host}/private/app:1"
    image = make_image(store, ref, [busybox_tar()])

    with pytest.raises(RegistryError, match=f"authentication required for {auth_registry.host}: no credentials"):
        push(store, ref, config=cfg)
    wrong = dataclasses.replace(cfg, docker_config=docker_config(tmp_path, auth_registry.host, "alice", "x"))
    with pytest.raises(RegistryError, match=f"wrong credentials for {auth_registry.host}"):
        push(store, ref, config=wrong)
    right_file = docker_config(tmp_path, f"http://{auth_registry.host}", "alice", "s3cret")
    right = dataclasses.replace(cfg, docker_config=right_file)
    assert push(store, ref, config=right) == image.manifest_digest

    fresh = new_store(tmp_path, "fresh")
    with pytest.raises(RegistryError, match="wrong credentials"):
        pull(fresh, ref, config=wrong)
    assert fresh.refs() == {} and no_ingests(fresh)
    assert pull(fresh, ref, config=right).id == image.id


@needs_registry
def test_login_checks_then_stores_credentials(auth_registry, tmp_path, cfg) -> None:
    root = tmp_path / "root"
    store = ImageStore(str(root))
    ref = f"{auth_registry.host}/private/app:1"
    image = make_image(store, ref, [busybox_tar()])

    with pytest.raises(RegistryError, match="wrong credentials"):
        login(str(root), auth_registry.host, "alice", "nope", config=cfg)
    assert not (root / "auth.json").exists()
    login(str(root), auth_registry.host, "alice", "s3cret", config=cfg)
    assert stat.S_IMODE(os.stat(root / "auth.json").st_mode) == 0o600
    assert push(store, ref, config=cfg) == image.manifest_digest  # credentials from ROOT/auth.json
    store.untag(ref)
    assert pull(store, ref, config=cfg, unpack=False).id == image.id


# --- a hand-made registry: bearer tokens and faults -----------------------------------


def _served_image(tmp_path: Path, name: str = "maker", layers: int = 3):
    maker = new_store(tmp_path, name)
    tars = [busybox_tar()] + [file_tar({f"data/{i}": random.Random(i).randbytes(200_000)}) for i in range(layers - 1)]
    return maker, make_image(maker, None, tars, compress=True)


def test_bearer_token_flow(tmp_path, cfg) -> None:
    maker, image = _served_image(tmp_path)
    with fake_registry(token="tok-123") as fake:
        fake.add_store_image("1", maker, image)
        store = new_store(tmp_path, "root")
        pulled = pull(store, f"{fake.host}/org/app:1", config=cfg)
    assert pulled.id == image.id
    assert len(fake.token_requests) == 1  # cached for the scope, shared by the parallel downloads
    query = fake.token_requests[0]["query"]
    assert query == {"service": ["fake"], "scope": ["repository:org/app:pull"]}
    assert fake.token_requests[0]["authorization"] == ""  # anonymous
    served = [(m, p, a) for m, p, a in fake.requests if "/manifests/" in p or "/blobs/" in p]
    assert served and all(a == "Bearer tok-123" for _, _, a in served)
    assert fake.count("GET", "/blobs/") == 1 + len(image.layers)


def test_bearer_token_with_credentials(tmp_path, cfg) -> None:
    maker, image = _served_image(tmp_path, layers=1)
    with fake_registry(token="tok-456", token_user=("dave", "pw")) as fake:
        fake.add_store_image("1", maker, image)
        store = new_store(tmp_path, "root")
        with pytest.raises(RegistryError, match=f"authentication required for {fake.host}: no credentials"):
            pull(store, f"{fake.host}/org/app:1", config=cfg)
        good = dataclasses.replace(cfg, docker_config=docker_config(tmp_path, fake.host, "dave", "pw"))
        assert pull(store, f"{fake.host}/org/app:1", config=good, unpack=False).id == image.id
        expected = "Basic " + base64.b64encode(b"dave:pw").decode()
        assert fake.token_requests[-1]["authorization"] == expected
        root = tmp_path / "login-root"
        with pytest.raises(RegistryError, match="wrong credentials"):
            login(str(root), fake.host, "dave", "bad", config=cfg)
        login(str(root), fake.host, "dave", "pw", config=cfg)
        assert pull(ImageStore(str(root)), f"{fake.host}/org/app:1", config=cfg, unpack=False).id == image.id


@pytest.mark.parametrize("status", [503, 502, 429])
def test_transient_statuses_are_retried(tmp_path, cfg, status) -> None:
    maker, image = _served_image(tmp_path, layers=2)
    with fake_registry(failure_status=status) as fake:
        fake.add_store_image("1", maker, image)
        blob = image.layers[1].digest
        fake.failures = {f"/v2/org/app/blobs/{blob}": 2, "/v2/org/app/manifests/1": 1}
        store = new_store(tmp_path, "root")
        assert pull(store, f"{fake.host}/org/app:1", config=cfg, unpack=False).id == image.id
    assert fake.count("GET", f"/blobs/{blob}") == 3
    assert fake.count("GET", "/manifests/1") == 2


def test_body_cut_short_fails_after_retries_and_leaves_nothing(tmp_path, cfg) -> None:
    maker, image = _served_image(tmp_path)
    store = new_store(tmp_path, "root")
    keep = make_image(store, "keep:1", [file_tar({"etc/keep": b"1"})])
    with fake_registry() as fake:
        fake.add_store_image("1", maker, image)
        broken = image.layers[-1]
        fake.truncate = {broken.digest}
        with pytest.raises(RegistryError) as caught:
            pull(store, f"{fake.host}/org/app:1", config=cfg)
    message = str(caught.value)
    assert f"pull {fake.host}/org/app:1" in message
    assert broken.digest in message and "gave up after 3 attempts" in message
    assert fake.count("GET", f"/blobs/{broken.digest}") == 3
    assert list(store.refs()) == ["keep:1"]
    assert not store.content.has(broken.digest)
    assert no_ingests(store)
    assert store.image("keep:1") == keep
    assert store.fsck() == []


def test_a_layer_that_cannot_be_unpacked_is_never_tagged(tmp_path, cfg) -> None:
    maker = new_store(tmp_path, "maker")
    image = make_image(maker, None, [busybox_tar(), b"this is not a tar archive" * 40])
    store = new_store(tmp_path, "root")
    with fake_registry() as fake:
        fake.add_store_image("1", maker, image)
        with pytest.raises(ImageError, match=image.layers[1].digest):
            pull(store, f"{fake.host}/org/app:1", config=cfg)
    assert store.refs() == {}
    assert not store.content.has(image.manifest_digest)
    assert no_ingests(store)


def test_wrong_bytes_are_refused_and_not_committed(tmp_path, cfg) -> None:
    maker, image = _served_image(tmp_path)
    store = new_store(tmp_path, "root")
    with fake_registry() as fake:
        fake.add_store_image("1", maker, image)
        bad = image.layers[0]
        fake.corrupt = {bad.digest}
        with pytest.raises(RegistryError, match=f"digest mismatch: expected {bad.digest}"):
            pull(store, f"{fake.host}/org/app:1", config=cfg)
    assert fake.count("GET", f"/blobs/{bad.digest}") == 1  # not a transient fault: not retried
    assert not store.content.has(bad.digest)
    assert not store.content.has(image.manifest_digest)
    assert store.refs() == {}
    assert no_ingests(store)


@pytest.mark.parametrize(
    ("layer_digest", "diff_id", "message"),
    [
        ("sha256:../../../etc/passwd", "sha256:" + "1" * 64, "malformed digest"),
        ("sha512:" + "ab" * 64, "sha256:" + "1" * 64, "only sha256 is supported"),
        (None, "sha256:../x", "malformed diff-ids"),
    ],
)
def test_hostile_manifests_are_refused(tmp_path, cfg, layer_digest, diff_id, message) -> None:
    layer = file_tar({"x": b"x"})
    config = oci.canonical(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    )
    descriptor = {"mediaType": oci.OCI_LAYER, "digest": layer_digest or sha256(layer), "size": len(layer)}
    manifest = oci.canonical(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": {"mediaType": oci.OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [descriptor],
        }
    )
    store = new_store(tmp_path, "root")
    with fake_registry() as fake:
        fake.add_image("1", manifest, {sha256(config): config, sha256(layer): layer}, oci.OCI_MANIFEST)
        with pytest.raises(RegistryError, match=message):
            pull(store, f"{fake.host}/org/app:1", config=cfg)
    assert store.refs() == {} and no_ingests(store)
    assert not os.path.exists(tmp_path / "etc")


def test_manifest_digest_is_verified(tmp_path, cfg) -> None:
    maker, image = _served_image(tmp_path, layers=1)
    store = new_store(tmp_path, "root")
    with fake_registry(wrong_digest_header=True) as fake:
        fake.add_store_image("1", maker, image)
        with pytest.raises(RegistryError, match="manifest digest mismatch: the registry says"):
            pull(store, f"{fake.host}/org/app:1", config=cfg)
        fake.wrong_digest_header = False
        other = "sha256:" + "0" * 64
        fake.manifests[other] = fake.manifests["1"]  # served under a digest it does not hash to
        with pytest.raises(RegistryError, match=f"manifest digest mismatch: asked for {other}"):
            pull(store, f"{fake.host}/org/app@{other}", config=cfg)
    assert store.refs() == {}


def test_blob_redirects_are_followed_without_credentials(tmp_path, cfg) -> None:
    maker, image = _served_image(tmp_path, layers=2)
    with fake_registry() as storage, fake_registry(token="tok-789") as fake:
        fake.add_store_image("1", maker, image)
        storage.blobs = dict(fake.blobs)
        fake.redirect_blobs_to = f"http://{storage.host}"
        store = new_store(tmp_path, "root")
        assert pull(store, f"{fake.host}/org/app:1", config=cfg, unpack=False).id == image.id
    assert storage.count("GET", "/storage/") == 1 + len(image.layers)
    assert all(auth == "" for _, _, auth in storage.requests)  # the token stays with its registry


def test_the_registry_client_reads_bodies_a_megabyte_at_a_time() -> None:
    """``distribution.client`` tunes httpcore's read size (a class attribute): an
    httpcore that stopped reading it would silently bring back 64 KiB reads."""
    import inspect

    import httpcore
    import httpcore._sync.http11

    import reconciler.images.distribution.client  # noqa: F401  (sets it)

    assert httpcore.HTTP11Connection.READ_NUM_BYTES == 1 << 20
    assert "self.READ_NUM_BYTES" in inspect.getsource(httpcore._sync.http11)
