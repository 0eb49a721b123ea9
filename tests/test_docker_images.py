"""The Docker API's image endpoints with the real clients: ``/usr/local/bin/docker``
(``images``, ``tag``, ``rmi``, ``history``, ``pull``/``push`` against Debian's
docker-registry on loopback, ``build`` with the classic builder, ``save``/``load``)
and the docker SDK for Python; bad input (a corrupt archive, a missing Dockerfile, a
missing image) answered with a clear error and nothing lost. Every client call has
a timeout; the agent, its containers and the registry are gone afterwards."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import agent_fixtures
from tests.agent_fixtures import Agent, make_agent
from tests.registry_fixtures import REGISTRY_BINARY, DockerRegistry, docker_registry

pytestmark = pytest.mark.requires_root

agents = agent_fixtures.agents  # the fixture

DOCKER = "/usr/local/bin/docker"
needs_docker = pytest.mark.skipif(not os.path.exists(DOCKER), reason=f"no docker CLI at {DOCKER}")
needs_registry = pytest.mark.skipif(not os.path.exists(REGISTRY_BINARY), reason="Debian's docker-registry missing")

CONTAINERFILE = """\
FROM busybox:local AS base
ARG GREETING=hello
RUN echo "$GREETING" > /greeting
FROM base AS final
LABEL stage=final
CMD ["cat", "/greeting"]
FROM final AS extra
RUN echo extra > /extra
"""


def docker(
    agent: Agent, *args: str, timeout: float = 60, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """The docker CLI against the agent's Docker socket, with a config of its own."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(agent.base),
        "DOCKER_HOST": f"unix://{agent.docker_socket}",
        "DOCKER_CONFIG": str(agent.base / "docker-config"),
        "DOCKER_BUILDKIT": "0",
        "DOCKER_CLI_HINTS": "false",
    }
    return subprocess.run(
        [DOCKER, *args],
        env=env,
        capture_output=True,
        text=stdin is None,
        input=stdin,
        timeout=timeout,
    )


