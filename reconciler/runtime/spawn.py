"""Run a process as a container in the foreground: the path of ``reconcile run --rm``.

The caller is the parent and collects the exit status itself, so no monitor stays
behind. The sequence (each step in the child, before exec):

1. join the cgroup, so every later process is accounted;
2. unshare mount, uts, ipc, net, cgroup and pid namespaces, then fork once more:
   only a child of the unsharing process lives in the new pid namespace, as pid 1;
3. make every mount private, so nothing done here propagates to the host;
4. mount the overlay of image layers (or bind a plain rootfs onto itself: pivot_root
   needs a mount point) and mount ``/proc``,
   a tmpfs ``/dev`` with the standard nodes, ``devpts``, ``/dev/shm``, ``/dev/mqueue``
   and a read-only ``/sys``;
5. pivot_root into it and detach the old root;
6. mask Docker's masked paths and remount its read-only ones; optionally the root;
7. hostname, supplementary groups, gid, uid, capabilities, no_new_privs;
8. chdir and exec; a failed exec reports through a close-on-exec pipe and exits 127
   (not found) or 126 (not executable), as Docker does.

Every mount lives in the container's mount namespace and goes away with it, so a
failure at any step leaves no mount on the host.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import signal
import stat
import termios
from collections.abc import Callable
from typing import NamedTuple, NoReturn

from reconciler.runtime import linux, rootfs_path
from reconciler.runtime.cgroups import Cgroup

NAMESPACES = (
    linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWNET | linux.CLONE_NEWCGROUP
) | linux.CLONE_NEWPID

#: Docker's masked paths (moby ``oci/defaults.go``): files become /dev/null, directories an empty read-only tmpfs.
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

#: Above any descriptor an engine process has open (closerange uses close_range(2)).
MAX_FD = 1 << 20

#: Character devices every container gets: (name, major, minor).
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))


#: Records on the path of ``reconcile run`` are NamedTuples, not dataclasses: the
#: dataclasses module (with inspect) costs about 9 ms to import and each dataclass
#: about 1 ms to build, against 0.1 ms for a NamedTuple.
class Overlay(NamedTuple):
    """An overlay root: image ``layers`` (topmost first) read-only under a per-container
    ``upper`` directory that takes every write, with ``work`` as overlayfs' scratch
    space (on the same filesystem as ``upper``). Mounted inside the container's mount
    namespace, so the host never sees the mount; ``upper`` outlives the container."""

    layers: tuple[str, ...]
    upper: str
    work: str

    def options(self) -> str:
        for path in (*self.layers, self.upper, self.work):
            if any(c in path for c in ",:\\") or not os.path.isabs(path):
                raise StartError(f"overlay path {path!r} must be absolute, without ',', ':' or '\\'", 126)
        # redirect_dir and metacopy off: the upper dir must stay a plain diff that a
        # build turns into a layer tar, whatever the kernel's defaults are
        return (
            f"lowerdir={':'.join(self.layers)},upperdir={self.upper},workdir={self.work},redirect_dir=off,metacopy=off"
        )


class MountSpec(NamedTuple):
    """A mount into the container: a host path bound (``bind``, file or directory) or a
    fresh ``tmpfs`` (``options`` such as ``size=64m,mode=1777``). ``target`` is resolved
    inside the container's root, so an image's symlink cannot point it elsewhere."""

    target: str
    type: str = "bind"
    source: str = ""
    read_only: bool = False
    options: str = ""
    #: A new, empty named volume: fill it from the image's content at ``target``
    #: before mounting it there, as Docker does at a volume's first mount.
    copy_up: bool = False


class Config(NamedTuple):
    """``rootfs`` is the root directory itself, or, with ``overlay``, the empty
    directory the overlay is mounted on."""

    rootfs: str
    argv: list[str]
    env: list[str] = []
    hostname: str = "container"
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    capabilities: list[str] = []
    read_only: bool = False
    no_new_privileges: bool = True
    overlay: Overlay | None = None
    mounts: tuple[MountSpec, ...] = ()
    #: Run a minimal init as pid 1 that reaps zombies and forwards signals (``--init``).
    init: bool = False
    #: stdin is a terminal the process takes as its controlling terminal (``-t``).
    tty: bool = False
    #: A network namespace handle (netns.py) to join instead of making a new one.
    netns: str | None = None
    #: Namespaces shared with the host (``--network host``, ``--pid host``, ...):
    #: any of "net", "pid", "ipc", "uts".
    host_namespaces: tuple[str, ...] = ()


def to_json(config: Config) -> dict[str, object]:
    """``config`` as plain data for the state file (nested records as dicts, tuples as lists)."""
    out: dict[str, object] = config._asdict()
    out["overlay"] = config.overlay._asdict() if config.overlay is not None else None
    out["mounts"] = [m._asdict() for m in config.mounts]
    out["groups"] = list(config.groups)
    out["host_namespaces"] = list(config.host_namespaces)
    return out


class StartError(Exception):
    """The container's process could not be started; ``exit_code`` is Docker's for it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Started(NamedTuple):
    """A running container: ``outer_pid`` is the caller's child (``wait`` on it gives
    the exit code), ``pid`` the container's pid 1 as the host sees it (for signals)."""

    outer_pid: int
    pid: int


