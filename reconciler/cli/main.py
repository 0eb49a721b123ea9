"""Entry point of ``reconcile``.

argparse, not typer: the CLI's hot paths must start fast (typer alone costs about
120 ms, see ../shared/design/PERFORMANCE.md), so this module imports only the standard library
and each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from reconciler import __version__

# Exit codes shared by commands, re-exported for the commands' modules.
from reconciler.exitcodes import EXIT_CHANGES as EXIT_CHANGES
from reconciler.exitcodes import EXIT_FAILED as EXIT_FAILED
from reconciler.exitcodes import EXIT_OK as EXIT_OK
from reconciler.exitcodes import EXIT_USAGE as EXIT_USAGE

DEFAULT_MANIFESTS = "manifests"


class _Formatter(argparse.HelpFormatter):
    """argparse's, sized from ``$COLUMNS`` or the terminal by ``os`` alone: argparse
    builds a formatter for every ``add_argument`` and sizes it with ``shutil``, whose
    import (with bz2, lzma and zlib) costs every command about 3 ms."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        if width is None:
            try:
                columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(1).columns
            except (ValueError, OSError, AttributeError):
                columns = 80
            width = max(columns - 2, 20)
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which `plan --detailed-exitcode` uses for
    "there are changes"; a CI job must never read a typo as changes, so usage
    errors exit 64 (EX_USAGE) instead."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _manifests_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory",
        nargs="?",
        default=os.environ.get("RECONCILE_MANIFESTS", DEFAULT_MANIFESTS),
        metavar="DIR",
        help="manifests directory (default: $RECONCILE_MANIFESTS or ./manifests)",
    )
    parser.add_argument("--stack", help="stack name (default: stack.yaml, else the directory's name)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")


class _Skipped:
    """Stands in for the parser of a subcommand that is not being run: building every
    subcommand's parser costs about 8 ms of objects and gettext lookups per start,
    which ``reconcile run`` cannot spare."""

    def __getattr__(self, name: str) -> Callable[..., _Skipped]:
        return lambda *args, **kwargs: self


class _OnlySubcommand:
    """``add_subparsers``' result, building only the subcommand ``only`` (all when None)."""

    def __init__(self, actions: Any, only: str | None) -> None:
        self.actions, self.only = actions, only

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self.only is not None and name != self.only:
            return _Skipped()
        return self.actions.add_parser(name, **kwargs)


#: Options before the command that take a value (``reconcile --host H ps``).
_GLOBAL_WITH_VALUE = ("-H", "--host", "--context", "--tls-ca", "--tls-cert", "--tls-key")


def _command_index(argv: Sequence[str]) -> int | None:
    """Where the command is in ``argv``, past the global options; None when a
    top-level option such as --help or --version comes first (or nothing does)."""
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in _GLOBAL_WITH_VALUE:
            index += 2
        elif token.startswith("--") and token.split("=", 1)[0] in _GLOBAL_WITH_VALUE:
            index += 1
        elif token.startswith("-") and token != "--once":
            return None  # --help or --version need every subcommand
        else:
            return index
    return None