def raw(agent: Agent, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request to the Docker socket; the status and the whole body."""
    from reconciler.client.transport import UnixConnection

    connection = UnixConnection(str(agent.docker_socket), timeout=60)
    try:
        headers = {"Content-Type": "application/x-tar"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def json_lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def image_ids(agent: Agent) -> list[str]:
    listing = docker(agent, "images", "-q", "--no-trunc")
    assert listing.returncode == 0, listing.stderr
    return sorted(listing.stdout.split())


def ingests(agent: Agent) -> list[str]:
    directory = agent.root / "images" / "ingest"
    return os.listdir(directory) if directory.exists() else []


def scratch_dirs(agent: Agent) -> list[str]:
    return [name for name in os.listdir(agent.root) if name.startswith(("docker-load-", "docker-build-"))]


@pytest.fixture
def agent(agents: list[Agent], tmp_path: Path) -> Agent:
    made = make_agent(agents, tmp_path / "agent")
    made.image()  # busybox:local
    return made


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    with docker_registry(str(tmp_path / "registry")) as running:
        yield running


def context_dir(tmp_path: Path, containerfile: str = CONTAINERFILE) -> Path:
    directory = tmp_path / "context"
    directory.mkdir(parents=True)
    (directory / "Containerfile").write_text(containerfile)
    (directory / "file.txt").write_text("hello\n")
    return directory


def tar_of(directory: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        archive.add(directory, arcname=".")
    return out.getvalue()


@needs_docker
def test_images_tag_inspect_history_and_rmi(agent: Agent) -> None:
    listing = docker(agent, "images")
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"^busybox\s+local\s+[0-9a-f]{12}\s", listing.stdout, re.M), listing.stdout
    inspected = json.loads(docker(agent, "image", "inspect", "busybox:local").stdout)[0]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", inspected["Id"])
    short = docker(agent, "images", "-q")
    assert short.stdout.split() == [inspected["Id"].removeprefix("sha256:")[:12]]

    tagged = docker(agent, "tag", "busybox:local", "example/tool:1")
    assert tagged.returncode == 0, tagged.stderr
    inspected = json.loads(docker(agent, "image", "inspect", "example/tool:1").stdout)[0]
    assert inspected["RepoTags"] == ["busybox:local", "example/tool:1"]
    assert inspected["RootFS"]["Type"] == "layers" and len(inspected["RootFS"]["Layers"]) == 1
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "amd64")
    filtered = docker(agent, "images", "--filter", "reference=example/*", "--format", "{{.Repository}}:{{.Tag}}")
    assert filtered.stdout.split() == ["example/tool:1"]
    # the ID, a prefix of it, and the qualified name the CLI sends all name the image
    for name in (inspected["Id"], inspected["Id"][7:19], inspected["Id"][7:11], "docker.io/example/tool:1"):
        assert docker(agent, "image", "inspect", name).returncode == 0, name

    history = docker(agent, "history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}", "busybox:local")
    assert history.returncode == 0, history.stderr
    assert history.stdout.splitlines()[0].startswith(inspected["Id"])

    tarball = agent.base / "busybox.tar"  # what agent.image() imported, now through docker import
    imported = docker(agent, "import", str(tarball), "example/imported:2")
    assert imported.returncode == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", imported.stdout), imported.stderr
    again = json.loads(docker(agent, "image", "inspect", "example/imported:2").stdout)[0]
    assert again["Id"] == imported.stdout.strip() and again["RootFS"] == inspected["RootFS"]  # the same one layer
    assert docker(agent, "rmi", "example/imported:2").returncode == 0

    removed = docker(agent, "rmi", "example/tool:1")
    assert (removed.returncode, removed.stdout) == (0, "Untagged: example/tool:1\n"), removed.stderr
    assert docker(agent, "create", "--name", "di-user", "busybox:local", "echo").returncode == 0
    in_use = docker(agent, "rmi", "busybox:local")
    assert in_use.returncode == 1 and "is used by a container" in in_use.stderr, in_use.stderr
    assert docker(agent, "rm", "di-user").returncode == 0
    searched = docker(agent, "search", "busybox")
    assert searched.returncode == 1 and "not implemented: searching a registry" in searched.stderr, searched.stderr
    missing = docker(agent, "rmi", "nosuch:1")
    assert missing.returncode == 1 and "No such image: nosuch:1" in missing.stderr
    assert docker(agent, "images", "-q").stdout.split() == short.stdout.split()


@needs_docker
@needs_registry
def test_push_and_pull_through_a_loopback_registry(agent: Agent, registry: DockerRegistry) -> None:
    name = f"{registry.host}/tools/busybox:1"
    assert docker(agent, "tag", "busybox:local", name).returncode == 0
    pushed = docker(agent, "push", name)
    assert pushed.returncode == 0, pushed.stderr
    assert f"The push refers to repository [{registry.host}/tools/busybox]" in pushed.stdout
    assert re.search(r"^[0-9a-f]{12}: Pushed$", pushed.stdout, re.M), pushed.stdout
    digest = re.search(r"^1: digest: (sha256:[0-9a-f]{64})", pushed.stdout, re.M)
    assert digest, pushed.stdout

    # nothing of the image left, so the pull downloads every layer
    assert docker(agent, "rmi", name, "busybox:local").returncode == 0
    assert docker(agent, "image", "prune", "-f").returncode == 0
    assert image_ids(agent) == []
    status, body = raw(agent, "POST", f"/v1.50/images/create?fromImage={registry.host}/tools/busybox&tag=1")
    stream = json_lines(body)
    assert status == 200 and stream[0] == {"status": "Pulling from tools/busybox", "id": "1"}, stream
    layer = stream[1]["id"]
    assert stream[1] == {"status": "Pulling fs layer", "progressDetail": {}, "id": layer}
    statuses = [line["status"] for line in stream if line.get("id") == layer]
    # the agent unpacks after answering (EngineConfig.unpack_after_pull): no "Extracting" lines
    assert statuses[-1] == "Pull complete" and {"Downloading", "Download complete"} <= set(statuses)
    downloads = [line["progressDetail"] for line in stream if line["status"] == "Downloading"]
    assert downloads[-1]["current"] == downloads[-1]["total"] > 0
    assert stream[-2:] == [
        {"status": f"Digest: {digest.group(1)}"},
        {"status": f"Status: Downloaded newer image for {name}"},
    ]
    assert docker(agent, "rmi", name).returncode == 0
    assert docker(agent, "image", "prune", "-f").returncode == 0
    pulled = docker(agent, "pull", name)
    assert pulled.returncode == 0, pulled.stderr
    lines = pulled.stdout.splitlines()
    assert lines[0] == "1: Pulling from tools/busybox"
    assert any(re.fullmatch(r"[0-9a-f]{12}: Pull complete", line) for line in lines), lines
    assert f"Digest: {digest.group(1)}" in lines
    assert f"Status: Downloaded newer image for {name}" in lines
    again = docker(agent, "pull", name)
    assert f"Status: Image is up to date for {name}" in again.stdout.splitlines()

    missing = docker(agent, "pull", f"{registry.host}/tools/nosuch:1")
    assert missing.returncode == 1 and "manifest unknown" in missing.stderr, missing.stderr
    status, body = raw(agent, "POST", f"/v1.50/images/create?fromImage={registry.host}/tools/nosuch&tag=1")
    last = json_lines(body)[-1]
    assert status == 200 and "manifest unknown" in last["error"] and last["errorDetail"]["message"] == last["error"]
    assert ingests(agent) == []


@needs_docker
def test_build_with_the_classic_builder(agent: Agent, tmp_path: Path) -> None:
    directory = context_dir(tmp_path)
    built = docker(
        agent,
        "build",
        "-t",
        "built:1",
        "-t",
        "built:2",
        "-f",
        str(directory / "Containerfile"),
        "--build-arg",
        "GREETING=bonjour",
        "--target",
        "final",
        str(directory),
        timeout=180,
    )
    assert built.returncode == 0, built.stderr
    assert "Step 1/6 : FROM busybox:local AS base" in built.stdout
    short = re.search(r"^Successfully built ([0-9a-f]{12})$", built.stdout, re.M)
    assert short, built.stdout
    assert "Successfully tagged built:1" in built.stdout and "Successfully tagged built:2" in built.stdout
    inspected = json.loads(docker(agent, "image", "inspect", "built:1").stdout)[0]
    assert inspected["Id"].removeprefix("sha256:").startswith(short.group(1))
    assert inspected["Config"]["Labels"] == {"stage": "final"}
    assert inspected["Config"]["Cmd"] == ["cat", "/greeting"]
    ran = agent.cli("run", "--rm", "built:1")  # the native CLI: what the RUN step wrote
    assert (ran.returncode, ran.stdout) == (0, "bonjour\n"), ran.stderr
    assert agent.cli("run", "--rm", "built:1", "cat", "/extra").returncode != 0  # the stage after the target

    quiet = docker(
        agent,
        "build",
        "-q",
        "--label",
        "made=cli",
        "-t",
        "labelled:1",
        "-f",
        str(directory / "Containerfile"),
        str(directory),
    )
    assert quiet.returncode == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", quiet.stdout), quiet.stdout + quiet.stderr
    labelled = json.loads(docker(agent, "image", "inspect", "labelled:1").stdout)[0]
    assert labelled["Id"] == quiet.stdout.strip() and labelled["Config"]["Labels"] == {"stage": "final", "made": "cli"}

    failing = context_dir(tmp_path / "failing", "FROM busybox:local\nRUN exit 3\n")
    failed = docker(agent, "build", "-t", "broken:1", "-f", str(failing / "Containerfile"), str(failing), timeout=120)
    assert failed.returncode == 1 and "exit" in failed.stderr.lower(), failed.stderr
    assert "broken" not in docker(agent, "images").stdout
    assert scratch_dirs(agent) == []


def test_a_build_with_a_missing_dockerfile_ends_with_an_error_line(agent: Agent, tmp_path: Path) -> None:
    status, body = raw(agent, "POST", "/v1.50/build?t=x:1&dockerfile=Nope", tar_of(context_dir(tmp_path)))
    assert status == 200
    assert json_lines(body)[-1] == {
        "errorDetail": {"message": "Cannot locate specified Dockerfile: Nope"},
        "error": "Cannot locate specified Dockerfile: Nope",
    }
    assert scratch_dirs(agent) == []


@needs_docker
def test_save_and_load_and_a_corrupt_archive(agent: Agent, tmp_path: Path) -> None:
    assert docker(agent, "tag", "busybox:local", "saved:1").returncode == 0
    archive = tmp_path / "saved.tar"
    saved = docker(agent, "save", "-o", str(archive), "saved:1")
    assert saved.returncode == 0, saved.stderr
    with tarfile.open(archive) as handle:
        assert "manifest.json" in handle.getnames()
    assert docker(agent, "rmi", "saved:1").returncode == 0
    loaded = docker(agent, "load", "-i", str(archive))
    assert (loaded.returncode, loaded.stdout) == (0, "Loaded image: saved:1\n"), loaded.stderr
    before = image_ids(agent)

    for bad in (archive.read_bytes()[:5000], b"not a tar at all\n" * 100):
        corrupt = tmp_path / "corrupt.tar"
        corrupt.write_bytes(bad)
        refused = docker(agent, "load", "-i", str(corrupt))
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.startswith("Error response from daemon: the uploaded archive: "), refused.stderr
        assert image_ids(agent) == before
    assert ingests(agent) == [] and scratch_dirs(agent) == []
    piped = docker(agent, "image", "save", "saved:1", stdin=b"")
    assert piped.returncode == 0 and len(piped.stdout) > 1000


def test_the_docker_sdk_for_python(agents: list[Agent], tmp_path: Path) -> None:
    import docker as docker_sdk

    agent = make_agent(agents, tmp_path / "agent")
    agent.image()
    client = docker_sdk.DockerClient(base_url=f"unix://{agent.docker_socket}", timeout=120)
    try:
        with docker_registry(str(tmp_path / "registry")) as registry:
            repository = f"{registry.host}/py/busybox"
            assert client.images.get("busybox:local").tag(repository, "2")
            pushed = list(client.images.push(repository, tag="2", stream=True, decode=True))
            assert not [line for line in pushed if "error" in line], pushed
            client.images.remove(f"{repository}:2")
            pulled = client.images.pull(repository, tag="2")
            assert f"{repository}:2" in pulled.tags

        listed = {tag for image in client.images.list() for tag in image.tags}
        assert {"busybox:local", f"{repository}:2"} <= listed
        image, logs = client.images.build(
            path=str(context_dir(tmp_path)),
            tag="pybuilt:1",
            dockerfile="Containerfile",
            buildargs={"GREETING": "hallo"},
            target="final",
            labels={"made.by": "docker-py"},
        )
        assert "pybuilt:1" in image.tags
        assert image.labels == {"stage": "final", "made.by": "docker-py"}
        assert any("Successfully built" in line.get("stream", "") for line in logs)
        with pytest.raises(docker_sdk.errors.BuildError, match="Cannot locate specified Dockerfile"):
            client.images.build(path=str(tmp_path / "context"), dockerfile="Nope", tag="never:1")

        archive = b"".join(client.images.get("pybuilt:1").save(named=True))
        client.images.remove("pybuilt:1", force=True)
        with pytest.raises(docker_sdk.errors.ImageNotFound):
            client.images.get("pybuilt:1")
        assert [loaded.tags for loaded in client.images.load(archive)] == [["pybuilt:1"]]
        client.images.remove(image.id, force=True)
        assert "pybuilt:1" not in {tag for image in client.images.list() for tag in image.tags}
    finally:
        client.close()


def test_image_list_filters() -> None:
    from reconciler.dockerapi.errors import DockerError
    from reconciler.dockerapi.images import filter_images

    def item(ident: str, created: int, tags: list[str], labels: dict[str, str] | None = None) -> dict[str, Any]:
        digests = [f"{tag.rpartition(':')[0]}@sha256:{ident * 64}" for tag in tags]
        return {"Id": f"sha256:{ident * 64}", "Created": created, "RepoTags": tags, "RepoDigests": digests,
                "Labels": labels or {}}  # fmt: skip

    items = [
        item("a", 100, ["busybox:1", "tools/busybox:1"], {"team": "a"}),
        item("b", 200, ["alpine:3"]),
        item("c", 300, ["127.0.0.1:5000/x/y:2"], {"team": "b"}),
    ]

    def ids(wanted: dict[str, list[str]]) -> list[str]:
        return [found["Id"][7] for found in filter_images(items, wanted)]

    assert ids({}) == ["a", "b", "c"]
    assert ids({"reference": ["busybox"]}) == ["a"]
    assert ids({"reference": ["docker.io/library/busybox:1"]}) == ["a"]
    assert ids({"reference": ["*/*"]}) == ["a", "c"]
    only = filter_images(items, {"reference": ["tools/*"]})[0]
    assert (only["RepoTags"], only["RepoDigests"]) == (["tools/busybox:1"], [f"tools/busybox@sha256:{'a' * 64}"])
    assert ids({"label": ["team"]}) == ["a", "c"] and ids({"label": ["team=b"]}) == ["c"]
    assert ids({"dangling": ["true"]}) == [] and ids({"dangling": ["false"]}) == ["a", "b", "c"]
    assert ids({"before": ["alpine:3"]}) == ["a"] and ids({"since": ["busybox:1"]}) == ["b", "c"]
    assert ids({"since": ["b" * 8]}) == ["c"]
    with pytest.raises(DockerError, match="No such image: nosuch"):
        filter_images(items, {"before": ["nosuch"]})
    with pytest.raises(DockerError, match="invalid filter 'colour'"):
        filter_images(items, {"colour": ["red"]})