def start(
    config: Config,
    *,
    cgroup: Cgroup | None = None,
    stdout: int = 1,
    stderr: int = 2,
    stdin: int = 0,
    dedicated: bool = False,
) -> Started:
    """Start ``config`` and return once its process has exec'd.

    ``dedicated``: the caller is a process of its own for this one container (the
    monitor), so it may enter the new pid namespace itself and fork pid 1 directly,
    with no outer process in between that would stay for the container's life
    (about 1.8 MiB each). Otherwise an outer child unshares and forks pid 1, so the
    caller's own pid namespace never changes.

    The report pipe is close-on-exec: the outer child writes ``pid N`` into it and
    closes its end; the container writes an error into it only if it fails before
    exec. End of file with no error therefore means the exec happened.
    Raises StartError (after reaping the child) when it did not.
    """
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    stdio = (stdin, stdout, stderr)
    if dedicated:
        flags = namespace_flags(config)
        if flags & linux.CLONE_NEWPID:
            linux.unshare(linux.CLONE_NEWPID)  # our next child is pid 1 of the new namespace
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child; its effects are tested
        os.close(report_r)
        if dedicated:
            # no parent-death signal: the container outlives a monitor that dies
            _until_exec(report_w, lambda: _direct_child(config, cgroup, report_w, stdio), parent_death=False)
        code = 1
        try:
            code = _outer_child(config, cgroup, report_w, stdio)
        except BaseException as exc:
            _report(report_w, f"126 {exc}")
            code = 126
        os._exit(code)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as handle:
        report = handle.read().decode(errors="replace")
    if dedicated:
        container_pid, error = pid, report
    else:
        head, newline, rest = report.partition("\n")
        container_pid = int(head.split()[1]) if newline and head.startswith("pid ") else 0
        error = rest if newline and head.startswith("pid ") else report
    if error or not container_pid:
        os.waitpid(pid, 0)
        code_text, _, message = error.partition(" ")
        raise StartError(message or "the container did not start", int(code_text) if code_text.isdigit() else 126)
    return Started(outer_pid=pid, pid=container_pid)


def _direct_child(config: Config, cgroup: Cgroup | None, report: int, stdio: tuple[int, int, int]) -> None:
    """Pid 1 forked by a dedicated caller: join the cgroup (before the cgroup
    namespace is made, so it is its root), the network namespace, then the rest."""
    if cgroup is not None:
        cgroup.add(os.getpid())
    _join_netns(config)
    linux.unshare(namespace_flags(config) & ~linux.CLONE_NEWPID)
    _container(config, report, stdio)


