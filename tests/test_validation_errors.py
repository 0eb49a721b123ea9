"""Every way a manifests directory can be wrong, and where the error points.

Each test writes a small directory under ``tmp_path``, loads it with
``load_directory`` and asserts the exact file, 1-based line and column, object
label, field path and the meaningful part of the message.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from reconciler.manifests import loader
from reconciler.manifests.errors import InvalidManifests, ManifestError
from reconciler.manifests.loader import load_directory
from reconciler.model.container import BindMount

# --- helpers


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "stack"
    path.mkdir()
    return path


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (relative name → YAML text, dedented, or raw bytes) under ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


def errors(root: Path) -> list[ManifestError]:
    with pytest.raises(InvalidManifests) as info:
        load_directory(str(root))
    return info.value.errors


def only_error(root: Path) -> ManifestError:
    found = errors(root)
    assert len(found) == 1, "\n".join(str(e) for e in found)
    return found[0]


def where(error: ManifestError) -> tuple[str, int, int, str | None, str | None]:
    return error.file, error.line, error.column, error.obj, error.field


def f(root: Path, name: str) -> str:
    """The file name as the loader reports it."""
    return os.path.join(str(root), name)


def container(name: str, image: str = "busybox:1.36", extra: str = "") -> str:
    """A Container document; ``extra`` is appended under ``spec:`` (indented by 2)."""
    return (
        "---\n"
        "apiVersion: reconcile/v1\n"
        "kind: Container\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        f"  image: {image}\n" + textwrap.indent(textwrap.dedent(extra), "  ")
    )


# Lines of container(): 1 "---", 2 apiVersion, 3 kind, 4 metadata, 5 name, 6 spec,
# 7 image, 8 the first line of ``extra``.


# --- kinds and fields


def test_unknown_kind_suggests_the_closest_kind(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Containr
                metadata:
                  name: web
                spec:
                  image: busybox:1.36
                """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 2, 1, None, "kind")
    assert "unknown kind 'Containr'" in error.message
    assert "did you mean 'Container'?" in error.message


