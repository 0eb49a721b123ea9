"""Our CLI with a Docker user's habits (issue 12): ``ps``'s columns, ``-q``,
``--filter``, ``--format``, ``-n``/``-l``; ``images -q``; ``inspect --format`` and
Docker's inspect shape (network settings, published ports, CamelCase mounts);
``run`` pulling an image the store lacks. The pure parts are tested on made-up
summaries; the rest as users run it (root, real containers), in-process and through
a real agent, with the same assertions."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import container_rows, gotemplate
from reconciler.engine import container_view
from reconciler.engine.models.containers import ContainerSummary
from reconciler.runtime.state import ContainerState
from tests.agent_fixtures import Agent, make_agent
from tests.agent_fixtures import agents as agents  # a fixture, used by name
from tests.registry_fixtures import REGISTRY_BINARY, docker_registry, free_port
from tests.test_cli_containers import busybox_tarball, reconcile
from tests.test_cli_containers import engine as engine  # a fixture, used by name
from tests.test_cli_networks import nft_tables

Cli = Callable[..., subprocess.CompletedProcess[str]]
NOW = 1_800_000_000.0


# --- the pure parts: rows, filters, views --------------------------------------------------


def summary(**fields: Any) -> ContainerSummary:
    row: dict[str, Any] = {
        "name": "web",
        "status": "running",
        "pid": 10,
        "exit_code": None,
        "image": "busybox:1",
        "command": ["sleep", "60"],
        "created": NOW - 330,
        "stack": None,
        "image_id": "sha256:" + "ab" * 32,
        "started": NOW - 200,
        "finished": None,
        "labels": {"app": "web", "tier": ""},
        "ports": [],
        "networks": ["front"],
        "mounts": [],
    }
    row.update(fields)
    return row  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (61, "About a minute"),
        (330, "5 minutes"),
        (3600, "About an hour"),
        (3 * 3600, "3 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_durations_read_as_dockers(seconds: float, text: str) -> None:
    assert container_rows.human_duration(seconds) == text


def test_status_column_as_docker_words_it() -> None:
    assert container_rows.status_text(summary(), NOW) == "Up 3 minutes"
    assert container_rows.status_text(summary(status="paused", started=NOW - 1), NOW) == "Up 1 second (Paused)"
    exited = summary(status="exited", exit_code=3, finished=NOW - 2)
    assert container_rows.status_text(exited, NOW) == "Exited (3) 2 seconds ago"
    assert container_rows.status_text(summary(status="created", started=None), NOW) == "Created"


def test_row_fields_commands_ports_and_ids() -> None:
    ports = [
        {"host_ip": "0.0.0.0", "host_port": 8081, "container_port": 81, "protocol": "tcp"},
        {"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80, "protocol": "tcp"},
        {"host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53, "protocol": "udp"},
    ]
    command = ["sh", "-c", 'echo "hello there" && sleep 60']
    row = container_rows.Row(summary(ports=ports, command=command, id="c0ffee" * 10 + "abcd"), now=NOW)
    assert row.field("Command", []) == '"sh -c echo \\"hello t…"'
    assert row.field("Ports", []) == "0.0.0.0:8080-8081->80-81/tcp, 127.0.0.1:5353->53/udp"
    assert row.field("ID", []) == "c0ffeec0ffee"
    assert row.field("RunningFor", []) == "5 minutes ago"
    assert row.field("Labels", []) == "app=web,tier="
    assert row.field("Label", ["app"]) == "web" and row.field("Label", ["nope"]) == ""
    full = container_rows.Row(summary(command=command), trunc=False, now=NOW)
    assert full.field("Command", []) == '"sh -c echo \\"hello there\\" && sleep 60"'
    assert full.field("ID", []) == "web"  # no ID yet: the name stands for it
    assert sorted(row.as_json()) == sorted(container_rows.HEADERS.keys() - {"Label"})


def test_messages_name_images_as_docker_does() -> None:
    from reconciler.cli import container_commands

    assert container_commands._familiar("busybox") == "busybox:latest"
    assert container_commands._familiar("127.0.0.1:5000/team/app") == "127.0.0.1:5000/team/app:latest"
    assert container_commands._familiar("app:1") == "app:1"
    assert container_commands._familiar("a@sha256:ab") == "a@sha256:ab"


def test_summary_id_prefers_the_engines_id() -> None:
    assert container_view.summary_id(summary()) == "web"
    assert container_view.summary_id(summary(id="f" * 64)) == "f" * 64


def test_render_table_json_and_templates() -> None:
    rows = [summary(), summary(name="db", status="exited", exit_code=0, finished=NOW - 100, labels={})]
    table = container_rows.render(container_rows.DEFAULT_TABLE, rows).splitlines()
    assert re.split(r"\s{3,}", table[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert table[1].startswith("web ") and table[1].endswith(" web") and '"sleep 60"' in table[1]
    assert [json.loads(line)["Names"] for line in container_rows.render("json", rows).splitlines()] == ["web", "db"]
    assert container_rows.render('{{.Names}}:{{.Label "app"}}', rows) == "web:web\ndb:\n"
    assert container_rows.render("table {{.Names}}\\t{{.State}}", rows) == (
        "NAMES     STATE\nweb       running\ndb        exited\n"
    )


def test_the_default_table_is_the_default_template() -> None:
    """``ps`` draws its default table without the template engine; the text is the
    same as the engine's for ``DEFAULT_TABLE`` (timestamps far from any unit's edge)."""
    now = time.time()
    ports = [{"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80, "protocol": "tcp"}]
    rows = [
        summary(created=now - 330, started=now - 200, ports=ports, command=["sh", "-c", 'echo "a\tb" ; sleep 9']),
        summary(name="db", status="exited", exit_code=1, created=now - 7300, finished=now - 150, command=[]),
    ]
    _, text = gotemplate.prepare(container_rows.DEFAULT_TABLE)
    template = gotemplate.parse(text)
    lines = [template.execute(container_rows.Headers())]
    lines += [template.execute(container_rows.Row(row, now=now)) for row in rows]
    assert container_rows.render("table", rows) == gotemplate.tabwrite("".join(f"{line}\n" for line in lines))


def test_filters() -> None:
    web, db = summary(), summary(name="db", status="exited", exit_code=2, labels={}, networks=[], image="other:2")
    db["mounts"] = ["data:/d", "/srv:/s:ro"]

    def chosen(*texts: str) -> list[str]:
        filters = container_rows.parse_filters(texts)
        return [row["name"] for row in (web, db) if container_rows.matches(row, filters)]

    assert chosen("name=^we") == ["web"] and chosen("name=^/db$") == ["db"]
    assert chosen("label=app") == ["web"] and chosen("label=app=web") == ["web"] and chosen("label=app=x") == []
    assert chosen("status=exited") == ["db"] and chosen("status=exited", "status=running") == ["web", "db"]
    assert chosen("status=running", "label=tier") == ["web"]  # keys: all of them; values: any
    assert chosen("label=app", "label=tier") == ["web"] and chosen("label=app", "label=nope") == []  # labels: all
    assert chosen("ancestor=busybox:1") == ["web"] and chosen("ancestor=abababab") == ["web", "db"]
    assert chosen("ancestor=docker.io/library/other:2") == ["db"]
    assert chosen("exited=2") == ["db"] and chosen("network=front") == ["web"] and chosen("volume=data") == ["db"]
    assert chosen("volume=/s") == ["db"] and chosen("volume=/srv") == ["db"] and chosen("volume=nope") == []
    assert container_rows.FIELDS["LocalVolumes"](db, True, NOW) == "1"
    assert container_rows.FIELDS["Mounts"](db, True, NOW) == "data,/srv"
    assert chosen("id=we") == ["web"]
    assert container_rows.needs_all(container_rows.parse_filters(["status=created"]))
    for bad in ("nokey", "colour=red", "status=sleeping", "exited=x", "name=(("):
        with pytest.raises(ValueError):
            container_rows.parse_filters([bad])


def test_inspect_document_from_a_recorded_state() -> None:
    """The document's shape, from a state as ``run -d --network front -p 8080:80 -v
    data:/d -v /srv:/s:ro --tmpfs /t`` records it (checked against a real one below)."""
    directory = "/r/containers/web"
    mount = {"type": "bind", "options": "", "copy_up": False, "read_only": False}
    state = ContainerState(
        "web",
        status="running",
        pid=99,
        started_at=NOW,
        spec={
            "config": {
                "rootfs": f"{directory}/rootfs",
                "argv": ["sleep", "60"],
                "mounts": [
                    {**mount, "target": "/etc/hosts", "source": f"{directory}/etc/hosts"},
                    {**mount, "target": "/d", "source": "/r/volumes/data/_data", "copy_up": True},
                    {**mount, "target": "/s", "source": "/srv", "read_only": True},
                    {**mount, "type": "tmpfs", "target": "/t", "source": "", "options": "size=1m"},
                ],
            },
            "image": {"name": "busybox:1", "id": "sha256:" + "ab" * 32},
            "networks": [{"network": "front", "ifname": "eth0", "address": "10.9.0.2", "mac": "02:42:0a:09:00:02"}],
            "ports": ["8080:80/tcp", "127.0.0.1:5353:53/udp"],
            "labels": {"app": "web"},
        },
    )
    details = {"front": {"IPPrefixLen": 24, "Gateway": "10.9.0.1", "Aliases": ["web"]}}
    document = container_view.inspect_document(state, details)
    assert document["Name"] == "/web" and document["Id"] == state.id  # sha256("web"): a state without an id
    assert document["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
    }
    assert document["HostConfig"]["PortBindings"] == document["NetworkSettings"]["Ports"]
    network = document["NetworkSettings"]["Networks"]["front"]
    assert (network["IPAddress"], network["IPPrefixLen"], network["Gateway"]) == ("10.9.0.2", 24, "10.9.0.1")
    assert (network["MacAddress"], network["Aliases"], network["NetworkID"]) == ("02:42:0a:09:00:02", ["web"], "front")
    assert document["Mounts"] == [
        {
            "Type": "volume",
            "Name": "data",
            "Source": "/r/volumes/data/_data",
            "Destination": "/d",
            "Driver": "local",
            "Mode": "z",
            "RW": True,
            "Propagation": "",
        },
        {"Type": "bind", "Source": "/srv", "Destination": "/s", "Mode": "ro", "RW": False, "Propagation": "rprivate"},
    ]
    assert document["HostConfig"]["Binds"] == ["data:/d", "/srv:/s:ro"]
    assert document["HostConfig"]["Tmpfs"] == {"/t": "size=1m"}
    assert document["HostsPath"] == f"{directory}/etc/hosts"
    assert "read_only" not in json.dumps(document) and "copy_up" not in json.dumps(document)


# --- as users run it -----------------------------------------------------------------------


def image_tarball(path: Path) -> Path:
    tarball = busybox_tarball(path)
    with tarfile.open(tarball, "a") as archive:
        for applet in ("true", "ls"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
    return tarball


def cleaned(cli: Cli, root: str) -> None:
    """Every container and network the test made removed through the CLI; the host
    keeps no bridge, firewall table or DNS daemon of this root's (other roots' are
    other tests' business: they may run meanwhile)."""
    for row in json.loads(cli("ps", "-a", "-o", "json").stdout or "[]"):
        cli("rm", "-f", row["name"])
    names = [n["Name"] for n in json.loads(cli("network", "ls", "-o", "json").stdout or "[]")]
    bridges = (
        [n["Options"]["bridge"] for n in json.loads(cli("network", "inspect", *names).stdout or "[]")] if names else []
    )
    cli("network", "prune")
    assert [b for b in bridges if os.path.exists(f"/sys/class/net/{b}")] == [], "bridges left behind"
    table = "reconcile_" + hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:10]
    assert table not in nft_tables(), "the root's firewall table left behind"
    assert not os.path.exists(os.path.join(root, "dns.pid")), "the DNS daemon left running"