def _subcommand(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, or None (help, version, nothing: build them all)."""
    index = _command_index(argv)
    return None if index is None else argv[index]


def _image_commands(add: Callable[..., Any], engine: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """The image commands, under ``image`` and (the common ones) at the top level, as in docker."""
    for name in ("pull", "push"):
        command = add(name, parents=[engine], help=f"{name} an image {'from' if name == 'pull' else 'to'} a registry")
        command.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
        command.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        if name == "pull":
            command.add_argument("--platform", help="os/arch[/variant] (default: this host's)")
    build = add("build", parents=[engine], help="build an image from a Containerfile")
    # dest build_context: "context" is the global --context (which host to talk to)
    build.add_argument("build_context", metavar="CONTEXT", help="build context directory")
    build.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]")
    build.add_argument("-f", "--file", help="the Containerfile (default: CONTEXT/Containerfile or Dockerfile)")
    build.add_argument("--build-arg", action="append", default=[], metavar="KEY[=VALUE]")
    build.add_argument("--target", help="build up to this stage")
    build.add_argument("--no-cache", action="store_true", help="rebuild every step")
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    history = add("history", parents=[engine], help="show how an image was built")
    history.add_argument("reference")
    history.add_argument("-o", "--output", choices=("text", "json"), default="text")
    tag = add("tag", parents=[engine], help="give an image another name")
    tag.add_argument("source", metavar="SOURCE")
    tag.add_argument("target", metavar="TARGET[:TAG]")
    listing = add("images" if top_level else "ls", parents=[engine], help="list images")
    listing.add_argument("-o", "--output", choices=("text", "json"), default="text")
    listing.add_argument("-q", "--quiet", action="store_true", help="only image IDs, each once")
    listing.add_argument("--no-trunc", action="store_true", help="full image IDs")
    if top_level:
        for verb in ("login", "logout"):
            session = add(verb, parents=[engine], help=f"{verb} {'to' if verb == 'login' else 'from'} a registry")
            session.add_argument("registry")
            if verb == "login":
                session.add_argument("-u", "--username")
                session.add_argument("-p", "--password")
                session.add_argument("--password-stdin", action="store_true")
        return
    inspect = add("inspect", parents=[engine], help="show images' configuration as JSON")
    inspect.add_argument("references", nargs="+", metavar="IMAGE")
    inspect.add_argument("-f", "--format", help="a Go template, e.g. '{{.Id}}' or '{{json .Config}}'")
    remove = add("rm", parents=[engine], help="untag images and remove what nothing else uses")
    remove.add_argument("references", nargs="+", metavar="IMAGE")
    remove.add_argument("-f", "--force", action="store_true", help="even when a container uses it")
    prune = add("prune", parents=[engine], help="remove blobs and layers no image or container uses")
    prune.add_argument("-a", "--all", action="store_true", help="also every image no container uses")
    save = add("save", parents=[engine], help="write images to an archive")
    save.add_argument("references", nargs="+", metavar="IMAGE")
    save.add_argument("-o", "--output", metavar="FILE", help="archive file (default: stdout)")
    save.add_argument("--format", choices=("oci-archive", "docker-archive"), default="oci-archive")
    load = add("load", parents=[engine], help="load images from an archive (OCI or docker save format)")
    load.add_argument("-i", "--input", metavar="FILE", help="archive file (default: stdin)")
    load.add_argument("--tag", help="name for images the archive leaves unnamed")
    add("fsck", parents=[engine], help="verify every blob against its digest")


def _host_flags(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """``-H/--host`` and ``--context``, before the command (as docker takes them) or
    after it; given after, they must not reset what was given before."""
    default: object = None if top_level else argparse.SUPPRESS
    parser.add_argument("-H", "--host", default=default, help="the agent to talk to: unix:///PATH or tcp://HOST:PORT")
    parser.add_argument("--context", default=default, help="talk to the host of this context")
    for key in ("ca", "cert", "key"):
        parser.add_argument(f"--tls-{key}", dest=f"tls_{key}", default=default, help=argparse.SUPPRESS)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="reconcile",
        description="A declarative container host: manifests in, containers out.",
    )
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    _host_flags(parser, top_level=True)
    common = _Parser(add_help=False)
    common.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="colour output (default: on a TTY)"
    )
    sub = _OnlySubcommand(parser.add_subparsers(dest="subcommand", metavar="COMMAND"), only)

    validate = sub.add_parser("validate", parents=[common], help="check a manifests directory and report every error")
    _manifests_arg(validate)

    plan = sub.add_parser("plan", parents=[common], help="show what applying the manifests would change")
    _manifests_arg(plan)
    plan.add_argument(
        "--observed",
        metavar="FILE",
        help="observed state as JSON (the Observed model); default: an empty host",
    )
    plan.add_argument("--no-prune", dest="prune", action="store_false", help="keep objects no longer listed")
    plan.add_argument(
        "--resolve-images",
        choices=("local", "registry"),
        help="compare image digests: as tagged in the local store, or as the registries say now",
    )
    plan.add_argument(
        "--root",
        default=os.environ.get("RECONCILE_ROOT", "/var/lib/reconcile"),
        help="state directory with the image store (default: $RECONCILE_ROOT or /var/lib/reconcile)",
    )
    plan.add_argument("--prune-volumes", action="store_true", help="also delete volumes no longer listed")
    plan.add_argument("-v", "--verbose", action="store_true", help="also list unchanged objects")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when the plan has changes (0: none, 1: error or conflict)",
    )

    engine = _Parser(add_help=False)
    engine.add_argument(
        "--root",
        default=os.environ.get("RECONCILE_ROOT", "/var/lib/reconcile"),
        help="state directory (default: $RECONCILE_ROOT or /var/lib/reconcile)",
    )
    _host_flags(engine, top_level=False)
    engine.add_argument(
        "--cgroup-parent",
        default=os.environ.get("RECONCILE_CGROUP_PARENT", "reconcile"),
        help="cgroup directory containers are made under (default: $RECONCILE_CGROUP_PARENT or reconcile)",
    )

    image = sub.add_parser("image", help="manage images (import, ls, inspect, rm, prune, save, load, fsck, ...)")
    image_sub = image.add_subparsers(dest="image_command", metavar="COMMAND", required=True)
    image_import = image_sub.add_parser(
        "import", parents=[engine], help="import a root filesystem tarball as a one-layer image"
    )
    image_import.add_argument("tarball")
    image_import.add_argument("reference", metavar="NAME[:TAG]")
    _image_commands(image_sub.add_parser, engine)  # docker image pull, docker image ls, ...
    _image_commands(sub.add_parser, engine, top_level=True)  # docker pull, docker images, ...

    network = sub.add_parser("network", help="manage bridge networks (create, ls, inspect, rm, prune, connect, ...)")
    network_sub = network.add_subparsers(dest="network_command", metavar="COMMAND", required=True)
    create_network = network_sub.add_parser("create", parents=[engine], help="create a bridge network")
    create_network.add_argument("name")
    create_network.add_argument("--subnet", help="e.g. 10.89.0.0/24 (default: the next free block of the pool)")
    create_network.add_argument("--gateway")
    create_network.add_argument("--ip-range", help="dynamic addresses only from this range")
    create_network.add_argument("--internal", action="store_true", help="no route out of the network")
    create_network.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    network_sub.add_parser("ls", parents=[engine], help="list networks").add_argument(
        "-o", "--output", choices=("text", "json"), default="text"
    )
    network_sub.add_parser("inspect", parents=[engine], help="show networks as JSON").add_argument("names", nargs="+")
    network_sub.add_parser("rm", parents=[engine], help="remove networks no container uses").add_argument(
        "names", nargs="+"
    )
    network_sub.add_parser("prune", parents=[engine], help="remove every network no container uses")
    connect_network = network_sub.add_parser("connect", parents=[engine], help="connect a container to a network")
    connect_network.add_argument("--alias", action="append", default=[], metavar="ALIAS", help="another DNS name")
    connect_network.add_argument("--ip", help="static IPv4 address in the network's subnet")
    connect_network.add_argument("network")
    connect_network.add_argument("container")
    disconnect_network = network_sub.add_parser(
        "disconnect", parents=[engine], help="disconnect a container from a network"
    )
    disconnect_network.add_argument("-f", "--force", action="store_true", help="accepted, as Docker's")
    disconnect_network.add_argument("network")
    disconnect_network.add_argument("container")

    volume = sub.add_parser("volume", help="manage named volumes (create, ls, inspect, rm, prune)")
    volume_sub = volume.add_subparsers(dest="volume_command", metavar="COMMAND", required=True)
    create = volume_sub.add_parser("create", parents=[engine], help="create a volume (anonymous without a name)")
    create.add_argument("name", nargs="?")
    create.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    volume_sub.add_parser("ls", parents=[engine], help="list volumes").add_argument(
        "-o", "--output", choices=("text", "json"), default="text"
    )
    volume_sub.add_parser("inspect", parents=[engine], help="show volumes as JSON").add_argument("names", nargs="+")
    remove_volume = volume_sub.add_parser("rm", parents=[engine], help="remove volumes no container uses")
    remove_volume.add_argument("names", nargs="+")
    remove_volume.add_argument("-f", "--force", action="store_true", help="a missing volume is no error")
    volume_sub.add_parser("prune", parents=[engine], help="remove unused anonymous volumes").add_argument(
        "-a", "--all", action="store_true", help="also unused named volumes"
    )

    run = sub.add_parser("run", parents=[engine], help="run a command in a new container")
    run.add_argument("--rm", action="store_true", help="remove the container when it exits")
    run.add_argument("-d", "--detach", action="store_true", help="run in the background and print its name")
    run.add_argument("--name")
    run.add_argument("--hostname")
    run.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("-u", "--user")
    run.add_argument("-w", "--workdir")
    run.add_argument("--read-only", action="store_true")
    run.add_argument("--cap-add", action="append", default=[], metavar="CAP")
    run.add_argument("--cap-drop", action="append", default=[], metavar="CAP")
    run.add_argument("-v", "--volume", action="append", default=[], metavar="/HOST:/CTR[:ro]")
    run.add_argument("--tmpfs", action="append", default=[], metavar="/PATH[:size=64m,mode=1777]")
    run.add_argument("-i", "--interactive", action="store_true", help="keep stdin open to the container")
    run.add_argument("-t", "--tty", action="store_true", help="give the container a terminal")
    run.add_argument("--init", action="store_true", help="run an init as pid 1 that reaps zombies")
    run.add_argument("--entrypoint", help="replace the image's ENTRYPOINT ('' clears it)")
    run.add_argument("--stop-signal", help="signal stop sends first (default: the image's STOPSIGNAL, else SIGTERM)")
    run.add_argument(
        "--network",
        "--net",
        action="append",
        default=[],
        metavar="NETWORK",
        help="none: only loopback (default); host: the host's; NAME: a bridge network (bridge: the default one)",
    )
    run.add_argument("--network-alias", action="append", default=[], metavar="ALIAS", help="another DNS name")
    run.add_argument("--ip", help="static IPv4 address on the first network")
    run.add_argument(
        "-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CONTAINER[/udp]", help="publish a port"
    )
    for kind in ("pid", "ipc", "uts"):
        run.add_argument(
            f"--{kind}", choices=("private", "host"), default="private", help=f"share the host's {kind} namespace"
        )
    run.add_argument("-m", "--memory", help="memory limit, e.g. 64m")
    run.add_argument("--memory-swap", help="memory plus swap limit, e.g. 128m (-1: unlimited)")
    run.add_argument("--cpus", help="CPU quota in cores, e.g. 0.5")
    run.add_argument("--cpu-shares", type=int, help="relative CPU weight (default 1024)")
    run.add_argument("--cpuset-cpus", help="CPUs the container may use, e.g. 0-1")
    run.add_argument("--pids-limit", dest="pids", type=int)
    run.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE", help="set a label")
    run.add_argument(
        "--pull",
        choices=("missing", "always", "never"),
        default="missing",
        help="pull the image: when the store lacks it (default), always, or never",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no pull progress")
    run.add_argument("image")
    run.add_argument("command", nargs=argparse.REMAINDER)

    ps = sub.add_parser("ps", parents=[engine], help="list containers")
    ps.add_argument("-a", "--all", action="store_true", help="also exited containers")
    ps.add_argument("-o", "--output", choices=("text", "json"), default="text", help="json: the engine's summaries")
    ps.add_argument("-q", "--quiet", action="store_true", help="only container IDs")
    ps.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="name=, id=, label=KEY[=VALUE], status=, ancestor=, exited=, network=, volume= (repeatable)",
    )
    ps.add_argument(
        "--format", help="'table', 'json', or a Go template, e.g. 'table {{.ID}}\\t{{.Names}}\\t{{.Status}}'"
    )
    ps.add_argument("--no-trunc", action="store_true", help="full IDs and commands")
    ps.add_argument("-n", "--last", type=int, metavar="N", help="the N last created containers (all states)")
    ps.add_argument("-l", "--latest", action="store_true", help="the last created container (all states)")

    logs = sub.add_parser("logs", parents=[engine], help="print a container's output")
    logs.add_argument("name")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--tail", type=int)
    logs.add_argument("--since", help="seconds since the epoch")
    logs.add_argument("-t", "--timestamps", action="store_true")

    exec_ = sub.add_parser("exec", parents=[engine], help="run a command in a running container")
    exec_.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    exec_.add_argument("-t", "--tty", action="store_true", help="give the process a terminal")
    exec_.add_argument("name")
    exec_.add_argument("command", nargs=argparse.REMAINDER)

    stop = sub.add_parser("stop", parents=[engine], help="stop a container (signal, grace period, then SIGKILL)")
    stop.add_argument("name")
    stop.add_argument("-t", "--time", type=float, default=10.0, help="grace period in seconds")

    kill = sub.add_parser("kill", parents=[engine], help="send a signal to containers")
    kill.add_argument("names", nargs="+", metavar="name")
    kill.add_argument("-s", "--signal", default="KILL", help="signal name or number (default KILL)")

    for verb, text in (("pause", "freeze every process of containers"), ("unpause", "thaw paused containers")):
        sub.add_parser(verb, parents=[engine], help=text).add_argument("names", nargs="+", metavar="name")

    inspect = sub.add_parser("inspect", parents=[engine], help="show containers' (or images') state as JSON")
    inspect.add_argument("names", nargs="+", metavar="name")
    inspect.add_argument("-f", "--format", help="a Go template, e.g. '{{.State.Status}}' or '{{json .Config}}'")
    inspect.add_argument("--type", choices=("container", "image"), help="only this kind of object")

    stats = sub.add_parser("stats", parents=[engine], help="memory, CPU time and processes of running containers")
    stats.add_argument("names", nargs="*", metavar="name")
    stats.add_argument("-o", "--output", choices=("text", "json"), default="text")

    rm = sub.add_parser("rm", parents=[engine], help="remove containers")
    rm.add_argument("names", nargs="+")
    rm.add_argument("-f", "--force", action="store_true", help="stop running ones first")

    apply = sub.add_parser(
        "apply", parents=[common, engine], help="one pass: make the host match DIR (also: reconcile --once DIR)"
    )
    _manifests_arg(apply)
    apply.add_argument("--dry-run", action="store_true", help="print the plan, touch nothing")
    apply.add_argument("--no-prune", dest="prune", action="store_false", help="keep objects no longer listed")
    apply.add_argument("--prune-volumes", action="store_true", help="also delete volumes no longer listed")
    apply.add_argument("--no-wait", action="store_true", help="fail at once if another pass holds the root")
    apply.add_argument(
        "--timeout", type=float, default=300.0, help="seconds a one-shot or a health gate may take (default 300)"
    )

    agent = sub.add_parser(
        "agent",
        parents=[common, engine],
        help="the daemon: serve the engine API on a socket; with DIR, also keep the host matching DIR",
    )
    agent.add_argument(
        "directory",
        nargs="?",
        default=os.environ.get("RECONCILE_MANIFESTS"),
        metavar="DIR",
        help="manifests to keep applied (default: $RECONCILE_MANIFESTS; none: a plain daemon)",
    )
    agent.add_argument("--stack", help="stack name (default: stack.yaml, else the directory's name)")
    agent.add_argument("-o", "--output", choices=("text", "json"), default="text", help=argparse.SUPPRESS)
    agent.add_argument("--resync", type=float, default=30.0, help="seconds between passes without changes (default 30)")
    agent.add_argument("--debounce", type=int, default=400, help="milliseconds of quiet before a change is acted on")
    agent.add_argument("--no-prune", dest="prune", action="store_false", help="keep objects no longer listed")
    agent.add_argument("--prune-volumes", action="store_true", help="also delete volumes no longer listed")
    agent.add_argument(
        "--socket",
        default=os.environ.get("RECONCILE_SOCKET", "/run/reconcile/reconcile.sock"),
        help="UNIX socket to serve the API on (default: $RECONCILE_SOCKET or /run/reconcile/reconcile.sock)",
    )
    agent.add_argument("--group", help="group owning the socket (mode 0660; default: reconcile if it exists)")
    agent.add_argument(
        "--docker-socket",
        help="UNIX socket to serve the Docker Engine API on (default: $RECONCILE_DOCKER_SOCKET, else docker.sock "
        "beside --socket: /run/reconcile/docker.sock)",
    )
    agent.add_argument(
        "--no-docker-socket", dest="docker_socket", action="store_const", const="", help="do not serve the Docker API"
    )
    agent.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help="also serve on TCP, with --tls-cert/--tls-key (the agent's) and --tls-ca (clients' certificates' CA)",
    )
    agent.add_argument("--insecure-tcp", action="store_true", help="allow --tcp without TLS (warned on every start)")
    agent.add_argument(
        "--max-body", type=int, default=4 * 1024 * 1024, help="largest JSON request body in bytes (default 4 MiB)"
    )

    system = sub.add_parser("system", help="the engine: info, version, disk usage, prune")
    system_sub = system.add_subparsers(dest="system_command", metavar="COMMAND", required=True)
    for verb, text in (
        ("info", "the engine, where it answers, what it holds"),
        ("version", "versions"),
        ("df", "disk usage"),
    ):
        system_sub.add_parser(verb, parents=[engine], help=text).add_argument(
            "-o", "--output", choices=("text", "json"), default="text"
        )
    system_prune = system_sub.add_parser("prune", parents=[engine], help="remove stopped containers, unused networks")
    system_prune.add_argument("--volumes", action="store_true", help="also unused anonymous volumes")
    system_prune.add_argument("-o", "--output", choices=("text", "json"), default="text")
    system_prune.add_argument("-f", "--force", action="store_true", help="do not ask (it never asks)")

    service = sub.add_parser("service", help="the services the reconcile loop runs (ls, inspect)")
    service_sub = service.add_subparsers(dest="service_command", metavar="COMMAND", required=True)
    service_sub.add_parser("ls", parents=[engine], help="list services and their replicas running").add_argument(
        "-o", "--output", choices=("text", "json"), default="text"
    )
    service_sub.add_parser("inspect", parents=[engine], help="show services and their replicas as JSON").add_argument(
        "names", nargs="+", metavar="name"
    )

    context = sub.add_parser("context", help="manage contexts: named hosts to talk to (create, ls, use, inspect, rm)")
    context_sub = context.add_subparsers(dest="context_command", metavar="COMMAND", required=True)
    create_context = context_sub.add_parser("create", help="name a host")
    create_context.add_argument("name")
    create_context.add_argument("--host", dest="context_host", required=True, help="unix:///PATH or tcp://HOST:PORT")
    create_context.add_argument("--description", default="")
    for key in ("ca", "cert", "key"):
        create_context.add_argument(f"--tls-{key}", dest=f"context_tls_{key}")
    context_sub.add_parser("ls", help="list contexts").add_argument(
        "-o", "--output", choices=("text", "json"), default="text"
    )
    context_sub.add_parser("use", help="make a context the current one").add_argument("name")
    context_sub.add_parser("inspect", help="show contexts as JSON").add_argument("names", nargs="+", metavar="name")
    context_sub.add_parser("rm", help="remove contexts").add_argument("names", nargs="+", metavar="name")

    status = sub.add_parser("status", parents=[engine], help="what was applied, what exists now, last errors")
    status.add_argument("--stack", help="only this stack")
    status.add_argument("-o", "--output", choices=("text", "json"), default="text")
    events = sub.add_parser("events", parents=[engine], help="the log of every action of the reconcile loop")
    events.add_argument("-f", "--follow", action="store_true")
    events.add_argument("--since", help="a duration ago (10m) or seconds since the epoch")
    events.add_argument("-o", "--output", choices=("text", "json"), default="text")

    schema = sub.add_parser("schema", parents=[common], help="print or write the JSON Schemas of the manifest kinds")
    schema.add_argument("name", nargs="?", default="manifest", help="which schema to print (default: manifest)")
    schema.add_argument("--write", action="store_true", help="write every schema into --dir")
    schema.add_argument("--check", action="store_true", help="exit 1 when the files in --dir are stale")
    schema.add_argument("--dir", default="schemas", help="schema directory (default: ./schemas)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    index = _command_index(arguments)
    if index is not None and arguments[index] == "--once":  # `reconcile --once DIR`: CI's spelling of apply
        arguments = [*arguments[:index], "apply", *arguments[index + 1 :]]
    only = _subcommand(arguments)
    parser = build_parser(only if only in _commands() else None)  # an unknown one: list every choice
    args = parser.parse_args(arguments)
    if args.subcommand is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    command = _commands()[args.subcommand]
    # A one-shot command allocates many small objects (YAML nodes, models) and frees
    # them at exit; the cyclic collector would only re-scan them, costing about a
    # fifth of `reconcile plan` on 1,000 objects. Long-running commands keep it.
    gc.disable()
    # pydantic looks for plugins through every installed distribution's entry points
    # when it builds its first validator; reconcile uses none, and the scan costs
    # about 3 ms here (more on hosts with many packages).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        code = command(args)
        if not gc.isenabled():
            # a one-shot command: its objects die with the process, and the collection
            # at interpreter exit would only walk them (about 10 ms after the run path)
            gc.freeze()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `reconcile plan | head`: the reader went away; that is not our error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    def validate(args: argparse.Namespace) -> int:
        from reconciler.cli import manifest_commands

        return manifest_commands.validate(args)

    def plan(args: argparse.Namespace) -> int:
        from reconciler.cli import manifest_commands

        return manifest_commands.plan(args)

    def schema(args: argparse.Namespace) -> int:
        from reconciler.cli import schema_command

        return schema_command.run(args)

    def container(function: str) -> Callable[[argparse.Namespace], int]:
        def command(args: argparse.Namespace) -> int:
            from reconciler.cli import container_commands

            if getattr(args, "command", None) and args.command[:1] == ["--"]:
                args.command = args.command[1:]
            handler: Callable[[argparse.Namespace], int] = getattr(container_commands, function)
            return handler(args)

        return command

    def loop_status(function: str) -> Callable[[argparse.Namespace], int]:
        def command(args: argparse.Namespace) -> int:
            from reconciler.cli import status_commands

            handler: Callable[[argparse.Namespace], int] = getattr(status_commands, function)
            return handler(args)

        return command

    def agent(args: argparse.Namespace) -> int:
        from reconciler.api import daemon

        gc.enable()  # long-running: collect cycles
        args.dry_run, args.no_wait = False, False
        return daemon.run(args)

    def system(args: argparse.Namespace) -> int:
        from reconciler.cli import system_commands

        return system_commands.system(args)

    def service(args: argparse.Namespace) -> int:
        from reconciler.cli import service_commands

        return service_commands.service(args)

    def context(args: argparse.Namespace) -> int:
        from reconciler.cli import context_commands

        return context_commands.context(args)

    def apply_once(args: argparse.Namespace) -> int:
        from reconciler.cli import manifest_commands

        return manifest_commands.apply(args)

    def networks(args: argparse.Namespace) -> int:
        from reconciler.cli import network_commands

        return network_commands.network(args)

    def volumes(args: argparse.Namespace) -> int:
        from reconciler.cli import volume_commands

        return volume_commands.volume(args)

    def images(function: str) -> Callable[[argparse.Namespace], int]:
        def command(args: argparse.Namespace) -> int:
            from reconciler.cli import image_commands

            handler: Callable[[argparse.Namespace], int] = getattr(image_commands, function)
            return handler(args)

        return command

    return {
        "validate": validate,
        "plan": plan,
        "schema": schema,
        "image": images("image"),
        "volume": volumes,
        "apply": apply_once,
        "agent": agent,
        "context": context,
        "system": system,
        "service": service,
        "status": loop_status("status"),
        "events": loop_status("show_events"),
        "network": networks,
        "pull": images("pull"),
        "push": images("push"),
        "build": images("build"),
        "images": images("images"),
        "tag": images("tag"),
        "history": images("history"),
        "login": images("login"),
        "logout": images("logout"),
        "run": container("run"),
        "ps": container("ps"),
        "logs": container("logs"),
        "exec": container("exec_"),
        "stop": container("stop"),
        "rm": container("rm"),
        "kill": container("kill"),
        "pause": container("pause"),
        "unpause": container("unpause"),
        "inspect": container("inspect"),
        "stats": container("stats"),
    }


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