def wait(started: Started) -> int:
    """Block until the container exits; its exit code (128+N when killed by signal N)."""
    _, status = os.waitpid(started.outer_pid, 0)
    return _exit_code(status)


def run(config: Config, *, cgroup: Cgroup | None = None, stdout: int = 1, stderr: int = 2, stdin: int = 0) -> int:
    """Run ``config`` to completion; its exit code (128+N when killed by signal N).

    Raises StartError when the process never started (its message is what the
    container would have printed, e.g. ``executable not found in container: /x``).
    """
    return wait(start(config, cgroup=cgroup, stdout=stdout, stderr=stderr, stdin=stdin))


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _report(fd: int, message: str) -> None:
    """Tell the parent why the start failed; a parent already gone has nothing to hear."""
    with contextlib.suppress(OSError):
        os.write(fd, message.encode())


#: The clone flag of each namespace a container may share with the host.
HOST_SHAREABLE = {
    "net": linux.CLONE_NEWNET,
    "pid": linux.CLONE_NEWPID,
    "ipc": linux.CLONE_NEWIPC,
    "uts": linux.CLONE_NEWUTS,
}


def namespace_flags(config: Config) -> int:
    """The namespaces to make new: all of them, less those shared with the host
    and the network namespace when a handle is joined instead."""
    flags = NAMESPACES
    for name in config.host_namespaces:
        if name not in HOST_SHAREABLE:
            raise StartError(f"unknown namespace {name!r}: one of {', '.join(HOST_SHAREABLE)} can be the host's", 125)
        flags &= ~HOST_SHAREABLE[name]
    if config.netns is not None:
        flags &= ~linux.CLONE_NEWNET
    return flags


def _join_netns(config: Config) -> None:
    if config.netns is not None and "net" not in config.host_namespaces:
        handle = os.open(config.netns, os.O_RDONLY | os.O_CLOEXEC)
        linux.setns(handle, linux.CLONE_NEWNET)
        os.close(handle)


def _outer_child(config: Config, cgroup: Cgroup | None, report: int, stdio: tuple[int, int, int]) -> int:
    """Joins the cgroup, unshares, forks pid 1 of the new namespace and waits for it.

    It keeps the container's stdio and the report pipe only: a fork of a busy engine
    (the agent) holds everything the engine had open at that moment, such as the
    write end of this container's own stdin, which would then never see its end of
    file while the container lives, and the agent's listening sockets."""
    _redirect(stdio)
    os.closerange(3, report)
    os.closerange(report + 1, MAX_FD)
    stdio = (0, 1, 2)
    if cgroup is not None:
        cgroup.add(os.getpid())
    _join_netns(config)
    linux.unshare(namespace_flags(config))
    pid = os.fork()
    if pid == 0:
        _until_exec(report, lambda: _container(config, report, stdio))
    _report(report, f"pid {pid}\n")
    os.close(report)  # from here only the container holds it, until its exec closes it
    _, status = os.waitpid(pid, 0)
    return _exit_code(status)


def _until_exec(report: int, body: Callable[[], None], *, parent_death: bool = True) -> NoReturn:
    """Run ``body`` in a forked child that must end in exec: any failure before it is
    reported through ``report`` with Docker's exit code, and the child exits with it."""
    try:
        if parent_death:
            linux.prctl(linux.PR_SET_PDEATHSIG, 9)  # if our parent dies, so does the container
        body()
        raise StartError("exec returned", 126)
    except StartError as exc:
        _report(report, f"{exc.exit_code} {exc}")
        os._exit(exc.exit_code)
    except BaseException as exc:
        _report(report, f"126 {exc}")
        os._exit(126)


def _redirect(stdio: tuple[int, int, int]) -> None:
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target)