def exercise_ps_and_inspect(cli: Cli, image: str, prefix: str) -> None:
    network, port = f"{prefix}net", free_port()
    assert cli("network", "create", network).returncode == 0
    web = cli(
        "run", "-d", "--name", f"{prefix}web", "--network", network, "-p", f"127.0.0.1:{port}:80",
        "-l", "app=web", "-l", "tier", "-v", f"{prefix}data:/data", "--tmpfs", "/scratch", image,
        "sh", "-c", "echo a long command line; exec sleep 60",
    )  # fmt: skip
    assert web.returncode == 0, web.stderr
    assert cli("run", "-d", "--name", f"{prefix}idle", image, "sleep", "60").returncode == 0
    assert cli("run", "--name", f"{prefix}done", image, "sh", "-c", "exit 3").returncode == 3

    table = cli("ps").stdout.splitlines()
    assert re.split(r"\s{3,}", table[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert [line.split()[-1] for line in table[1:]] == [f"{prefix}idle", f"{prefix}web"]  # newest first, running
    web_line = table[2]
    assert '"sh -c echo a long c…"' in web_line and f"127.0.0.1:{port}->80/tcp" in web_line and " Up " in web_line

    def names(*flags: str) -> list[str]:
        listed = cli("ps", *flags, "--format", "{{.Names}}")
        assert listed.returncode == 0, listed.stderr
        return listed.stdout.split()

    assert names() == [f"{prefix}idle", f"{prefix}web"]
    assert names("-a") == [f"{prefix}done", f"{prefix}idle", f"{prefix}web"]
    assert names("-l") == [f"{prefix}done"] and names("-n", "2") == [f"{prefix}done", f"{prefix}idle"]
    assert names("--filter", "label=app=web") == [f"{prefix}web"]
    assert names("-f", "status=exited", "-f", "exited=3") == [f"{prefix}done"]
    assert names("-a", "-f", f"name={prefix}(web|idle)") == [f"{prefix}idle", f"{prefix}web"]
    assert names("-f", f"ancestor={image}", "-f", f"network={network}") == [f"{prefix}web"]
    ids = cli("ps", "-a", "--format", "{{.ID}}").stdout.split()  # names until containers have IDs
    assert cli("ps", "-a", "-q").stdout.split() == ids and len(ids) == 3
    assert cli("ps", "-q", "-f", "label=app").stdout.split() == [ids[2]]
    statuses = cli("ps", "-a", "--format", "{{.Names}}|{{.State}}|{{.Status}}").stdout.splitlines()
    assert statuses[0].startswith(f"{prefix}done|exited|Exited (3) ") and statuses[0].endswith(" ago")
    assert statuses[1].startswith(f"{prefix}idle|running|Up ")
    lines = [json.loads(line) for line in cli("ps", "--format", "json", "-f", "label=tier").stdout.splitlines()]
    assert [(r["Names"], r["Labels"], r["Networks"], r["LocalVolumes"]) for r in lines] == [
        (f"{prefix}web", "app=web,tier=", network, "1")
    ]
    custom = cli("ps", "--format", "table {{.Names}}\\t{{.Ports}}", "-f", "label=app").stdout.splitlines()
    assert re.split(r"\s{3,}", custom[0]) == ["NAMES", "PORTS"] and custom[1].split() == [
        f"{prefix}web",
        f"127.0.0.1:{port}->80/tcp",
    ]
    assert '"sh -c echo a long command line; exec sleep 60"' in cli("ps", "--no-trunc", "-f", "label=app").stdout
    assert len(json.loads(cli("ps", "-a", "-o", "json").stdout)) == 3  # our own machine output stays
    bad = cli("ps", "--format", "{{.Nope}}")
    assert bad.returncode == 64 and "can't evaluate field Nope" in bad.stderr
    assert cli("ps", "-f", "colour=red").returncode == 64

    document = json.loads(cli("inspect", f"{prefix}web").stdout)[0]
    text = json.dumps(document)
    assert "read_only" not in text and "copy_up" not in text
    (net_document,) = json.loads(cli("network", "inspect", network).stdout)
    subnet, gateway = net_document["IPAM"]["Config"][0]["Subnet"], net_document["IPAM"]["Config"][0]["Gateway"]
    settings = document["NetworkSettings"]["Networks"][network]
    assert settings["IPPrefixLen"] == int(subnet.split("/")[1]) and settings["Gateway"] == gateway
    assert settings["IPAddress"] == net_document["Containers"][f"{prefix}web"]["IPv4Address"].split("/")[0]
    assert f"{prefix}web" in settings["Aliases"] and settings["MacAddress"]
    assert document["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    (volume,) = [m for m in document["Mounts"] if m["Type"] == "volume"]
    assert (volume["Name"], volume["Destination"], volume["RW"], volume["Driver"]) == (
        f"{prefix}data",
        "/data",
        True,
        "local",
    )
    assert document["HostConfig"]["Binds"] == [f"{prefix}data:/data"]
    assert document["HostConfig"]["Tmpfs"] == {"/scratch": ""}
    assert document["Config"]["Labels"] == {"app": "web", "tier": ""}

    address = cli("inspect", "-f", f"{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}", f"{prefix}web")
    assert address.stdout == settings["IPAddress"] + "\n"
    both = cli("inspect", "--format", "{{.Name}} {{.State.Status}} {{json .Config.Labels}}", f"{prefix}web", "ghost")
    assert both.returncode == 1 and both.stdout == f'/{prefix}web running {{"app":"web","tier":""}}\n'
    mounts = cli("inspect", "-f", "{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}", f"{prefix}web").stdout
    assert mounts == "volume:/data \n"
    image_id = json.loads(cli("images", "-o", "json").stdout)[0]["id"]
    assert cli("inspect", "-f", "{{.Id}}", image).stdout == f"{image_id}\n"  # no such container: the image
    assert cli("image", "inspect", "-f", "{{.Os}}", image).stdout == "linux\n"
    assert cli("tag", image, f"{prefix}other:1").returncode == 0
    assert cli("images", "-q").stdout == image_id.removeprefix("sha256:")[:12] + "\n"  # two tags, one ID


@pytest.mark.requires_root
def test_ps_and_inspect_in_process(engine: dict[str, str], tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return reconcile(engine, *args)

    assert cli("image", "import", str(image_tarball(tmp_path / "b.tar")), "habits:1").returncode == 0
    try:
        exercise_ps_and_inspect(cli, "habits:1", "dh")
    finally:
        cleaned(cli, engine["RECONCILE_ROOT"])


@pytest.mark.requires_root
def test_ps_and_inspect_through_an_agent(agents: list[Agent], tmp_path: Path) -> None:
    agent = make_agent(agents, tmp_path / "agent")
    assert agent.cli("image", "import", str(image_tarball(tmp_path / "b.tar")), "habits:1").returncode == 0
    try:
        exercise_ps_and_inspect(agent.cli, "habits:1", "dha")
        assert agent.cli("ps", "-q").stdout == agent.cli("ps", "-q", remote=False).stdout  # the same, in-process
    finally:
        cleaned(agent.cli, str(agent.root))


# --- run pulls what the store lacks --------------------------------------------------------

needs_registry = pytest.mark.skipif(not os.path.exists(REGISTRY_BINARY), reason="docker-registry is not installed")


def exercise_run_pull(cli: Cli, reference: str) -> None:
    pulled = cli("run", "--rm", reference, "echo", "pulled and ran")
    assert (pulled.returncode, pulled.stdout) == (0, "pulled and ran\n"), pulled.stderr
    assert f"Unable to find image '{reference}' locally" in pulled.stderr
    assert f"Status: Downloaded newer image for {reference}" in pulled.stderr
    present = cli("run", "--rm", reference, "true")  # now in the store: no pull
    assert present.returncode == 0 and "Unable to find" not in present.stderr
    always = cli("run", "--rm", "--pull", "always", reference, "true")
    assert always.returncode == 0 and "Digest: sha256:" in always.stderr and "Unable to find" not in always.stderr
    assert cli("image", "rm", reference).returncode == 0
    never = cli("run", "--rm", "--pull", "never", reference, "true")
    assert never.returncode == 125 and f"no such image: {reference}" in never.stderr
    detached = cli("run", "-d", "-q", "--name", "pulled", reference, "sleep", "30")
    assert (detached.returncode, detached.stderr) == (0, "") and detached.stdout.strip(), detached.stderr
    assert cli("rm", "-f", "pulled").returncode == 0
    missing = reference.rsplit("/", 1)[0] + "/nosuch:1"
    failed = cli("run", "--rm", missing, "true")
    assert failed.returncode == 125 and "Unable to find image" in failed.stderr and "manifest unknown" in failed.stderr
    assert "pulled" not in cli("ps", "-a", "--format", "{{.Names}}").stdout


@pytest.fixture
def registry_image(engine: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A registry on loopback holding an image pushed from a store of its own."""
    source = {**engine, "RECONCILE_ROOT": str(tmp_path / "source")}
    with docker_registry(str(tmp_path / "registry")) as registry:
        reference = f"{registry.host}/habits/busybox:1"
        assert reconcile(source, "image", "import", str(image_tarball(tmp_path / "b.tar")), reference).returncode == 0
        pushed = reconcile(source, "push", "-q", reference)
        assert pushed.returncode == 0, pushed.stderr
        yield reference


@needs_registry
@pytest.mark.requires_root
def test_run_pulls_a_missing_image_in_process(engine: dict[str, str], registry_image: str) -> None:
    exercise_run_pull(lambda *args: reconcile(engine, *args), registry_image)


@needs_registry
@pytest.mark.requires_root
def test_run_pulls_a_missing_image_through_an_agent(agents: list[Agent], tmp_path: Path, registry_image: str) -> None:
    agent = make_agent(agents, tmp_path / "agent")
    exercise_run_pull(agent.cli, registry_image)
    assert agent.cli("images", "-q").stdout.strip()  # pulled into the agent's store