def test_unknown_kind_without_a_close_match_lists_the_kinds(root: Path) -> None:
    write(root, {"a.yaml": "apiVersion: reconcile/v1\nkind: Deployment\nmetadata:\n  name: web\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 2, 1, None, "kind")
    assert "unknown kind 'Deployment'" in error.message
    assert "Image, Network, Volume, Container, Service" in error.message


@pytest.mark.parametrize("kind", ["[Container]", "{a: b}", "3"])
def test_kind_that_is_not_a_string_is_an_error_not_a_crash(root: Path, kind: str) -> None:
    write(root, {"a.yaml": f"apiVersion: reconcile/v1\nkind: {kind}\nmetadata:\n  name: web\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 2, 1, None, "kind")
    assert error.message.startswith("unknown kind ")


def test_missing_kind(root: Path) -> None:
    write(root, {"a.yaml": "apiVersion: reconcile/v1\nmetadata:\n  name: web\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 1, 1, None, "kind")
    assert "missing kind: one of Image, Network, Volume, Container, Service" in error.message


def test_unknown_field_suggests_the_closest_field(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Container
                metadata:
                  name: web
                spec:
                  imgae: busybox:1.36
                """
        },
    )
    found = errors(root)
    by_field = {e.field: e for e in found}
    assert set(by_field) == {"spec.imgae", "spec.image"}
    typo = by_field["spec.imgae"]
    assert where(typo) == (f(root, "a.yaml"), 6, 3, "container/web", "spec.imgae")
    assert typo.message == "unknown field 'imgae'; did you mean 'image'?"
    missing = by_field["spec.image"]
    assert where(missing) == (f(root, "a.yaml"), 6, 3, "container/web", "spec.image")
    assert missing.message == "required field is missing"


def test_unknown_field_with_a_compose_spelling_names_ours(root: Path) -> None:
    write(root, {"a.yaml": container("web", extra="environment:\n  A: b\n")})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 8, 3, "container/web", "spec.environment")
    assert error.message == "unknown field 'environment'; this is called 'env' here"


def test_unknown_field_in_a_nested_model_and_in_a_service_template(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web", extra="resources:\n  memroy: 512m\n"),
            "b.yaml": """\
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: api
                spec:
                  replicas: 2
                  template:
                    image: busybox:1.36
                    environment: {A: b}
                """,
        },
    )
    first, second = errors(root)
    assert where(first) == (f(root, "a.yaml"), 9, 5, "container/web", "spec.resources.memroy")
    assert first.message == "unknown field 'memroy'; did you mean 'memory'?"
    assert where(second) == (
        f(root, "b.yaml"),
        9,
        5,
        "service/api",
        "spec.template.environment",
    )
    assert "this is called 'env' here" in second.message


def test_unknown_top_level_field(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Volume
                metadata:
                  name: data
                specs: {}
                """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 5, 1, "volume/data", "specs")
    assert error.message == "unknown field 'specs'; did you mean 'spec'?"


def test_wrong_types(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web", extra="init: maybe\nports: 8080\n"),
            "b.yaml": """\
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: api
                spec:
                  replicas: three
                  template:
                    image: busybox:1.36
                """,
        },
    )
    init, ports, replicas = errors(root)
    assert where(init) == (f(root, "a.yaml"), 8, 3, "container/web", "spec.init")
    assert "valid boolean" in init.message
    assert init.message.endswith("got 'maybe'")
    assert where(ports) == (f(root, "a.yaml"), 9, 3, "container/web", "spec.ports")
    assert "valid list" in ports.message
    assert where(replicas) == (f(root, "b.yaml"), 6, 3, "service/api", "spec.replicas")
    assert "valid integer" in replicas.message
    assert replicas.message.endswith("got 'three'")


def test_port_out_of_range_short_and_long_form(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container(
                "web",
                extra="""\
                ports:
                  - "8080:80"
                  - 70000
                  - container_port: 80
                    host_port: 70000
                """,
            )
        },
    )
    short, long = errors(root)
    assert where(short) == (
        f(root, "a.yaml"),
        10,
        7,
        "container/web",
        "spec.ports[1].container_port",
    )
    assert short.message == "Input should be less than or equal to 65535"
    assert where(long) == (f(root, "a.yaml"), 12, 7, "container/web", "spec.ports[2].host_port")
    assert "less than or equal to 65535" in long.message


def test_port_error_after_a_range_points_at_the_item_as_written(root: Path) -> None:
    # "8000-8002:80-82" expands into three mappings; the bad port is item 1 in the file
    write(root, {"a.yaml": container("web", extra='ports:\n  - "8000-8002:80-82"\n  - 70000\n')})
    error = only_error(root)
    assert where(error) == (
        f(root, "a.yaml"),
        10,
        7,
        "container/web",
        "spec.ports[1].container_port",
    )


def test_bad_port_items_beside_a_range_are_reported_at_their_own_index(root: Path) -> None:
    # with an unparsable item the list is not expanded: indexes are the written ones
    write(root, {"a.yaml": container("web", extra="ports: ['8000-8002:80-82', 'bad', 70000]\n")})
    bad, big = errors(root)
    assert where(bad) == (f(root, "a.yaml"), 8, 30, "container/web", "spec.ports[1]")
    assert bad.message.startswith("invalid port 'bad'")
    assert where(big) == (f(root, "a.yaml"), 8, 37, "container/web", "spec.ports[2].container_port")


def test_bad_volume_and_tmpfs_items_are_reported_at_their_own_index(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container(
                "web",
                extra="volumes: ['data:/a', 'Bad:/b', '/anon']\ntmpfs: ['/run', '/x:mode=9']\n",
            )
        },
    )
    source, anonymous, mode = errors(root)
    assert where(source) == (f(root, "a.yaml"), 8, 24, "container/web", "spec.volumes[1].source")
    assert "'Bad' is not a DNS label" in source.message
    assert where(anonymous) == (f(root, "a.yaml"), 8, 34, "container/web", "spec.volumes[2]")
    assert "anonymous volumes are not supported" in anonymous.message
    assert where(mode) == (f(root, "a.yaml"), 9, 19, "container/web", "spec.tmpfs[1].mode")


def test_port_range_past_65535_is_rejected_without_expanding(root: Path) -> None:
    write(root, {"a.yaml": container("web", extra='ports: ["1-999999999"]\n')})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 8, 11, "container/web", "spec.ports[0]")
    assert "port range 1-999999999 goes past 65535" in error.message


def test_replicas_out_of_range(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: web
                spec:
                  replicas: -1
                  template:
                    image: busybox:1.36
                """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 6, 3, "service/web", "spec.replicas")
    assert error.message == "Input should be greater than or equal to 0"


def test_name_that_is_not_a_dns_label(root: Path) -> None:
    write(root, {"a.yaml": container("Web_1")})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 5, 3, "container/Web_1", "metadata.name")
    assert "'Web_1' is not a DNS label" in error.message


def test_reserved_label_prefix(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Volume
                metadata:
                  name: data
                  labels:
                    reconcile.stack: mine
                """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 5, 3, "volume/data", "metadata.labels")
    assert "reserved for reconcile" in error.message


def test_missing_metadata(root: Path) -> None:
    write(root, {"a.yaml": "apiVersion: reconcile/v1\nkind: Volume\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 1, 1, "volume/<unnamed>", "metadata")
    assert error.message == "required field is missing"


def test_missing_api_version(root: Path) -> None:
    write(root, {"a.yaml": "kind: Volume\nmetadata:\n  name: data\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 1, 1, "volume/data", "apiVersion")
    assert error.message == "missing apiVersion: use reconcile/v1"


def test_wrong_api_version_is_reported_with_the_other_errors(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: v1
                kind: Volume
                metadata:
                  name: data
                spec:
                  drivr: local
                """
        },
    )
    version, field = errors(root)
    assert where(version) == (f(root, "a.yaml"), 1, 1, "volume/data", "apiVersion")
    assert version.message == "unsupported apiVersion 'v1': use reconcile/v1"
    assert where(field) == (f(root, "a.yaml"), 6, 3, "volume/data", "spec.drivr")
    assert "did you mean 'driver'?" in field.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_document_that_is_not_a_mapping(root: Path, text: str) -> None:
    write(root, {"a.yaml": text})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 1, 1, None, None)
    assert "a manifest document must be a mapping" in error.message


def test_second_document_that_is_not_a_mapping(root: Path) -> None:
    write(root, {"a.yaml": container("web") + "---\n- a\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 9, 1, None, None)


# --- names


def test_duplicate_name_within_a_kind(root: Path) -> None:
    write(root, {"a.yaml": container("web"), "b.yaml": container("web", image="alpine:3")})
    error = only_error(root)
    assert where(error) == (f(root, "b.yaml"), 5, 3, "container/web", "metadata.name")
    assert error.message == f"duplicate Container name 'web' (first defined at {f(root, 'a.yaml')}:2)"


def test_duplicate_name_within_one_file(root: Path) -> None:
    write(root, {"a.yaml": container("web") + container("web")})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 12, 3, "container/web", "metadata.name")
    assert "duplicate Container name 'web'" in error.message


def test_same_name_in_different_kinds_is_fine(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Volume
                metadata:
                  name: web
                ---
                apiVersion: reconcile/v1
                kind: Network
                metadata:
                  name: web
                ---
                apiVersion: reconcile/v1
                kind: Image
                metadata:
                  name: web
                spec:
                  pull: nginx:1.27
                ---
                apiVersion: reconcile/v1
                kind: Container
                metadata:
                  name: web
                spec:
                  image: web
                  networks: [web]
                  volumes: ["web:/data"]
                """
        },
    )
    desired = load_directory(str(root))
    assert sorted((o.kind, o.metadata.name) for o in desired.objects) == [
        ("Container", "web"),
        ("Image", "web"),
        ("Network", "web"),
        ("Volume", "web"),
    ]


def test_service_and_container_with_the_same_name(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web"),
            "b.yaml": """\
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: web
                spec:
                  template:
                    image: busybox:1.36
                """,
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "b.yaml"), 4, 3, "service/web", "metadata.name")
    assert "same name as a container" in error.message


def test_container_named_like_a_service_replica(root: Path) -> None:
    service = textwrap.dedent("""\
        ---
        apiVersion: reconcile/v1
        kind: Service
        metadata:
          name: web
        spec:
          replicas: 2
          template:
            image: busybox:1.36
        """)
    write(root, {"a.yaml": service, "b.yaml": container("web-1") + container("web-7")})
    first, second = errors(root)
    assert where(first) == (f(root, "b.yaml"), 5, 3, "container/web-1", "metadata.name")
    assert first.message == "container name 'web-1' collides with a replica of service 'web'"
    # web-7 is not a replica today, but would be after scaling up
    assert where(second) == (f(root, "b.yaml"), 12, 3, "container/web-7", "metadata.name")


@pytest.mark.parametrize("name", ["web-0", "web-01", "web-x", "webs-1", "web-1a"])
def test_names_that_no_replica_can_take_are_fine(root: Path, name: str) -> None:
    service = textwrap.dedent("""\
        ---
        apiVersion: reconcile/v1
        kind: Service
        metadata:
          name: web
        spec:
          template:
            image: busybox:1.36
        """)
    write(root, {"a.yaml": service + container(name)})
    desired = load_directory(str(root))
    assert len(desired.objects) == 2


# --- references


def test_undefined_network_volume_and_bare_image(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container(
                "web",
                image="busybox",
                extra="""\
                networks: [front]
                volumes:
                  - data:/data
                  - ./x:/x
                """,
            )
        },
    )
    image, network, volume = errors(root)
    assert where(image) == (f(root, "a.yaml"), 7, 3, "container/web", "spec.image")
    assert "undefined image 'busybox'" in image.message
    assert "busybox:latest" in image.message
    assert where(network) == (f(root, "a.yaml"), 8, 14, "container/web", "spec.networks.front")
    assert network.message == "undefined network 'front'"
    assert where(volume) == (f(root, "a.yaml"), 10, 7, "container/web", "spec.volumes[0]")
    assert volume.message == "undefined volume 'data'"


def test_undefined_network_in_mapping_form_and_long_volume(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container(
                "web",
                extra="""\
                networks:
                  back:
                    aliases: [db]
                volumes:
                  - type: volume
                    source: cache
                    target: /cache
                """,
            )
        },
    )
    network, volume = errors(root)
    assert where(network) == (f(root, "a.yaml"), 9, 5, "container/web", "spec.networks.back")
    assert where(volume) == (f(root, "a.yaml"), 12, 7, "container/web", "spec.volumes[0]")
    assert volume.message == "undefined volume 'cache'"


@pytest.mark.parametrize(
    "image",
    [
        "busybox:1.36",
        "library/busybox",
        "ghcr.io/acme/app",
        "localhost:5000/app:dev",
        "busybox@sha256:" + "a" * 64,
    ],
)
def test_full_image_references_need_no_image_object(root: Path, image: str) -> None:
    write(root, {"a.yaml": container("web", image=image)})
    desired = load_directory(str(root))
    assert desired.objects[0].spec.image == image


def test_image_by_the_name_of_an_image_object(root: Path) -> None:
    image = textwrap.dedent("""\
        ---
        apiVersion: reconcile/v1
        kind: Image
        metadata:
          name: app
        spec:
          pull: ghcr.io/acme/app:1.0
        """)
    write(root, {"a.yaml": image + container("web", image="app")})
    assert len(load_directory(str(root)).objects) == 2


def test_reference_to_an_object_that_failed_validation_does_not_cascade(root: Path) -> None:
    network = textwrap.dedent("""\
        ---
        apiVersion: reconcile/v1
        kind: Network
        metadata:
          name: front
        spec:
          mtu: 1
        """)
    write(root, {"a.yaml": network + container("web", extra="networks: [front]\n")})
    error = only_error(root)
    assert (error.obj, error.field) == ("network/front", "spec.mtu")


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("Busybox:1", "invalid image reference 'Busybox:1': repository names must be lowercase"),
        ("a@sha256:short", "invalid image reference 'a@sha256:short'"),
        ("busybox:1.36:2", "invalid image reference 'busybox:1.36:2'"),
    ],
)
def test_invalid_image_reference_in_a_container(root: Path, image: str, message: str) -> None:
    write(root, {"a.yaml": container("web", image=image)})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 7, 3, "container/web", "spec.image")
    assert error.message == message


