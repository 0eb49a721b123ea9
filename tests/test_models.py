"""Canonical forms: every short form users write is stored as one long form, so two
manifests that mean the same thing dump (and diff, and hash) identically.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.model import ownership
from reconciler.model.container import Container, ContainerSpec, NetworkAttachment
from reconciler.model.image import Image, ImageSpec
from reconciler.model.manifest import canonical
from reconciler.model.network import NetworkSpec
from reconciler.model.service import Service, ServiceSpec, UpdatePolicy, resolve_count
from reconciler.model.volume import Volume

MI = 1024**2


def spec(**fields: Any) -> ContainerSpec:
    return ContainerSpec.model_validate({"image": "busybox:1.36", **fields})


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def errors_of(model: type[Any], data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def spec_error(**fields: Any) -> str:
    """The messages of a ContainerSpec that must not validate, joined."""
    return " | ".join(message for _, message in errors_of(ContainerSpec, {"image": "busybox:1.36", **fields}))


def container(**spec_fields: Any) -> Container:
    return Container.model_validate(
        {
            "apiVersion": "reconcile/v1",
            "kind": "Container",
            "metadata": {"name": "web"},
            "spec": {"image": "busybox:1.36", **spec_fields},
        }
    )


# --- same meaning


def test_512m_and_536870912_dump_identically() -> None:
    short = container(resources={"memory": "512m"}, tmpfs=["/run:size=512m"])
    long = container(resources={"memory": 536870912}, tmpfs=[{"target": "/run", "size": 536870912}])
    assert dump(short) == dump(long)
    assert canonical(short) == canonical(long)
    assert dump(short)["spec"]["resources"]["memory"] == 512 * MI
    assert dump(short)["spec"]["tmpfs"][0]["size"] == 512 * MI


@pytest.mark.parametrize("memory", ["512m", "512M", "512mb", "512MiB", "512Mi", "0.5g", 536870912, "536870912"])
def test_every_spelling_of_512_mebibytes_is_one_value(memory: object) -> None:
    assert dump(container(resources={"memory": memory})) == dump(container(resources={"memory": 536870912}))


def test_short_and_long_forms_dump_identically() -> None:
    short = container(
        ports=["127.0.0.1:8080:80", "53:53/udp", "9000"],
        volumes=["data:/data:ro", "/srv:/srv"],
        tmpfs=["/run:size=64m,mode=1777"],
        env=["A=1", "B=true"],
        restart="on-failure:3",
        healthcheck={"test": "curl -f http://localhost/", "interval": "1m30s", "timeout": "500ms"},
        cap_add=["net_admin"],
        depends_on=["db"],
        networks=["front"],
        stop_signal="term",
        stop_grace_period="1m",
        resources={"cpus": "500m"},
        command="echo hi",
    )
    long = container(
        ports=[
            {"container_port": 80, "host_port": 8080, "host_ip": "127.0.0.1"},
            {"container_port": 53, "host_port": 53, "protocol": "udp"},
            {"container_port": 9000},
        ],
        volumes=[
            {"type": "volume", "source": "data", "target": "/data", "read_only": True},
            {"type": "bind", "source": "/srv", "target": "/srv"},
        ],
        tmpfs=[{"target": "/run", "size": 64 * MI, "mode": 0o1777}],
        env={"A": 1, "B": True},
        restart={"name": "on-failure", "max_retries": 3},
        healthcheck={
            "test": ["CMD-SHELL", "curl -f http://localhost/"],
            "interval": 90,
            "timeout": 0.5,
        },
        cap_add=["CAP_NET_ADMIN"],
        depends_on={"db": {"condition": "started"}},
        networks={"front": None},
        stop_signal=15,
        stop_grace_period=60,
        resources={"cpus": 0.5},
        command=["/bin/sh", "-c", "echo hi"],
    )
    assert dump(short) == dump(long)


def test_dump_is_json_compatible_and_round_trips() -> None:
    obj = container(ports=["8000-8001:80-81"], networks={"front": {"ipv4_address": "10.0.0.5"}})
    data = dump(obj)
    assert data["spec"]["networks"]["front"]["ipv4_address"] == "10.0.0.5"
    assert dump(Container.model_validate(data)) == data


# --- ports


def port(
    container_port: int,
    host_port: int | None = None,
    host_ip: str | None = None,
    protocol: str = "tcp",
):
    return {
        "container_port": container_port,
        "host_port": host_port,
        "host_ip": host_ip,
        "protocol": protocol,
    }


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (80, [port(80)]),
        ("80", [port(80)]),
        ("80/udp", [port(80, protocol="udp")]),
        ("8080:80", [port(80, 8080)]),
        ("8080:80/sctp", [port(80, 8080, protocol="sctp")]),
        ("127.0.0.1:8080:80", [port(80, 8080, "127.0.0.1")]),
        ("127.0.0.1::80", [port(80, None, "127.0.0.1")]),
        ("0.0.0.0:8080:80", [port(80, 8080)]),
        ("[::1]:53:53/udp", [port(53, 53, "::1", "udp")]),
        ("8000-8002:80-82", [port(80, 8000), port(81, 8001), port(82, 8002)]),
        ("90-91", [port(90), port(91)]),
        (
            "127.0.0.1:7000-7001:7000-7001/udp",
            [port(7000, 7000, "127.0.0.1", "udp"), port(7001, 7001, "127.0.0.1", "udp")],
        ),
        ({"container_port": 80, "host_port": 8080}, [port(80, 8080)]),
        ({"container_port": 80, "host_ip": "0.0.0.0"}, [port(80)]),
        ({"container_port": 80, "host_ip": "::0001"}, [port(80, host_ip="::1")]),
    ],
)
def test_ports(written: object, expected: list[dict[str, Any]]) -> None:
    assert dump(spec(ports=[written]))["ports"] == expected


def test_ports_keep_their_order_across_ranges() -> None:
    ports = spec(ports=["1-2", 5, "3"]).ports
    assert [p.container_port for p in ports] == [1, 2, 5, 3]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("8000-8002:80-81", "host and container ranges differ in length"),
        ("82-80", "port range 82-80 ends before it starts"),
        ("1-70000", "port range 1-70000 goes past 65535"),
        ("x", "invalid port 'x'"),
        ("1.2.3.4:80", "invalid port '1.2.3.4:80'"),
        ("80/xyz", "Input should be 'tcp', 'udp' or 'sctp'"),
        ("80/TCP", "invalid port '80/TCP'"),
        ("0:80", "greater than or equal to 1"),
        ("8080:0", "greater than or equal to 1"),
        (70000, "less than or equal to 65535"),
        (
            {"container_port": 80, "host_ip": "localhost"},
            "does not appear to be an IPv4 or IPv6 address",
        ),
        ({"container_port": 80, "hostport": 1}, "Extra inputs are not permitted"),
        (True, "valid dictionary"),
    ],
)
def test_invalid_ports(written: object, message: str) -> None:
    assert message in spec_error(ports=[written])


def test_ports_must_be_a_list() -> None:
    assert "valid list" in spec_error(ports="8080:80")


# --- volumes


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (
            "data:/data",
            {
                "type": "volume",
                "source": "data",
                "target": "/data",
                "read_only": False,
                "subpath": None,
            },
        ),
        (
            "data:/data:ro",
            {
                "type": "volume",
                "source": "data",
                "target": "/data",
                "read_only": True,
                "subpath": None,
            },
        ),
        (
            "data:/data:rw",
            {
                "type": "volume",
                "source": "data",
                "target": "/data",
                "read_only": False,
                "subpath": None,
            },
        ),
        (
            "data:/data:ro,z",
            {
                "type": "volume",
                "source": "data",
                "target": "/data",
                "read_only": True,
                "subpath": None,
            },
        ),
        (
            "/srv/www:/www",
            {
                "type": "bind",
                "source": "/srv/www",
                "target": "/www",
                "read_only": False,
                "create": False,
            },
        ),
        (
            "./conf:/etc/app:ro",
            {
                "type": "bind",
                "source": "./conf",
                "target": "/etc/app",
                "read_only": True,
                "create": False,
            },
        ),
        (
            "../up:/up",
            {
                "type": "bind",
                "source": "../up",
                "target": "/up",
                "read_only": False,
                "create": False,
            },
        ),
        (
            "~/cache:/cache",
            {
                "type": "bind",
                "source": "~/cache",
                "target": "/cache",
                "read_only": False,
                "create": False,
            },
        ),
        (
            {"type": "volume", "source": "data", "target": "/d", "subpath": "sub"},
            {
                "type": "volume",
                "source": "data",
                "target": "/d",
                "read_only": False,
                "subpath": "sub",
            },
        ),
        (
            {"type": "bind", "source": "rel", "target": "/r", "create": True},
            {"type": "bind", "source": "rel", "target": "/r", "read_only": False, "create": True},
        ),
    ],
)
def test_volumes(written: object, expected: dict[str, Any]) -> None:
    assert dump(spec(volumes=[written]))["volumes"] == [expected]


@pytest.mark.parametrize(
    ("volumes", "message"),
    [
        (["/data"], "anonymous volumes are not supported; use NAME:/data"),
        (["a:/b:ro:x"], "use SOURCE:TARGET[:ro]"),
        (["data:/d:bogus"], "unknown option 'bogus'"),
        (["data:relative"], "mount target 'relative' must be an absolute path"),
        (["Data:/d"], "'Data' is not a DNS label"),
        (["data:/d", "other:/d/"], "two mounts share the target /d"),
        ([{"source": "v", "target": "/v"}], "Unable to extract tag using discriminator 'type'"),
        (
            [{"type": "volume", "source": "v", "target": "/v", "create": True}],
            "Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_volumes(volumes: list[object], message: str) -> None:
    assert message in spec_error(volumes=volumes)


def test_a_volume_and_a_tmpfs_cannot_share_a_target() -> None:
    assert "two mounts share the target /run" in spec_error(volumes=["data:/run"], tmpfs=["/run/"])


# --- tmpfs


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("/run", {"target": "/run", "size": None, "mode": 0o1777}),
        ("/run:size=64m", {"target": "/run", "size": 64 * MI, "mode": 0o1777}),
        ("/tmp:size=64m,mode=1777", {"target": "/tmp", "size": 64 * MI, "mode": 0o1777}),
        ("/tmp:mode=0755", {"target": "/tmp", "size": None, "mode": 0o755}),
        ("/tmp:mode=700,size=1g", {"target": "/tmp", "size": 1024 * MI, "mode": 0o700}),
        ({"target": "/x", "mode": "0755"}, {"target": "/x", "size": None, "mode": 0o755}),
        (
            {"target": "/x", "mode": 0o700, "size": "1k"},
            {"target": "/x", "size": 1024, "mode": 0o700},
        ),
    ],
)
def test_tmpfs(written: object, expected: dict[str, Any]) -> None:
    assert dump(spec(tmpfs=[written]))["tmpfs"] == [expected]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("/run:size", "invalid tmpfs option 'size'"),
        ("/run:uid=0", "invalid tmpfs option 'uid=0'"),
        ("run", "mount target 'run' must be an absolute path"),
        ("/run:size=lots", "invalid size 'lots'"),
        ("/run:mode=999", "base 8"),
        ({"target": "/x", "mode": 0o17777}, "less than or equal to 4095"),
    ],
)
def test_invalid_tmpfs(written: object, message: str) -> None:
    assert message in spec_error(tmpfs=[written])


# --- env


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (["A=1", "B", "C=x=y", "D="], {"A": "1", "B": "", "C": "x=y", "D": ""}),
        (
            {"A": 1, "B": True, "C": None, "D": 1.5, "E": False, "F": "text"},
            {"A": "1", "B": "true", "C": "", "D": "1.5", "E": "false", "F": "text"},
        ),
        ({"PORT": 8080}, {"PORT": "8080"}),
        ([], {}),
        ({}, {}),
        (["A=1", "A=2"], {"A": "2"}),
    ],
)
def test_env(written: object, expected: dict[str, str]) -> None:
    assert spec(env=written).env == expected


def test_env_list_and_mapping_dump_identically() -> None:
    assert dump(spec(env=["A=1", "B=true"])) == dump(spec(env={"A": 1, "B": True}))


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (["=x"], "invalid environment variable name ''"),
        ({"A=B": "x"}, "invalid environment variable name 'A=B'"),
        ({"": "x"}, "invalid environment variable name ''"),
        ([1], "env list items are KEY=VALUE strings"),
        ("A=1", "valid dictionary"),
        ({"A": [1]}, "valid string"),
    ],
)
def test_invalid_env(written: object, message: str) -> None:
    assert message in spec_error(env=written)


def test_env_file_accepts_a_single_string() -> None:
    assert spec(env_file="app.env").env_file == ["app.env"]
    assert spec(env_file=["a.env", "b.env"]).env_file == ["a.env", "b.env"]


# --- restart


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("no", {"name": "no", "max_retries": None}),
        (False, {"name": "no", "max_retries": None}),
        ("always", {"name": "always", "max_retries": None}),
        ("unless-stopped", {"name": "unless-stopped", "max_retries": None}),
        ("on-failure", {"name": "on-failure", "max_retries": None}),
        ("on-failure:3", {"name": "on-failure", "max_retries": 3}),
        ("on-failure:0", {"name": "on-failure", "max_retries": 0}),
        ({"name": "on-failure", "max_retries": 2}, {"name": "on-failure", "max_retries": 2}),
        ({}, {"name": "no", "max_retries": None}),
    ],
)
def test_restart(written: object, expected: dict[str, Any]) -> None:
    assert dump(spec(restart=written))["restart"] == expected


def test_restart_default_is_no() -> None:
    assert dump(spec())["restart"] == {"name": "no", "max_retries": None}


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("always:3", "max_retries applies only to on-failure"),
        ("on-failure:x", "invalid restart policy 'on-failure:x': use on-failure:N"),
        ("on-failure:-1", "use on-failure:N"),
        ("sometimes", "Input should be 'no', 'on-failure', 'always' or 'unless-stopped'"),
        (True, "valid dictionary"),
        ({"name": "on-failure", "max_retries": -1}, "greater than or equal to 0"),
    ],
)
def test_invalid_restart(written: object, message: str) -> None:
    assert message in spec_error(restart=written)


# --- healthcheck


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ("curl -f http://localhost/", ["CMD-SHELL", "curl -f http://localhost/"]),
        (["CMD", "true"], ["CMD", "true"]),
        (["CMD-SHELL", "exit 0"], ["CMD-SHELL", "exit 0"]),
        (["pg_isready", "-U", "app"], ["CMD", "pg_isready", "-U", "app"]),
        (["NONE"], ["NONE"]),
    ],
)
def test_healthcheck_test(test: object, expected: list[str]) -> None:
    assert spec(healthcheck={"test": test}).healthcheck.test == expected  # type: ignore[union-attr]


def test_healthcheck_durations_and_defaults() -> None:
    check = dump(spec(healthcheck={"test": "true", "interval": "1m30s", "start_period": "2s", "retries": 5}))
    assert check["healthcheck"] == {
        "test": ["CMD-SHELL", "true"],
        "interval": 90.0,
        "timeout": 30.0,
        "retries": 5,
        "start_period": 2.0,
        "start_interval": 5.0,
        "disable": False,
    }


@pytest.mark.parametrize(
    ("healthcheck", "message"),
    [
        ({"test": ["CMD"]}, "a healthcheck test needs a command"),
        ({"test": ["CMD-SHELL"]}, "a healthcheck test needs a command"),
        ({"test": []}, "a healthcheck test needs a command"),
        ({}, "Field required"),
        ({"test": "true", "interval": "soon"}, "invalid duration 'soon'"),
        ({"test": "true", "retries": -1}, "greater than or equal to 0"),
        ({"test": "true", "intervall": "1s"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_healthcheck(healthcheck: dict[str, Any], message: str) -> None:
    assert message in spec_error(healthcheck=healthcheck)


# --- capabilities


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (["net_admin"], ["CAP_NET_ADMIN"]),
        (["CAP_SYS_ADMIN", "NET_ADMIN", "cap_net_admin"], ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]),
        (["SYS_TIME", "CHOWN", "KILL"], ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_TIME"]),
        (["all"], ["ALL"]),
        (["ALL", "net_raw"], ["ALL", "CAP_NET_RAW"]),
        ([], []),
    ],
)
def test_capabilities(written: list[str], expected: list[str]) -> None:
    assert spec(cap_add=written).cap_add == expected
    assert spec(cap_drop=written).cap_drop == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (["BOGUS"], "unknown capability 'BOGUS'"),
        (["CAP_"], "unknown capability 'CAP_'"),
        ([1], "capabilities are names such as NET_ADMIN"),
        ("NET_ADMIN", "valid list"),
    ],
)
def test_invalid_capabilities(written: object, message: str) -> None:
    assert message in spec_error(cap_add=written)


# --- depends_on


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (["a", "b"], {"a": {"condition": "started"}, "b": {"condition": "started"}}),
        ("a", {"a": {"condition": "started"}}),
        (
            {"a": None, "b": {"condition": "healthy"}},
            {"a": {"condition": "started"}, "b": {"condition": "healthy"}},
        ),
        ({"job": {"condition": "completed"}}, {"job": {"condition": "completed"}}),
        ({"a": {}}, {"a": {"condition": "started"}}),
        ([], {}),
    ],
)
def test_depends_on(written: object, expected: dict[str, Any]) -> None:
    assert dump(spec(depends_on=written))["depends_on"] == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ([{"a": 1}], "list items must be names; use a mapping to set a condition"),
        ({"a": {"condition": "ready"}}, "Input should be 'started', 'healthy' or 'completed'"),
        (["Bad"], "'Bad' is not a DNS label"),
        (3, "valid dictionary"),
    ],
)
def test_invalid_depends_on(written: object, message: str) -> None:
    assert message in spec_error(depends_on=written)


# --- signals


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("SIGTERM", "SIGTERM"),
        ("term", "SIGTERM"),
        ("sigusr1", "SIGUSR1"),
        ("QUIT", "SIGQUIT"),
        (9, "SIGKILL"),
        (15, "SIGTERM"),
        (None, None),
    ],
)
def test_stop_signal(written: object, expected: str | None) -> None:
    assert spec(stop_signal=written).stop_signal == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("SIGFOO", "unknown signal 'SIGFOO'"),
        ("sig_dfl", "unknown signal 'sig_dfl'"),
        (999, "unknown signal number 999"),
        (0, "unknown signal number 0"),
        (True, "valid string"),
    ],
)
def test_invalid_stop_signal(written: object, message: str) -> None:
    assert message in spec_error(stop_signal=written)


def test_stop_grace_period() -> None:
    assert spec().stop_grace_period == 10.0
    assert spec(stop_grace_period="1m30s").stop_grace_period == 90.0
    assert "invalid duration" in spec_error(stop_grace_period="forever")


# --- container networks


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (
            ["front", "back"],
            {
                "front": {"aliases": [], "ipv4_address": None},
                "back": {"aliases": [], "ipv4_address": None},
            },
        ),
        ("front", {"front": {"aliases": [], "ipv4_address": None}}),
        ({"front": None}, {"front": {"aliases": [], "ipv4_address": None}}),
        (
            {"front": {"aliases": ["api"], "ipv4_address": "10.0.0.2"}},
            {"front": {"aliases": ["api"], "ipv4_address": "10.0.0.2"}},
        ),
    ],
)
def test_container_networks(written: object, expected: dict[str, Any]) -> None:
    assert dump(spec(networks=written))["networks"] == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"networks": [{"front": 1}]}, "list items must be network names"),
        ({"networks": {"Front": {}}}, "'Front' is not a DNS label"),
        ({"networks": {"front": {"ipv4_address": "300.1.1.1"}}}, "valid IPv4 address"),
        ({"networks": {"front": {"ipv4_address": "fd00::1"}}}, "valid IPv4 address"),
        ({"networks": {"front": {"aliases": ["Bad_Alias"]}}}, "'Bad_Alias' is not a DNS label"),
        (
            {"network_mode": "host", "networks": ["front"]},
            "network_mode host cannot be combined with networks",
        ),
        (
            {"network_mode": "none", "ports": ["80"]},
            "ports cannot be published with network_mode none",
        ),
        ({"network_mode": "container:x"}, "Input should be 'bridge', 'host' or 'none'"),
    ],
)
def test_invalid_container_networking(fields: dict[str, Any], message: str) -> None:
    assert message in spec_error(**fields)


def test_network_attachment_defaults() -> None:
    assert dump(NetworkAttachment()) == {"aliases": [], "ipv4_address": None}


# --- other container fields


def test_command_entrypoint_working_dir_user() -> None:
    s = spec(
        command="echo hi",
        entrypoint=["/bin/x", "-v"],
        working_dir="/a/../b/",
        user=1000,
        group_add=[10, "wheel"],
    )
    assert s.command == ["/bin/sh", "-c", "echo hi"]
    assert s.entrypoint == ["/bin/x", "-v"]
    assert s.working_dir == "/b"
    assert s.user == "1000"
    assert s.group_add == ["10", "wheel"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"working_dir": "srv"}, "'srv' must be an absolute path"),
        ({"user": "a:b:c"}, "String should match pattern"),
        ({"user": "app user"}, "String should match pattern"),
        ({"hostname": "Bad_host"}, "'Bad_host' is not a DNS label"),
        ({"hostname": "a" * 64}, "longer than 63 characters"),
        ({"image": 3}, "valid string"),
        ({"imagee": "x"}, "Extra inputs are not permitted"),
        ({"pid": "container"}, "Input should be 'private' or 'host'"),
    ],
)
def test_invalid_container_fields(fields: dict[str, Any], message: str) -> None:
    assert message in spec_error(**fields)


def test_resources() -> None:
    resources = dump(
        spec(
            resources={
                "memory": "512m",
                "memory_swap": "1g",
                "cpus": "1500m",
                "pids": 100,
                "cpuset": "0-3,5",
            }
        )
    )["resources"]
    assert resources == {
        "memory": 512 * MI,
        "memory_swap": 1024 * MI,
        "memory_reservation": None,
        "cpus": 1.5,
        "cpu_shares": None,
        "cpuset": "0-3,5",
        "pids": 100,
    }


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"memory": "1m"}, "memory must be at least 6m"),
        ({"memory_swap": "1g"}, "memory_swap needs memory"),
        ({"memory": "1g", "memory_swap": "512m"}, "memory_swap must be at least memory"),
        ({"memory": ".inf"}, "invalid size"),
        ({"memory": float("inf")}, "a size must be a finite number"),
        ({"cpus": 0}, "cpus must be greater than 0"),
        ({"cpus": float("inf")}, "cpus must be a finite number"),
        ({"cpu_shares": 1}, "greater than or equal to 2"),
        ({"cpuset": "a"}, "String should match pattern"),
        ({"pids": 0}, "greater than or equal to 1"),
    ],
)
def test_invalid_resources(resources: dict[str, Any], message: str) -> None:
    assert message in spec_error(resources=resources)


def test_models_are_frozen() -> None:
    s = spec()
    with pytest.raises(ValidationError):
        s.image = "alpine:3"  # type: ignore[misc]


# --- metadata


def test_metadata_labels_become_strings() -> None:
    obj = Volume.model_validate(
        {
            "kind": "Volume",
            "metadata": {
                "name": "data",
                "labels": {"tier": 1, "backup": True},
                "annotations": {"n": None},
            },
        }
    )
    assert obj.metadata.labels == {"tier": "1", "backup": "true"}
    assert obj.metadata.annotations == {"n": ""}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"name": "data", "labels": {"reconcile.owner": "x"}}, "reserved for reconcile"),
        ({"name": "data", "labels": {"a b": "x"}}, "invalid label key 'a b'"),
        ({"name": "data", "annotations": {"": "x"}}, "invalid label key ''"),
        ({"name": "Data"}, "'Data' is not a DNS label"),
        ({"name": "-data"}, "is not a DNS label"),
        ({"name": "a" * 64}, "longer than 63 characters"),
        ({"labels": {}}, "Field required"),
    ],
)
def test_invalid_metadata(metadata: dict[str, Any], message: str) -> None:
    messages = " | ".join(m for _, m in errors_of(Volume, {"kind": "Volume", "metadata": metadata}))
    assert message in messages


# --- networks


def test_network_spec_defaults() -> None:
    assert dump(NetworkSpec()) == {
        "driver": "bridge",
        "subnet": None,
        "gateway": None,
        "ip_range": None,
        "internal": False,
        "mtu": None,
    }


def test_network_spec_valid() -> None:
    net = dump(
        NetworkSpec(
            subnet="10.0.0.0/24",
            gateway="10.0.0.254",
            ip_range="10.0.0.128/25",
            mtu=1400,
            internal=True,
        )
    )  # type: ignore[arg-type]
    assert (net["subnet"], net["gateway"], net["ip_range"], net["mtu"]) == (
        "10.0.0.0/24",
        "10.0.0.254",
        "10.0.0.128/25",
        1400,
    )
    assert dump(NetworkSpec(subnet="10.0.0.0/30"))["subnet"] == "10.0.0.0/30"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"subnet": "10.0.0.0/31"}, "subnet 10.0.0.0/31 is too small: use /30 or larger"),
        ({"subnet": "10.0.0.1/24"}, "not a valid IPv4 network"),
        ({"subnet": "fd00::/64"}, "not a valid IPv4 network"),
        (
            {"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"},
            "gateway 10.0.1.1 is outside subnet 10.0.0.0/24",
        ),
        ({"subnet": "10.0.0.0/24", "gateway": "10.0.0.0"}, "is the network or broadcast address"),
        ({"subnet": "10.0.0.0/24", "gateway": "10.0.0.255"}, "is the network or broadcast address"),
        (
            {"subnet": "10.0.0.0/24", "ip_range": "10.0.1.0/28"},
            "ip_range 10.0.1.0/28 is outside subnet 10.0.0.0/24",
        ),
        ({"subnet": "10.0.0.0/24", "ip_range": "10.0.0.0/23"}, "is outside subnet"),
        ({"gateway": "10.0.0.1"}, "gateway and ip_range need a subnet"),
        ({"ip_range": "10.0.0.0/28"}, "gateway and ip_range need a subnet"),
        ({"mtu": 67}, "greater than or equal to 68"),
        ({"driver": "overlay"}, "Input should be 'bridge'"),
    ],
)
def test_invalid_network_spec(fields: dict[str, Any], message: str) -> None:
    assert message in " | ".join(m for _, m in errors_of(NetworkSpec, fields))


# --- services


def test_update_policy_defaults() -> None:
    assert dump(UpdatePolicy()) == {
        "parallelism": 1,
        "max_surge": 0,
        "max_unavailable": 1,
        "order": "stop-first",
        "failure_action": "rollback",
        "monitor": 5.0,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"order": "start-first", "max_surge": 1, "max_unavailable": 0},
        {"order": "start-first", "max_surge": "25%"},
        {"order": "stop-first", "max_unavailable": "50%"},
        {"max_surge": "100%", "max_unavailable": "0%", "order": "start-first"},
        {"parallelism": 0, "failure_action": "pause", "monitor": "30s"},
    ],
)
def test_valid_update_policies(fields: dict[str, Any]) -> None:
    UpdatePolicy.model_validate(fields)


@pytest.mark.parametrize(
    ("written", "canonical_value"),
    [("25%", "25%"), ("025%", "25%"), ("0%", "0%"), ("100%", "100%"), (3, 3), (0, 0)],
)
def test_update_percentages_are_canonical(written: object, canonical_value: object) -> None:
    assert (
        UpdatePolicy(max_surge=written, order="start-first" if written not in (0, "0%") else "stop-first").max_surge
        == canonical_value
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_surge": 0, "max_unavailable": 0}, "max_surge and max_unavailable cannot both be 0"),
        ({"max_surge": "0%", "max_unavailable": "0%"}, "cannot both be 0"),
        ({"max_surge": "00%", "max_unavailable": 0}, "cannot both be 0"),
        ({"order": "start-first"}, "order start-first needs max_surge of 1 or more"),
        (
            {"order": "stop-first", "max_surge": 1, "max_unavailable": 0},
            "order stop-first needs max_unavailable of 1 or more",
        ),
        (
            {"max_unavailable": "150%"},
            "invalid value '150%': use a count or a percentage such as 25%",
        ),
        ({"max_unavailable": "25"}, "invalid value '25'"),
        ({"max_unavailable": "-5%"}, "invalid value '-5%'"),
        ({"max_unavailable": -1}, "must be 0 or more"),
        ({"parallelism": -1}, "greater than or equal to 0"),
        ({"order": "random"}, "Input should be 'stop-first' or 'start-first'"),
        ({"failure_action": "continue"}, "Input should be 'rollback' or 'pause'"),
        ({"monitor": "5x"}, "invalid duration '5x'"),
    ],
)
def test_invalid_update_policies(fields: dict[str, Any], message: str) -> None:
    assert message in " | ".join(m for _, m in errors_of(UpdatePolicy, fields))


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (3, 10, True, 3),
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("0%", 10, True, 0),
        ("100%", 10, False, 10),
        ("1%", 10, True, 1),
        ("1%", 10, False, 0),
        ("50%", 0, True, 0),
    ],
)
def test_resolve_count(value: int | str, total: int, round_up: bool, expected: int) -> None:
    assert resolve_count(value, total, round_up=round_up) == expected


def test_service_spec() -> None:
    service = Service.model_validate(
        {
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "template": {"image": "nginx:1.27", "ports": ["80"]}},
        }
    )
    assert service.spec.replicas == 3
    assert service.spec.update == UpdatePolicy()
    assert ServiceSpec.model_validate({"template": {"image": "x:1"}}).replicas == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"replicas": -1, "template": {"image": "x:1"}}, "greater than or equal to 0"),
        ({"replicas": 1001, "template": {"image": "x:1"}}, "less than or equal to 1000"),
        ({"replicas": 2}, "Field required"),
        ({"template": {"image": "x:1"}, "image": "x:1"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_service_spec(fields: dict[str, Any], message: str) -> None:
    assert message in " | ".join(m for _, m in errors_of(ServiceSpec, fields))


# --- images


@pytest.mark.parametrize(
    "fields",
    [
        {"pull": "busybox:1.36"},
        {"pull": "ghcr.io/acme/app@sha256:" + "a" * 64, "platform": "linux/arm64/v8"},
        {"build": {"context": "."}, "tag": "app:dev"},
        {
            "build": {
                "context": "app",
                "containerfile": "Dockerfile.prod",
                "args": {"V": 1},
                "target": "final",
            }
        },
        {"import": {"path": "rootfs.tar"}},
        {"import": {"path": "rootfs.tar"}, "tag": "localhost/rootfs:1"},
    ],
)
def test_image_with_exactly_one_source(fields: dict[str, Any]) -> None:
    ImageSpec.model_validate(fields)


def test_image_import_dumps_under_its_yaml_name() -> None:
    image = Image.model_validate({"kind": "Image", "metadata": {"name": "root"}, "spec": {"import": {"path": "r.tar"}}})
    assert image.spec.import_ is not None
    data = canonical(image)
    assert data["spec"]["import"] == {"path": "r.tar"}
    assert "import_" not in data["spec"]
    assert Image.model_validate(data) == image


def test_build_args_become_strings() -> None:
    build = ImageSpec.model_validate({"build": {"context": ".", "args": {"N": 1, "B": False}}}).build
    assert build is not None
    assert build.args == {"N": "1", "B": "false"}
    assert build.containerfile == "Containerfile"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "an image needs exactly one source of pull, build, import (found: none)"),
        ({"pull": "busybox:1.36", "build": {"context": "."}}, "(found: pull, build)"),
        ({"build": {"context": "."}, "import": {"path": "r.tar"}}, "(found: build, import)"),
        (
            {"pull": "busybox:1.36", "build": {"context": "."}, "import": {"path": "r.tar"}},
            "(found: pull, build, import)",
        ),
        ({"tag": "app:1"}, "(found: none)"),
        ({"pull": "busybox:1.36", "tag": "app:1"}, "tag applies to build and import sources"),
        ({"pull": "Busybox:1.36"}, "repository names must be lowercase"),
        ({"pull": "a@sha256:short"}, "invalid image reference 'a@sha256:short'"),
        ({"build": {"context": "."}, "tag": "App:1"}, "repository names must be lowercase"),
        ({"pull": "busybox:1.36", "platform": "linux"}, "invalid platform 'linux'"),
        ({"pull": "busybox:1.36", "platform": "Linux/AMD64"}, "invalid platform"),
        ({"build": {}}, "Field required"),
        ({"build": {"context": ".", "dockerfile": "x"}}, "Extra inputs are not permitted"),
        ({"import_": {"path": "r.tar"}, "pull": "busybox:1.36"}, "found: pull, import"),
    ],
)
def test_invalid_image_spec(fields: dict[str, Any], message: str) -> None:
    assert message in " | ".join(m for _, m in errors_of(ImageSpec, fields))


# --- kinds


def test_kind_and_api_version_are_fixed() -> None:
    assert "Input should be 'Container'" in " | ".join(
        m for _, m in errors_of(Container, {"kind": "Volume", "metadata": {"name": "a"}, "spec": {"image": "x:1"}})
    )
    assert "Input should be 'reconcile/v1'" in " | ".join(
        m for _, m in errors_of(Volume, {"apiVersion": "v1", "kind": "Volume", "metadata": {"name": "a"}})
    )


def test_volume_defaults() -> None:
    volume = Volume.model_validate({"kind": "Volume", "metadata": {"name": "data"}, "spec": {"options": {"size": 10}}})
    assert dump(volume)["spec"] == {
        "driver": "local",
        "options": {"size": "10"},
        "retain_policy": "retain",
    }
    assert (
        dump(Volume.model_validate({"kind": "Volume", "metadata": {"name": "d"}}))["spec"]["retain_policy"] == "retain"
    )


@pytest.mark.parametrize("key", [ownership.STACK, ownership.MANIFEST, ownership.SPEC_HASH])
def test_a_manifest_cannot_forge_ownership_labels(key: str) -> None:
    """Prune trusts these labels, so a manifest may not set them on its objects."""
    with pytest.raises(ValidationError, match="reserved for reconcile"):
        Volume.model_validate({"metadata": {"name": "v", "labels": {key: "another-stack"}}})