def _container(config: Config, report: int, stdio: tuple[int, int, int]) -> None:
    _redirect(stdio)
    # Nothing of the engine's stays open in the container: exec would close what is
    # close-on-exec, but an init (--init) never execs, and it would keep the engine's
    # lock file, database and pipes for the container's whole life.
    os.closerange(3, report)
    os.closerange(report + 1, MAX_FD)
    if config.netns is None and "net" not in config.host_namespaces:
        linux.loopback_up()  # a namespace of its own, made just now: lo starts down
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    root = os.path.realpath(config.rootfs)
    if config.overlay is not None:
        linux.mount("overlay", root, "overlay", 0, config.overlay.options())
    else:
        linux.mount(root, root, None, linux.MS_BIND | linux.MS_REC)  # pivot_root needs a mount point
    _mount_filesystems(root)
    _mount_user(root, config.mounts)
    if "uts" not in config.host_namespaces:
        linux.sethostname(config.hostname)
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")
    _mask_paths()
    if config.read_only:
        linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
    _drop_privileges(config)
    _enter_workdir(config)
    if config.init:
        _init(config, report)
    _exec(config)


#: What a minimal init passes on to its child (everything a user sends to stop,
#: reload or resize it); SIGKILL and SIGSTOP cannot be caught.
FORWARDED_SIGNALS = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGALRM,
    signal.SIGCONT,
)


def _init(config: Config, report: int) -> NoReturn:
    """Pid 1 as ``docker run --init`` makes it: fork the real process, pass signals on,
    reap every orphan that the namespace reparents to us, and exit with the real
    process's status. It stays a fork of this small pre-exec child rather than a
    binary in the image, so no file has to be copied into the container."""
    child = os.fork()
    if child == 0:
        _until_exec(report, lambda: _exec(config))
    os.close(report)  # the child's exec (or its error) closes the last copy

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            os._exit(_exit_code(status))


def _mount_filesystems(root: str) -> None:
    def at(path: str) -> str:
        target = os.path.join(root, path.lstrip("/"))
        os.makedirs(target, exist_ok=True)
        return target

    linux.mount("proc", at("/proc"), "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    linux.mount("sysfs", at("/sys"), "sysfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_RDONLY)
    dev = at("/dev")
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        path = os.path.join(dev, name)
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(path, 0o666)
    linux.mount(
        "devpts", at("/dev/pts"), "devpts", linux.MS_NOSUID | linux.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"
    )
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    linux.mount(
        "shm", at("/dev/shm"), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, "mode=1777,size=65536k"
    )
    linux.mount("mqueue", at("/dev/mqueue"), "mqueue", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, os.path.join(dev, name))


def _mount_user(root: str, mounts: tuple[MountSpec, ...]) -> None:
    for spec in mounts:
        target = rootfs_path.resolve(root, spec.target)
        if spec.type == "tmpfs":
            os.makedirs(target, exist_ok=True)
            linux.mount("tmpfs", target, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, spec.options or None)
            continue
        if not os.path.exists(spec.source):
            raise StartError(f"bind source {spec.source} does not exist (mount on {spec.target})", 125)
        if os.path.isdir(spec.source):
            if spec.copy_up and os.path.isdir(target) and not os.listdir(spec.source):
                _copy_up(target, spec.source)
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                open(target, "a").close()
        linux.mount(spec.source, target, None, linux.MS_BIND | linux.MS_REC)
        if spec.read_only:
            linux.mount(spec.source, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


def _copy_up(image_dir: str, volume: str) -> None:
    """Copy what the image has at a mount point into the empty volume mounted there
    (modes, owners, xattrs, times and symlinks kept). Only here, inside the
    container's mount namespace before the volume covers it, is the merged overlay
    view of the image visible."""
    from reconciler.volumes.local import copy_tree

    copy_tree(image_dir, volume)


def _mask_paths() -> None:
    for path in MASKED_PATHS:
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
        elif os.path.exists(path):
            linux.mount("/dev/null", path, None, linux.MS_BIND)
    for path in READONLY_PATHS:
        if os.path.exists(path):
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT | linux.MS_RDONLY)