def test_invalid_image_reference_in_an_image(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Image
                metadata:
                  name: app
                spec:
                  pull: Busybox:1
                """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 6, 3, "image/app", "spec.pull")
    assert "repository names must be lowercase" in error.message


def test_image_needs_exactly_one_source(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Image
                metadata:
                  name: app
                spec:
                  pull: busybox:1.36
                  import:
                    path: root.tar
                """,
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 5, 1, "image/app", "spec")
    assert "exactly one source of pull, build, import (found: pull, import)" in error.message


# --- depends_on


def test_dependency_cycle_of_two_is_reported_once(root: Path) -> None:
    write(
        root,
        {"a.yaml": container("a", extra="depends_on: [b]\n") + container("b", extra="depends_on: [a]\n")},
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 8, 16, "container/a", "spec.depends_on.b")
    assert error.message == "dependency cycle: a -> b -> a"


def test_dependency_cycle_of_three_is_reported_once(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("a", extra="depends_on: [b]\n"),
            "b.yaml": container("b", extra="depends_on:\n  c: {condition: healthy}\n"),
            "c.yaml": container("c", extra="depends_on: [a]\n"),
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 8, 16, "container/a", "spec.depends_on.b")
    assert error.message == "dependency cycle: a -> b -> c -> a"


def test_dependency_cycle_through_a_service(root: Path) -> None:
    service = textwrap.dedent("""\
        ---
        apiVersion: reconcile/v1
        kind: Service
        metadata:
          name: web
        spec:
          template:
            image: busybox:1.36
            depends_on: [db]
        """)
    write(root, {"a.yaml": service + container("db", extra="depends_on: [web]\n")})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 9, 18, "service/web", "spec.template.depends_on.db")
    assert error.message == "dependency cycle: web -> db -> web"


def test_self_dependency(root: Path) -> None:
    write(root, {"a.yaml": container("a", extra="depends_on:\n  - a\n")})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 9, 7, "container/a", "spec.depends_on.a")
    assert error.message == "an object cannot depend on itself"


def test_undefined_dependency(root: Path) -> None:
    write(root, {"a.yaml": container("a", extra="depends_on:\n  db: {condition: healthy}\n")})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 9, 5, "container/a", "spec.depends_on.db")
    assert error.message == "undefined dependency 'db': no Container or Service"


def test_acyclic_dependencies_load(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("a", extra="depends_on: [b, c]\n")
            + container("b", extra="depends_on: [c]\n")
            + container("c")
        },
    )
    desired = load_directory(str(root))
    assert [o.metadata.name for o in desired.objects] == ["a", "b", "c"]


# --- host ports


def test_host_port_published_by_two_containers(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web", extra='ports: ["8080:80"]\n'),
            "b.yaml": container("api", extra='ports:\n  - "9000:9000"\n  - "8080:80"\n'),
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "b.yaml"), 10, 7, "container/api", "spec.ports[1]")
    assert error.message == (f"host port 8080/tcp is already published by container/web ({f(root, 'a.yaml')}:2)")


def test_host_port_published_twice_by_one_container(root: Path) -> None:
    write(root, {"a.yaml": container("web", extra='ports:\n  - "8080:80"\n  - "8080:81"\n')})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 10, 7, "container/web", "spec.ports[1]")
    assert "host port 8080/tcp is already published by container/web" in error.message


def test_host_port_inside_a_published_range(root: Path) -> None:
    write(
        root,
        {"a.yaml": container("web", extra='ports:\n  - "8000-8002:80-82"\n  - "7000:70"\n  - "8001:90"\n')},
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 11, 7, "container/web", "spec.ports[2]")
    assert "host port 8001/tcp" in error.message


def test_overlapping_ranges_across_containers(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web", extra='ports: ["8000-8002:80-82"]\n'),
            "b.yaml": container("api", extra='ports: ["8002-8003:80-81"]\n'),
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "b.yaml"), 8, 11, "container/api", "spec.ports[0]")
    assert "host port 8002/tcp" in error.message


def test_host_port_on_all_addresses_overlaps_a_specific_address(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web", extra='ports: ["127.0.0.1:8080:80"]\n'),
            "b.yaml": container("api", extra='ports: ["0.0.0.0:8080:80"]\n'),
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "b.yaml"), 8, 11, "container/api", "spec.ports[0]")
    assert "host port 8080/tcp" in error.message


def test_same_host_port_on_different_addresses_is_fine(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web", extra='ports: ["127.0.0.1:8080:80"]\n'),
            "b.yaml": container("api", extra='ports: ["127.0.0.2:8080:80"]\n'),
        },
    )
    assert len(load_directory(str(root)).objects) == 2


def test_same_host_port_with_tcp_and_udp_is_fine(root: Path) -> None:
    write(root, {"a.yaml": container("dns", extra='ports: ["53:53/tcp", "53:53/udp"]\n')})
    assert len(load_directory(str(root)).objects) == 1


def test_host_port_used_twice_with_udp(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("a", extra='ports: ["53:53/udp"]\n'),
            "b.yaml": container("b", extra="ports:\n  - {container_port: 53, host_port: 53, protocol: udp}\n"),
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "b.yaml"), 9, 7, "container/b", "spec.ports[0]")
    assert "host port 53/udp" in error.message


def test_ephemeral_host_ports_never_collide(root: Path) -> None:
    write(
        root,
        {"a.yaml": container("a", extra='ports: ["80", 80]\n') + container("b", extra="ports: [80]\n")},
    )
    assert len(load_directory(str(root)).objects) == 2


def test_service_with_a_fixed_host_port_and_several_replicas(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: web
                spec:
                  replicas: 3
                  template:
                    image: busybox:1.36
                    ports: ["80", "8080:80"]
                """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 9, 5, "service/web", "spec.template.ports")
    assert error.message == "a Service's published ports need a host port (HOST:CONTAINER)"


def test_service_with_fixed_host_ports_is_fine(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: web
                spec:
                  replicas: 3
                  template:
                    image: busybox:1.36
                    ports: ["8081:80"]
                ---
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: api
                spec:
                  replicas: 1
                  template:
                    image: busybox:1.36
                    ports: ["8080:80"]
                """
        },
    )
    assert len(load_directory(str(root)).objects) == 2


# --- networks


def network(name: str, spec: str) -> str:
    return f"---\napiVersion: reconcile/v1\nkind: Network\nmetadata:\n  name: {name}\nspec:\n" + textwrap.indent(
        textwrap.dedent(spec), "  "
    )


# Lines of network(): 1 "---", 2 apiVersion, 3 kind, 4 metadata, 5 name, 6 spec, 7 the spec.


def test_overlapping_subnets(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": network("a", "subnet: 10.0.0.0/16\n"),
            "b.yaml": network("b", "subnet: 10.1.0.0/24\n") + network("c", "subnet: 10.0.5.0/24\n"),
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "b.yaml"), 14, 3, "network/c", "spec.subnet")
    assert error.message == (f"subnet 10.0.5.0/24 overlaps 10.0.0.0/16 of network/a ({f(root, 'a.yaml')}:2)")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "subnet: 10.0.0.0/24\ngateway: 10.0.1.1\n",
            "gateway 10.0.1.1 is outside subnet 10.0.0.0/24",
        ),
        ("subnet: 10.0.0.0/24\ngateway: 10.0.0.255\n", "is the network or broadcast address"),
        ("gateway: 10.0.0.1\n", "gateway and ip_range need a subnet"),
        ("subnet: 10.0.0.0/24\nip_range: 10.0.1.0/28\n", "ip_range 10.0.1.0/28 is outside subnet"),
        ("subnet: 10.0.0.0/31\n", "subnet 10.0.0.0/31 is too small"),
    ],
)
def test_network_address_consistency(root: Path, spec: str, message: str) -> None:
    write(root, {"a.yaml": network("a", spec)})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 6, 1, "network/a", "spec")
    assert message in error.message


def test_subnet_with_host_bits_set(root: Path) -> None:
    write(root, {"a.yaml": network("a", "subnet: 10.0.0.1/24\n")})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 7, 3, "network/a", "spec.subnet")
    assert "not a valid IPv4 network" in error.message


def test_static_address_outside_the_subnet(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": network("front", "subnet: 10.0.0.0/24\n")
            + container("web", extra="networks:\n  front: {ipv4_address: 10.0.1.5}\n")
        },
    )
    error = only_error(root)
    assert where(error) == (
        f(root, "a.yaml"),
        16,
        13,
        "container/web",
        "spec.networks.front.ipv4_address",
    )
    assert error.message == "10.0.1.5 is outside subnet 10.0.0.0/24 of network 'front'"


def test_static_address_used_twice(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": network("front", "subnet: 10.0.0.0/24\n")
            + container("web", extra="networks:\n  front: {ipv4_address: 10.0.0.5}\n")
            + container("api", extra="networks:\n  front:\n    ipv4_address: 10.0.0.5\n"),
        },
    )
    error = only_error(root)
    assert where(error) == (
        f(root, "a.yaml"),
        26,
        7,
        "container/api",
        "spec.networks.front.ipv4_address",
    )
    assert error.message == "10.0.0.5 on network 'front' is already used by container/web"