#: Open files a container may have, as containerd sets it (capped at the host's hard limit).
NOFILE = 1_048_576


def _set_rlimits() -> None:
    """Raise the open-files limit to what Docker containers get, within what the host allows."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _drop_privileges(config: Config) -> None:
    _set_rlimits()
    keep = linux.capability_mask(config.capabilities)
    for number in range(linux.last_capability() + 1):
        if not keep & (1 << number):
            linux.prctl(linux.PR_CAPBSET_DROP, number)
    os.setgroups(list(config.groups))
    os.setgid(config.gid)
    os.setuid(config.uid)  # a non-root uid loses its permitted set here, as in Docker
    if config.uid == 0:
        linux.capset(keep, keep, keep)
    if config.no_new_privileges:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)


def _enter_workdir(config: Config) -> None:
    try:
        os.chdir(config.cwd)
    except OSError as exc:
        raise StartError(f"cannot change to working directory {config.cwd}: {exc.strerror}", 126) from None


def _reset_signals() -> None:
    """Undo what the Python parent set: exec keeps ignored signals ignored, and a
    container process must not start with SIGPIPE or SIGXFSZ ignored."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, *FORWARDED_SIGNALS):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _take_terminal() -> None:
    """Make stdin (a pty slave) the controlling terminal of a new session, as a
    shell on a terminal expects: job control and ^C work."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _exec(config: Config) -> None:
    _reset_signals()
    if config.tty:
        _take_terminal()
    program = config.argv[0]
    env = dict(item.partition("=")[::2] for item in config.env)
    candidates = (
        [program]
        if "/" in program
        else [os.path.join(d, program) for d in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":") if d]
    )
    found = [c for c in candidates if os.path.exists(c)]
    if not found:
        raise StartError(f"executable not found in container: {program}", 127)
    try:
        os.execve(found[0], config.argv, env)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR):
            raise StartError(f"permission denied executing {found[0]}: {exc.strerror}", 126) from None
        raise StartError(
            f"cannot execute {found[0]}: {exc.strerror}", 127 if exc.errno == errno.ENOENT else 126
        ) from None


#: Namespaces an exec joins, in order: the pid namespace last, since it applies to
#: children only, and the mount namespace after the others (its files are under /proc).
JOIN_ORDER = (("ipc", 0), ("uts", 0), ("net", 0), ("cgroup", 0), ("pid", 0), ("mnt", 0))


def exec_in(
    pid: int,
    config: Config,
    *,
    cgroup: Cgroup | None = None,
    stdout: int = 1,
    stderr: int = 2,
    stdin: int = 0,
) -> int:
    """Run ``config.argv`` inside the running container whose pid 1 is ``pid``: its
    namespaces, cgroup, user, capabilities and environment (``config`` is the
    container's, with the argv to run). Returns the exit code; StartError as ``run``.
    """
    namespaces = [os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC) for name, _ in JOIN_ORDER]
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child; its effects are tested
        os.close(report_r)
        try:
            if cgroup is not None:
                cgroup.add(os.getpid())
            for fd in namespaces:
                linux.setns(fd)
            inner = os.fork()  # only a child enters the pid namespace
            if inner == 0:

                def join() -> None:
                    _redirect((stdin, stdout, stderr))
                    os.chdir("/")
                    _drop_privileges(config)
                    _enter_workdir(config)
                    _exec(config)

                _until_exec(report_w, join)
            os.close(report_w)
            _, status = os.waitpid(inner, 0)
            os._exit(_exit_code(status))
        except BaseException as exc:
            _report(report_w, f"126 {exc}")
            os._exit(126)
    os.close(report_w)
    for fd in namespaces:
        os.close(fd)
    _, status = os.waitpid(child, 0)
    with os.fdopen(report_r, "rb") as handle:
        report = handle.read().decode(errors="replace")
    if report:
        code_text, _, message = report.partition(" ")
        raise StartError(message, int(code_text) if code_text.isdigit() else 126)
    return _exit_code(status)