def test_static_address_without_a_subnet(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": network("front", "internal: true\n")
            + container("web", extra="networks:\n  front: {ipv4_address: 10.0.0.5}\n")
        },
    )
    error = only_error(root)
    assert (error.line, error.obj, error.field) == (
        16,
        "container/web",
        "spec.networks.front.ipv4_address",
    )
    assert error.message == "a static address needs network 'front' to set a subnet"


@pytest.mark.parametrize("address", ["10.0.0.0", "10.0.0.1", "10.0.0.255"])
def test_static_address_that_is_reserved(root: Path, address: str) -> None:
    write(
        root,
        {
            "a.yaml": network("front", "subnet: 10.0.0.0/24\n")
            + container("web", extra=f"networks:\n  front: {{ipv4_address: {address}}}\n")
        },
    )
    error = only_error(root)
    assert error.field == "spec.networks.front.ipv4_address"
    assert "is reserved in subnet 10.0.0.0/24" in error.message


def test_static_address_in_a_service_with_several_replicas(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": network("front", "subnet: 10.0.0.0/24\n")
            + """\
---
apiVersion: reconcile/v1
kind: Service
metadata:
  name: web
spec:
  replicas: 2
  template:
    image: busybox:1.36
    networks:
      front: {ipv4_address: 10.0.0.5}
"""
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 17, 5, "service/web", "spec.template.networks")
    assert "a static ipv4_address cannot be shared by several replicas" in error.message


def test_valid_static_addresses_load(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": network("front", "subnet: 10.0.0.0/24\ngateway: 10.0.0.254\n")
            + container("web", extra="networks:\n  front: {ipv4_address: 10.0.0.1}\n")
            + container("api", extra="networks:\n  front: {ipv4_address: 10.0.0.2}\n")
        },
    )
    assert len(load_directory(str(root)).objects) == 3


# --- YAML problems


def test_yaml_syntax_error(root: Path) -> None:
    write(root, {"a.yaml": "apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n  name: [web\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 5, 1, None, None)
    assert "while parsing a flow sequence" in error.message


def test_yaml_bad_indentation(root: Path) -> None:
    write(root, {"a.yaml": "apiVersion: reconcile/v1\nkind: Volume\n metadata: {}\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 3, 10, None, None)
    assert "mapping values are not allowed" in error.message


def test_yaml_error_in_a_later_document_rejects_the_file(root: Path) -> None:
    write(root, {"a.yaml": container("web") + "---\nkey: 'unterminated\n"})
    error = only_error(root)
    assert (error.file, error.obj) == (f(root, "a.yaml"), None)
    assert "while scanning a quoted scalar" in error.message


def test_duplicate_keys(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Volume
                metadata:
                  name: data
                  name: other
                """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 5, 3, None, None)
    assert error.message == "duplicate key 'name' (first defined at line 4)"


def test_tabs_in_indentation(root: Path) -> None:
    write(root, {"a.yaml": "apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n\tname: data\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 4, 1, None, None)
    assert "tab character in indentation" in error.message


def test_tab_after_spaces_and_tab_inside_a_value(root: Path) -> None:
    text = "apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n  name: data\n  labels:\n  \ta: b\n"
    write(
        root,
        {
            "a.yaml": text,
            "b.yaml": "apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n  name: x\t\n",
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 6, 3, None, None)


def test_non_utf8_bytes(root: Path) -> None:
    data = b"apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n  name: data\n"
    write(root, {"a.yaml": data + b"  labels:\n    a: caf\xe9\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 6, 11, None, None)
    assert error.message == "not valid UTF-8: byte 0xe9"


def test_utf8_bom_is_accepted(root: Path) -> None:
    data = b"apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n  name: data\n"
    write(root, {"a.yaml": b"\xef\xbb\xbf" + data})
    assert load_directory(str(root)).objects[0].metadata.name == "data"


def test_alias_bomb(root: Path) -> None:
    lines = [
        "apiVersion: reconcile/v1",
        "kind: Volume",
        "metadata:",
        "  name: data",
        "x0: &a0 [a, a, a, a, a]",
    ]
    for i in range(1, 10):
        lines.append(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    write(root, {"a.yaml": "\n".join(lines) + "\n"})
    error = only_error(root)
    assert (error.file, error.obj, error.field) == (f(root, "a.yaml"), None, None)
    assert "alias bomb" in error.message


def test_recursive_alias(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Volume
                metadata: &m
                  name: data
                  labels:
                    x: *m
                """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 3, 11, None, None)
    assert "recursive alias" in error.message


def test_merge_keys(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Container
                metadata:
                  name: web
                  labels: &common
                    team: core
                    tier: web
                  annotations:
                    <<: *common
                    tier: front
                spec:
                  <<: [{image: "busybox:1.36", user: "1"}, {image: "alpine:3", working_dir: /srv}]
                  user: "2000"
                """
        },
    )
    (obj,) = load_directory(str(root)).objects
    assert obj.metadata.annotations == {"team": "core", "tier": "front"}
    # explicit keys win over merged ones; among merged mappings the first wins
    assert (obj.spec.image, obj.spec.user, obj.spec.working_dir) == ("busybox:1.36", "2000", "/srv")


def test_merge_key_with_a_scalar(root: Path) -> None:
    write(root, {"a.yaml": container("web", extra="<<: 3\n")})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 8, 7, None, None)
    assert "a merge key (<<) takes a mapping" in error.message


@pytest.mark.parametrize(
    ("value", "tag", "column"),
    [
        ("!!python/object/apply:os.system ['true']", "python/object/apply:os.system", 9),
        ("!!python/object:builtins.dict {}", "python/object:builtins.dict", 9),
        ("!!set {a}", "set", 9),
        ("!!binary aGk=", "binary", 9),
    ],
)
def test_unsupported_tags(root: Path, value: str, tag: str, column: int) -> None:
    write(root, {"a.yaml": f"apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n  name: {value}\n"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 4, column, None, None)
    assert error.message == f"unsupported tag tag:yaml.org,2002:{tag}"


def test_explicit_str_tag_is_fine(root: Path) -> None:
    write(root, {"a.yaml": "apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n  name: !!str data\n"})
    assert load_directory(str(root)).objects[0].metadata.name == "data"


def test_multiple_documents_per_file_and_empty_documents(root: Path) -> None:
    write(root, {"a.yaml": "---\n" + container("a") + "---\n---\n" + container("b") + "...\n"})
    desired = load_directory(str(root))
    assert [o.metadata.name for o in desired.objects] == ["a", "b"]
    assert desired.sources == {
        "container/a": f"{f(root, 'a.yaml')}:3",
        "container/b": f"{f(root, 'a.yaml')}:12",
    }


# --- the directory


def test_nonexistent_directory(tmp_path: Path) -> None:
    error = only_error(tmp_path / "missing")
    assert where(error) == (str(tmp_path / "missing"), 0, 0, None, None)
    assert error.message == "manifests directory does not exist"
    assert str(error) == f"{tmp_path / 'missing'}: manifests directory does not exist"


def test_path_that_is_a_file(root: Path) -> None:
    write(root, {"a.yaml": container("web")})
    error = only_error(root / "a.yaml")
    assert error.message == "manifests directory is not a directory"


def test_empty_directory(root: Path) -> None:
    error = only_error(root)
    assert where(error) == (str(root), 0, 0, None, None)
    assert error.message == "no manifests found (*.yaml or *.yml files)"


def test_a_stack_file_alone_declares_an_empty_stack(root: Path) -> None:
    from reconciler.manifests.loader import load_directory

    write(root, {"stack.yaml": "name: gone\n"})
    desired = load_directory(str(root))
    assert (desired.stack, desired.objects) == ("gone", [])


def test_directory_with_only_non_yaml_files(root: Path) -> None:
    write(
        root,
        {"README.md": "# hi\n", "a.json": "{}\n", "notes.yaml.txt": "x\n", "sub/x.conf": "y\n"},
    )
    error = only_error(root)
    assert error.message == "no manifests found (*.yaml or *.yml files)"


def test_yaml_files_that_hold_no_documents(root: Path) -> None:
    write(root, {"a.yaml": "# only a comment\n", "b.yml": "---\n...\n"})
    error = only_error(root)
    assert where(error) == (str(root), 0, 0, None, None)
    assert error.message == "the manifest files hold no documents"


def test_hidden_files_and_directories_are_skipped(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web"),
            ".hidden.yaml": "::: not yaml [",
            ".git/config.yaml": "::: not yaml [",
            ".github/workflows/ci.yml": "on: push\n",
            "sub/.draft.yaml": container("web"),
        },
    )
    assert [o.metadata.name for o in load_directory(str(root)).objects] == ["web"]


def test_subdirectories_and_both_suffixes_are_read_in_a_stable_order(root: Path) -> None:
    write(
        root,
        {
            "b.yml": container("b"),
            "a.yaml": container("a"),
            "sub/deeper/d.yaml": container("d"),
            "sub/c.yml": container("c"),
            "sub/ignored.txt": "x",
        },
    )
    desired = load_directory(str(root))
    assert [o.metadata.name for o in desired.objects] == ["a", "b", "c", "d"]
    assert desired.sources["container/d"] == f"{f(root, 'sub/deeper/d.yaml')}:2"


def test_directory_symlink_loop(root: Path) -> None:
    write(root, {"a.yaml": container("web"), "sub/b.yaml": container("api")})
    (root / "sub" / "up").symlink_to("..")
    error = only_error(root)
    assert where(error) == (f(root, "sub/up"), 0, 0, None, None)
    assert error.message.startswith("symlink loop")


def test_file_symlink_loop(root: Path) -> None:
    write(root, {"c.yaml": container("web")})
    (root / "a.yaml").symlink_to("b.yaml")
    (root / "b.yaml").symlink_to("a.yaml")
    first, second = errors(root)
    assert where(first) == (f(root, "a.yaml"), 0, 0, None, None)
    assert where(second) == (f(root, "b.yaml"), 0, 0, None, None)
    assert first.message == second.message == "symlink loop"


def test_broken_symlink(root: Path) -> None:
    write(root, {"c.yaml": container("web")})
    (root / "a.yaml").symlink_to("missing.yaml")
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 0, 0, None, None)
    assert error.message.startswith("broken symlink")


def test_symlinks_to_files_and_directories_are_followed(root: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    write(
        shared,
        {
            "net.txt": network("front", "{}\n"),
            "vols/v.yaml": "apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n  name: v\n",
        },
    )
    (root / "net.yaml").symlink_to(shared / "net.txt")
    (root / "vols").symlink_to(shared / "vols")
    desired = load_directory(str(root))
    assert sorted(o.metadata.name for o in desired.objects) == ["front", "v"]


def test_file_over_the_size_cap(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_FILE_SIZE", 100)
    text = container("web")
    write(root, {"big.yaml": text + "# " + "x" * 100 + "\n", "small.yaml": "kind: Volume\n"})
    found = errors(root)
    big = found[0]
    assert where(big) == (f(root, "big.yaml"), 0, 0, None, None)
    size = (root / "big.yaml").stat().st_size
    assert big.message == f"file is {size} bytes, over the 100 byte limit"
    assert {e.file for e in found[1:]} == {f(root, "small.yaml")}


# --- files manifests refer to


def test_missing_env_file(root: Path) -> None:
    write(root, {"sub/a.yaml": container("web", extra="env_file: [missing.env]\n")})
    error = only_error(root)
    assert where(error) == (f(root, "sub/a.yaml"), 8, 14, "container/web", "spec.env_file[0]")
    assert error.message == f"env file {f(root, 'sub/missing.env')} does not exist"


def test_missing_env_file_given_as_a_string_in_a_service(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": """\
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: web
                spec:
                  template:
                    image: busybox:1.36
                    env_file: web.env
                """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 8, 15, "service/web", "spec.template.env_file[0]")
    assert "does not exist" in error.message


def test_env_file_with_a_bad_line(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web", extra="env_file:\n  - good.env\n  - bad.env\n"),
            "good.env": "A=1\n",
            "bad.env": "# comment\n\nNOEQUALS\n",
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 10, 7, "container/web", "spec.env_file[1]")
    assert error.message == f"{f(root, 'bad.env')}:3: expected KEY=VALUE"


def test_env_files_are_merged_under_env(root: Path) -> None:
    write(
        root,
        {
            "app/a.yaml": container("web", extra="env_file: [base.env, ../override.env]\nenv:\n  A: mine\n  N: 5\n"),
            "app/base.env": "# defaults\nA=from-file\nexport B='quoted'\nC=\"base\"\n\n",
            "override.env": "C=override\nD=\n",
        },
    )
    (obj,) = load_directory(str(root)).objects
    assert obj.spec.env == {"A": "mine", "B": "quoted", "C": "override", "D": "", "N": "5"}
    assert obj.spec.env_file == ["base.env", "../override.env"]


def test_relative_bind_mounts_become_absolute_next_to_the_manifest(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/tester")
    write(
        root,
        {
            "apps/a.yaml": container(
                "web",
                extra="""\
                volumes:
                  - ./data:/data:ro
                  - ../shared/./x/:/x
                  - /abs/path:/abs
                  - ~/cache:/cache
                  - {type: bind, source: rel, target: /rel}
                """,
            )
        },
    )
    (obj,) = load_directory(str(root)).objects
    mounts = obj.spec.volumes
    assert all(isinstance(m, BindMount) for m in mounts)
    assert [m.source for m in mounts] == [
        f(root, "apps/data"),
        f(root, "shared/x"),
        "/abs/path",
        "/home/tester/cache",
        f(root, "apps/rel"),
    ]
    assert [m.read_only for m in mounts] == [True, False, False, False, False]


def test_relative_bind_mount_in_a_service_template(root: Path) -> None:
    write(
        root,
        {
            "svc/a.yaml": """\
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: web
                spec:
                  template:
                    image: busybox:1.36
                    volumes: ["./html:/usr/share/html:ro"]
                """
        },
    )
    (obj,) = load_directory(str(root)).objects
    assert obj.spec.template.volumes[0].source == f(root, "svc/html")


def image(spec: str) -> str:
    return "apiVersion: reconcile/v1\nkind: Image\nmetadata:\n  name: app\nspec:\n" + textwrap.indent(
        textwrap.dedent(spec), "  "
    )


def test_build_context_missing(root: Path) -> None:
    write(root, {"img/a.yaml": image("build:\n  context: ctx\n")})
    error = only_error(root)
    assert where(error) == (f(root, "img/a.yaml"), 7, 5, "image/app", "spec.build.context")
    assert error.message == f"build context {f(root, 'img/ctx')} is not a directory"


def test_build_context_without_a_containerfile(root: Path) -> None:
    write(root, {"a.yaml": image("build:\n  context: ctx\n"), "ctx/README": "x"})
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 7, 5, "image/app", "spec.build.containerfile")
    assert error.message == f"no Containerfile in build context {f(root, 'ctx')}"


def test_build_context_with_a_named_containerfile_missing(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": image("build:\n  context: ctx\n  containerfile: Prod.Dockerfile\n"),
            "ctx/Dockerfile": "FROM x\n",
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "a.yaml"), 8, 5, "image/app", "spec.build.containerfile")
    assert "no Prod.Dockerfile in build context" in error.message


def test_build_context_with_a_dockerfile_is_made_absolute(root: Path) -> None:
    write(root, {"img/a.yaml": image("build:\n  context: ../ctx\n"), "ctx/Dockerfile": "FROM x\n"})
    (obj,) = load_directory(str(root)).objects
    assert obj.spec.build.context == f(root, "ctx")


def test_import_tarball_missing(root: Path) -> None:
    write(root, {"img/a.yaml": image("import:\n  path: rootfs.tar\ntag: app:1\n")})
    error = only_error(root)
    assert where(error) == (f(root, "img/a.yaml"), 7, 5, "image/app", "spec.import.path")
    assert error.message == f"tarball {f(root, 'img/rootfs.tar')} does not exist"


def test_import_tarball_is_made_absolute(root: Path) -> None:
    write(root, {"img/a.yaml": image("import:\n  path: rootfs.tar\n"), "img/rootfs.tar": b"\0"})
    (obj,) = load_directory(str(root)).objects
    assert obj.spec.import_.path == f(root, "img/rootfs.tar")
    assert obj.model_dump(mode="json", by_alias=True)["spec"]["import"] == {"path": f(root, "img/rootfs.tar")}


# --- stack name


def test_stack_name_from_stack_yaml(root: Path) -> None:
    write(root, {"stack.yaml": "name: prod\n", "a.yaml": container("web")})
    assert load_directory(str(root)).stack == "prod"


@pytest.mark.parametrize(
    ("directory", "stack"),
    [
        ("My_Stack", "my-stack"),
        ("web.example.com", "web-example-com"),
        ("--a--b--", "a-b"),
        ("x" * 70, "x" * 63),
    ],
)
def test_stack_name_from_the_directory(tmp_path: Path, directory: str, stack: str) -> None:
    root = write(tmp_path / directory, {"a.yaml": container("web")})
    assert load_directory(str(root)).stack == stack


def test_stack_name_that_cannot_come_from_the_directory(tmp_path: Path) -> None:
    root = write(tmp_path / "___", {"a.yaml": container("web")})
    error = only_error(root)
    assert where(error) == (str(root), 0, 0, None, None)
    assert error.message == "cannot make a stack name from '___': set it in stack.yaml"


def test_stack_argument_wins_over_stack_yaml(root: Path) -> None:
    write(root, {"stack.yaml": "name: prod\n", "a.yaml": container("web")})
    assert load_directory(str(root), stack="given").stack == "given"


def test_stack_yaml_in_a_subdirectory_is_a_manifest(root: Path) -> None:
    write(root, {"a.yaml": container("web"), "sub/stack.yaml": container("api")})
    desired = load_directory(str(root))
    assert (desired.stack, len(desired.objects)) == ("stack", 2)


@pytest.mark.parametrize(
    ("text", "line", "column", "field", "message"),
    [
        ("name: Prod_X\n", 1, 1, "name", "'Prod_X' is not a DNS label"),
        ("nam: prod\n", 1, 1, "nam", "unknown field 'nam'; did you mean 'name'?"),
        ("name: [\n", 2, 1, None, "while parsing a flow node"),
        ("name: a\n---\nname: b\n", 0, 0, None, "expected one document with 'name: STACK'"),
        ("", 0, 0, None, "expected one document with 'name: STACK'"),
        ("- prod\n", 1, 1, None, "valid dictionary"),
    ],
)
def test_invalid_stack_yaml(root: Path, text: str, line: int, column: int, field: str | None, message: str) -> None:
    write(root, {"stack.yaml": text, "a.yaml": container("web")})
    found = errors(root)
    error = found[0]
    assert where(error) == (f(root, "stack.yaml"), line, column, None, field)
    assert message in error.message
    assert all(e.file == f(root, "stack.yaml") for e in found)


# --- all at once


def test_every_error_of_a_directory_is_reported_in_one_run_sorted(root: Path) -> None:
    write(
        root,
        {
            "c.yaml": container("c", extra="restart: sometimes\n"),
            "a.yaml": container("a", extra="imgae: x\n"),
            "b/b.yaml": "key: [unclosed\n",
            "d.yaml": container("d", extra="ports: [99999]\ninit: maybe\n"),
        },
    )
    found = errors(root)
    assert [(os.path.relpath(e.file, root), e.line) for e in found] == [
        ("a.yaml", 8),
        ("b/b.yaml", 2),
        ("c.yaml", 8),
        ("d.yaml", 8),
        ("d.yaml", 9),
    ]
    assert found == sorted(found)


def test_cross_object_errors_are_reported_with_document_errors(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("a", extra="depends_on: [missing]\n"),
            "b.yaml": container("b", extra="init: maybe\n"),
        },
    )
    found = errors(root)
    assert [(os.path.relpath(e.file, root), e.field) for e in found] == [
        ("a.yaml", "spec.depends_on.missing"),
        ("b.yaml", "spec.init"),
    ]


def test_cross_checks_still_run_beside_a_bad_field(root: Path) -> None:
    write(
        root,
        {
            "a.yaml": container("web", extra="resources: {memory: 1x}\nnetworks: [missing]\nports: ['8080:80']\n"),
            "b.yaml": container("api", extra="ports: ['8080:80']\n"),
        },
    )
    memory, network, port = errors(root)
    assert where(memory) == (f(root, "a.yaml"), 8, 15, "container/web", "spec.resources.memory")
    assert "invalid size '1x'" in memory.message
    assert where(network) == (f(root, "a.yaml"), 9, 14, "container/web", "spec.networks.missing")
    assert where(port) == (f(root, "b.yaml"), 8, 11, "container/api", "spec.ports[0]")


def test_one_error_rejects_the_whole_directory(root: Path) -> None:
    write(root, {"a.yaml": container("good"), "b.yaml": container("bad", extra="init: maybe\n")})
    with pytest.raises(InvalidManifests) as info:
        load_directory(str(root))
    assert [e.obj for e in info.value.errors] == ["container/bad"]
    assert "good" not in str(info.value)


def test_error_string_format(root: Path) -> None:
    write(root, {"a.yaml": container("web", extra="ports: ['8080:80', 70000]\n")})
    with pytest.raises(InvalidManifests) as info:
        load_directory(str(root))
    (error,) = info.value.errors
    expected = (
        f"{f(root, 'a.yaml')}:8:22: container/web: spec.ports[1].container_port: "
        "Input should be less than or equal to 65535"
    )
    assert str(error) == expected
    assert str(info.value) == expected
    assert error.as_dict() == {
        "file": f(root, "a.yaml"),
        "line": 8,
        "column": 22,
        "object": "container/web",
        "field": "spec.ports[1].container_port",
        "message": "Input should be less than or equal to 65535",
    }


def test_a_valid_directory_loads(root: Path) -> None:
    write(
        root,
        {
            "stack.yaml": "name: shop\n",
            "net.yaml": network("front", "subnet: 10.10.0.0/24\n"),
            "data.yaml": "apiVersion: reconcile/v1\nkind: Volume\nmetadata:\n  name: pg\n",
            "db.yaml": container(
                "db",
                image="postgres:16",
                extra="networks: [front]\nvolumes: ['pg:/var/lib/postgresql/data']\n",
            ),
            "web.yaml": """\
                apiVersion: reconcile/v1
                kind: Service
                metadata:
                  name: web
                spec:
                  replicas: 3
                  template:
                    image: nginx:1.27
                    ports: ["8088:80"]
                    networks: [front]
                    depends_on:
                      db: {condition: healthy}
                """,
        },
    )
    desired = load_directory(str(root))
    assert desired.stack == "shop"
    assert sorted(desired.sources) == ["container/db", "network/front", "service/web", "volume/pg"]


# --- hints and file references added after review


def test_container_fields_under_a_service_spec_point_to_the_template(root: Path) -> None:
    write(
        root,
        {
            "svc.yaml": """\
            apiVersion: reconcile/v1
            kind: Service
            metadata: {name: api}
            spec:
              replicas: 2
              image: busybox:1.36
              template:
                image: busybox:1.36
            """
        },
    )
    error = only_error(root)
    assert where(error) == (f(root, "svc.yaml"), 6, 3, "service/api", "spec.image")
    assert error.message == "unknown field 'image'; container fields of a Service go under spec.template"


def test_build_falls_back_to_a_dockerfile_and_records_it(root: Path) -> None:
    (root / "app").mkdir()
    (root / "app" / "Dockerfile").write_text("FROM scratch\n")
    write(
        root,
        {
            "img.yaml": """\
            apiVersion: reconcile/v1
            kind: Image
            metadata: {name: app}
            spec:
              build: {context: ./app}
            """
        },
    )
    (image,) = load_directory(str(root)).objects
    assert image.spec.build is not None
    assert image.spec.build.containerfile == "Dockerfile"
    assert image.spec.build.context == str(root / "app")


def test_upper_case_suffixes_are_read(root: Path) -> None:
    write(root, {"NET.YAML": "apiVersion: reconcile/v1\nkind: Network\nmetadata: {name: n}\n"})
    assert [o.metadata.name for o in load_directory(str(root)).objects] == ["n"]


def test_stack_file_gets_the_same_file_checks(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        root,
        {"stack.yaml": "name:\n\tshop\n", "n.yaml": "apiVersion: reconcile/v1\nkind: Network\nmetadata: {name: n}\n"},
    )
    error = only_error(root)
    assert (error.file, error.line, error.column) == (f(root, "stack.yaml"), 2, 1)
    assert "tab character in indentation" in error.message
    write(root, {"stack.yaml": "name: shop\n" + "# padding\n" * 10})
    monkeypatch.setattr(loader, "MAX_FILE_SIZE", 100)  # n.yaml is 59 bytes, stack.yaml 111
    error = only_error(root)
    assert error.file == f(root, "stack.yaml") and "over the 100 byte limit" in error.message
