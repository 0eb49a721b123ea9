"""The local volume driver: directories under ``ROOT/volumes`` in Docker's layout.

A volume NAME is the directory ``ROOT/volumes/NAME/`` holding ``_data`` (what
containers mount) and ``volume.json`` (its metadata). Nothing about a volume lives
only in memory, and every change is a single rename, so no process ever sees half
a volume:

- ``create`` builds the whole directory under a hidden staging name and renames it
  into place. Two processes creating the same name race on that rename; the loser
  reads the winner's volume (so ``run -v new:/p`` twice at once gives one volume);
- ``remove`` renames the directory to a hidden grave, then deletes the grave: a
  volume is there in full or gone, never half deleted under a starting container;
- metadata updates write a temporary file and rename it over ``volume.json``.

Hidden names (staging, graves) start with ``.``, which no volume name can, and a
crash leaves them to ``prune``, which removes those whose process is gone.

**In use.** A volume is in use while any container, running *or stopped*, has a
mount whose source lies inside the volume's directory, as ``docker volume rm``
counts them. The containers' own state files (``ROOT/containers/NAME/state.json``,
``spec.config.mounts[].source``) say so; a state file that cannot be parsed is
skipped: the runtime cannot start that container either. Something mounted inside
a volume's directory on the host also counts as a use: deleting would descend into
that mount. There is a window between checking and deleting in which a new
container could start using the volume (Docker closes it with a daemon-wide lock,
which a daemonless CLI does not have); ``reconcile`` serialises its own passes.

**Prune** (``docker volume prune``, Docker >= 23), never touching a volume in use:

- by default only anonymous volumes (``-v /path``) go;
- ``all=True`` adds unused named volumes (``--all``);
- a volume whose ``retain`` policy is ``"retain"`` (a manifest Volume's default) goes
  only with ``include_retained=True`` too, i.e. ``--prune-volumes``: a manifest said
  to keep its data, so neither a prune nor a spec change loses it by accident;
- ``labels`` restricts prune to matching volumes (the stack label for a stack's own).

``retain="delete"`` volumes the manifests no longer list are removed by the planner
with ``remove``; ``remove`` is explicit and ignores the policy, as ``docker volume rm``.

**Copy-up.** Docker fills a new, empty volume with the image's content at the mount
point. The copy happens inside the container's mount namespace (``copy_tree`` is
the helper); ``copy_up_needed`` says whether to do it, and ``mark_copied_up`` records
that the first mount happened, so a volume the user empties later is not refilled.
(Docker copies whenever a new container mounts an empty volume; reconcile fills a
volume once, at its first mount, so emptying a volume sticks.)

**Options** (``type``, ``device``, ``o``, as ``docker volume create -o``) are
validated and recorded; this driver does not mount them: ``_data`` is always a
plain directory.

Standard library only (on the path of ``reconcile run -v NAME:/path``), and not
``secrets`` (it imports hashlib: 5 ms) but ``os.urandom``; the records are
NamedTuples for the same reason as runtime's.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal, NamedTuple

DRIVER = "local"
#: Docker's rule for local volume names (moby ``volume/local``): at least two characters.
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
#: A volume name is a directory name.
NAME_MAX = 255
#: ``reconciler.model.ownership.STACK``, spelled out: importing the model (pydantic)
#: would cost ``reconcile run`` more than the whole volume driver.
STACK_LABEL = "reconcile.stack"
#: Marks volumes made for ``-v /path`` (Docker's ``com.docker.volume.anonymous``).
ANONYMOUS_LABEL = "reconcile.volume.anonymous"
#: Driver options the local driver knows (``docker volume create -o``).
OPTION_KEYS = ("type", "device", "o")
RETAIN_POLICIES = ("retain", "delete")
#: ``-v`` modes: read-only/read-write, SELinux relabel (accepted and ignored, as the
#: manifest parser does) and Docker's ``nocopy`` (no copy-up into a new volume).
FLAG_MODES = ("ro", "rw", "z", "Z", "nocopy")
#: Propagation modes Docker accepts on binds; every mount here is private.
PROPAGATION_MODES = ("shared", "slave", "private", "rshared", "rslave", "rprivate")

Retain = Literal["retain", "delete"]

_STAGING = ".new-"
_GRAVE = ".removing-"


class VolumeError(Exception):
    """A volume operation failed; the message names the volume."""


class VolumeSpecError(VolumeError, ValueError):
    """Bad input: an invalid name, ``-v`` flag, label, option or bind source."""


class VolumeNotFoundError(VolumeError):
    pass


class VolumeInUseError(VolumeError):
    """The volume is mounted by containers (running or stopped), named in ``containers``."""

    def __init__(self, name: str, containers: list[str]) -> None:
        super().__init__(f"volume {name!r} is in use by container(s) {', '.join(containers)}: remove them first")
        self.name = name
        self.containers = containers


class Volume(NamedTuple):
    """A volume as ``volume.json`` records it; ``mountpoint`` is its ``_data`` directory."""

    name: str
    mountpoint: str
    labels: dict[str, str]
    options: dict[str, str]
    created_at: float
    retain: Retain | None = None
    #: The first mount happened (and copied the image's content in if it was empty).
    copied_up: bool = False
    driver: str = DRIVER

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels


class VolumeFlag(NamedTuple):
    """One ``-v`` flag: ``type`` ``volume`` with a volume name as ``source`` (empty for
    an anonymous volume), or ``bind`` with an absolute host path. ``copy`` is False for
    ``nocopy``."""

    type: Literal["volume", "bind"]
    source: str
    target: str
    read_only: bool = False
    copy: bool = True

    @property
    def anonymous(self) -> bool:
        return self.type == "volume" and not self.source


def check_name(name: str) -> str:
    """``name`` when it is a valid local volume name; VolumeSpecError in Docker's words otherwise."""
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > NAME_MAX:
        raise VolumeSpecError(
            f"{name!r} includes invalid characters for a local volume name, only "
            f'"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed (at least two characters, at most {NAME_MAX}). '
            "If you intended to pass a host directory, use an absolute path"
        )
    return name


class LocalVolumes:
    """The volumes under ``ROOT/volumes``; ``ROOT/containers`` tells which are in use."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.directory = os.path.join(root, "volumes")
        self.containers = os.path.join(root, "containers")

    def path(self, name: str) -> str:
        """The ``_data`` directory containers mount (whether or not the volume exists)."""
        return os.path.join(self.directory, check_name(name), "_data")

    def create(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        retain: Retain | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Volume:
        """Create ``name``, or return it when it exists with the same labels, retain
        policy and options. A volume that exists with different ones raises
        VolumeError naming it: its data is not ours to reinterpret."""
        record = _new_record(check_name(name), labels=labels, retain=retain, options=options)
        existing = self._publish_or_get(name, record)
        if existing is None:
            return self._volume(name, record)
        _check_same(existing, record)
        return existing

    def create_anonymous(self, *, labels: Mapping[str, str] | None = None) -> Volume:
        """A new volume with a random 64-hex-digit name, as ``docker run -v /path`` makes."""
        record = _new_record(os.urandom(32).hex(), labels={**(labels or {}), ANONYMOUS_LABEL: ""})
        self._publish(record["name"], record)
        return self._volume(record["name"], record)

    def ensure(self, name: str) -> Volume:
        """``name`` as it is, created without labels on first use (``docker run -v new:/p``)."""
        with contextlib.suppress(VolumeNotFoundError):
            return self.get(name)
        record = _new_record(name)
        existing = self._publish_or_get(name, record)
        return self._volume(name, record) if existing is None else existing

    def get(self, name: str) -> Volume:
        """VolumeNotFoundError when there is no such volume; VolumeError when its
        directory exists but its metadata is missing or unreadable (made by hand, or
        damaged): such a directory is never taken for, or replaced by, a new volume."""
        metadata = os.path.join(self.directory, check_name(name), "volume.json")
        for attempt in (1, 2):
            try:
                with open(metadata) as handle:
                    record = json.load(handle)
                break
            except FileNotFoundError:
                if not os.path.lexists(os.path.dirname(metadata)):
                    raise VolumeNotFoundError(f"no such volume: {name}") from None
                # The directory may have been renamed into place (with its volume.json)
                # between the open and the check: look once more before calling it foreign.
                if attempt == 2:
                    raise VolumeError(f"{os.path.dirname(metadata)} is not a volume: it has no volume.json") from None
            except (OSError, ValueError) as exc:
                raise VolumeError(f"volume {name!r}: cannot read {metadata}: {exc}") from None
        return self._volume(name, record)

    def in_use(self, name: str) -> list[str]:
        """Names of the containers (any status) whose mounts lie inside this volume, sorted."""
        return sorted(self._users().get(check_name(name), ()))

    def remove(self, name: str, *, force: bool = False) -> None:
        """Delete the volume and its data. Refused while any container uses it, even
        with ``force``, which (as ``docker volume rm -f``) only makes a missing volume
        no error."""
        try:
            self.get(name)
        except VolumeNotFoundError:
            if force:
                return
            raise
        users = self.in_use(name)
        if users:
            raise VolumeInUseError(name, users)
        if not self._bury(name) and not force:
            raise VolumeNotFoundError(f"no such volume: {name}")

    def prune(
        self,
        *,
        all: bool = False,
        include_retained: bool = False,
        labels: Mapping[str, str | None] | None = None,
    ) -> builtins.list[str]:
        """Remove unused volumes by the rules in the module docstring; the names removed.

        ``labels``: only volumes carrying each key (with that value, unless None).
        Also finishes removals and creations that a dead process left behind."""
        self._sweep()
        users = self._users()
        mount_points = _mount_points()
        removed = []
        for volume in self.list(labels=labels):
            if users.get(volume.name) or not (volume.anonymous or all):
                continue
            if volume.retain == "retain" and not include_retained:
                continue
            if _under(mount_points, os.path.join(self.directory, volume.name)):
                continue  # in use on the host; deleting would reach into the mount
            if self._bury(volume.name):
                removed.append(volume.name)
        return removed

    def copy_up_needed(self, name: str) -> bool:
        """True while the volume has never been mounted and is still empty: the first
        container to mount it should copy its image's content at the mount point in."""
        volume = self.get(name)
        if volume.copied_up:
            return False
        with os.scandir(volume.mountpoint) as entries:
            return next(entries, None) is None

    def mark_copied_up(self, name: str) -> None:
        """Record the first mount, so ``copy_up_needed`` stays False from now on."""
        volume = self.get(name)
        if not volume.copied_up:
            record = _record_of(volume._replace(copied_up=True))
            _write_json(os.path.join(self.directory, name, "volume.json"), record)

    def list(self, *, labels: Mapping[str, str | None] | None = None) -> builtins.list[Volume]:
        """Volumes sorted by name, those matching ``labels`` only (see ``prune``).
        A directory whose metadata cannot be read is left out: ``get`` says why."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if not NAME_RE.match(name):
                continue  # staging directories and graves
            try:
                volume = self.get(name)
            except VolumeError:
                continue
            if _labels_match(volume.labels, labels or {}):
                out.append(volume)
        return out

    # -- internals --

    def _volume(self, name: str, record: Any) -> Volume:
        """The record of ``volume.json`` as a Volume; VolumeError when it is malformed."""
        try:
            if (
                record["name"] != name
                or record["driver"] != DRIVER
                or record.get("retain") not in (None, *RETAIN_POLICIES)
            ):
                raise ValueError("name, driver or retain policy do not match")
            return Volume(
                name=name,
                mountpoint=os.path.join(self.directory, name, "_data"),
                labels={str(k): str(v) for k, v in record["labels"].items()},
                options={str(k): str(v) for k, v in record["options"].items()},
                created_at=float(record["created_at"]),
                retain=record.get("retain"),
                copied_up=bool(record.get("copied_up", False)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise VolumeError(f"volume {name!r}: malformed volume.json ({exc})") from None

    def _publish_or_get(self, name: str, record: dict[str, Any]) -> Volume | None:
        """Create the volume from ``record``: None when this call created it, else the volume already there."""
        with contextlib.suppress(VolumeNotFoundError):
            return self.get(name)
        try:
            self._publish(name, record)
        except FileExistsError:
            return self.get(name)  # another process created it first
        return None

    def _publish(self, name: str, record: dict[str, Any]) -> None:
        """Build the volume under a staging name and rename it into place (FileExistsError when taken)."""
        os.makedirs(self.directory, mode=0o701, exist_ok=True)
        staging = os.path.join(self.directory, f"{_STAGING}{os.getpid()}-{os.urandom(8).hex()}")
        os.mkdir(staging, 0o700)
        try:
            data = os.path.join(staging, "_data")
            os.mkdir(data)
            os.chmod(data, 0o755)  # Docker's mode for a new volume, whatever the umask
            _write_json(os.path.join(staging, "volume.json"), record)
            os.chmod(staging, 0o701)  # as Docker: traversable to the mount, not listable
            try:
                os.rename(staging, os.path.join(self.directory, name))
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise FileExistsError(errno.EEXIST, "volume exists", name) from None
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _bury(self, name: str) -> bool:
        """Rename the volume away, then delete it; False when it was already gone."""
        directory = os.path.join(self.directory, name)
        mounts = _under(_mount_points(), directory)
        if mounts:
            raise VolumeError(f"volume {name!r} has mounts inside it on the host ({', '.join(mounts)}): unmount them")
        grave = os.path.join(self.directory, f"{_GRAVE}{os.getpid()}-{os.urandom(8).hex()}")
        try:
            os.rename(directory, grave)
        except FileNotFoundError:
            return False
        try:
            shutil.rmtree(grave)
        except OSError as exc:
            raise VolumeError(f"volume {name!r} was removed but deleting its data failed: {exc}") from None
        return True

    def _sweep(self) -> None:
        """Delete staging directories and graves whose process is gone (a crash mid-create or mid-remove)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            for prefix in (_STAGING, _GRAVE):
                pid_text = name.removeprefix(prefix).partition("-")[0]
                if name.startswith(prefix) and pid_text.isdigit() and not _alive(int(pid_text)):
                    shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    def _users(self) -> dict[str, set[str]]:
        """Volume name -> containers with a mount inside that volume's directory."""
        roots = {os.path.normpath(self.directory), os.path.realpath(self.directory)}
        users: dict[str, set[str]] = {}
        for container, source in self._mount_sources():
            for root in roots:
                if source.startswith(root + "/"):
                    volume = source[len(root) + 1 :].partition("/")[0]
                    users.setdefault(volume, set()).add(container)
        return users

    def _mount_sources(self) -> Iterator[tuple[str, str]]:
        """(container, normalised bind source) for every container state file."""
        try:
            directories = os.listdir(self.containers)
        except FileNotFoundError:
            return
        for directory in directories:
            if directory.startswith("."):
                continue  # a removed container's directory, being deleted
            try:
                with open(os.path.join(self.containers, directory, "state.json")) as handle:
                    state = json.load(handle)
            except (OSError, ValueError):
                continue  # a name reserved a moment ago, or unreadable (see the module docstring)
            if not isinstance(state, dict):
                continue
            name = state.get("name") if isinstance(state.get("name"), str) else directory
            for mount in _mounts_of(state):
                source = mount.get("source")
                if mount.get("type", "bind") == "bind" and isinstance(source, str) and source:
                    yield str(name), os.path.normpath(source)


def _mounts_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    spec = state.get("spec")
    config = spec.get("config") if isinstance(spec, dict) else None
    mounts = config.get("mounts") if isinstance(config, dict) else None
    return [m for m in mounts if isinstance(m, dict)] if isinstance(mounts, list) else []


def _new_record(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    retain: str | None = None,
    options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``volume.json`` of a new volume, with its inputs checked."""
    labels = dict(labels or {})
    for key, value in labels.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise VolumeSpecError(f"volume {name!r}: invalid label {key!r}={value!r}: keys and values are strings")
    if retain not in (None, *RETAIN_POLICIES):
        raise VolumeSpecError(f"volume {name!r}: invalid retain policy {retain!r}: use retain or delete")
    options = dict(options or {})
    for key, value in options.items():
        if key not in OPTION_KEYS or not isinstance(value, str):
            raise VolumeSpecError(
                f"volume {name!r}: invalid option {key!r} for the local driver: use type, device or o"
            )
    return {
        "name": name,
        "driver": DRIVER,
        "labels": labels,
        "options": options,
        "created_at": time.time(),
        "retain": retain,
        "copied_up": False,
    }


def _record_of(volume: Volume) -> dict[str, Any]:
    return {
        "name": volume.name,
        "driver": volume.driver,
        "labels": volume.labels,
        "options": volume.options,
        "created_at": volume.created_at,
        "retain": volume.retain,
        "copied_up": volume.copied_up,
    }


def _check_same(existing: Volume, wanted: dict[str, Any]) -> None:
    for field in ("labels", "retain", "options"):
        have = getattr(existing, field)
        if have != wanted[field]:
            raise VolumeError(
                f"volume {existing.name!r} already exists with {field} {have!r}, not {wanted[field]!r}: "
                "remove it first or use another name"
            )


def _labels_match(labels: Mapping[str, str], wanted: Mapping[str, str | None]) -> bool:
    return all(key in labels and (value is None or labels[key] == value) for key, value in wanted.items())


def _write_json(path: str, data: dict[str, Any]) -> None:
    """Write a temporary file, fsync and rename it over ``path``. Volume metadata is
    written rarely and guards user data, so it is made durable (unlike container state)."""
    temporary = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")


def _mount_points() -> list[str]:
    """Every mount point in this process's mount namespace (field 5 of mountinfo, unescaped)."""
    with open("/proc/self/mountinfo") as handle:
        return [_MOUNTINFO_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), line.split(" ")[4]) for line in handle]


def _under(mount_points: list[str], path: str) -> list[str]:
    """The mount points at or below ``path``."""
    prefix = os.path.realpath(path)
    return [p for p in mount_points if p == prefix or p.startswith(prefix + "/")]


# -- copy-up -------------------------------------------------------------------


def copy_tree(source_dir: str, target_dir: str) -> None:
    """Copy the tree at ``source_dir`` into ``target_dir`` (created if missing, meant
    to be empty) as Docker's copy-up does: modes, owners, extended attributes and
    times preserved; symlinks copied as symlinks and never followed, in or out;
    hard links become separate copies; device nodes, FIFOs and sockets recreated.
    ``target_dir`` itself takes the owner, mode and attributes of ``source_dir``.

    A missing ``source_dir`` copies nothing, as an image without that path gives an
    empty volume. Existing entries in the target are never overwritten: O_EXCL
    creation fails instead, so a symlink planted there cannot redirect a write.
    Needs root to recreate device nodes and foreign owners.
    """
    try:
        info = os.lstat(source_dir)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "copy-up source is not a directory", source_dir)
    os.makedirs(target_dir, exist_ok=True)
    _copy_children(source_dir, target_dir)
    _copy_metadata(source_dir, target_dir, info)


def _copy_children(source: str, target: str) -> None:
    with os.scandir(source) as entries:
        children = [(entry.name, entry.stat(follow_symlinks=False)) for entry in entries]
    for name, info in children:
        _copy_entry(os.path.join(source, name), os.path.join(target, name), info)


def _copy_entry(source: str, target: str, info: os.stat_result) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(target, 0o700)  # its mode comes last, so a read-only directory can still be filled
        _copy_children(source, target)
    elif stat.S_ISREG(mode):
        _copy_file(source, target)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        os.mknod(target, stat.S_IFMT(mode) | 0o600, info.st_rdev)
    else:
        raise OSError(errno.EINVAL, f"cannot copy file type {stat.S_IFMT(mode):o}", source)
    _copy_metadata(source, target, info)


def _copy_file(source: str, target: str) -> None:
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _copy_data(src, dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_data(src: int, dst: int) -> None:
    """copy_file_range (in-kernel, reflinks where the filesystem can), falling back
    to read/write where the kernel refuses (across filesystems before 5.3 and
    again since 5.19); both continue from the same file offsets."""
    try:
        while os.copy_file_range(src, dst, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while chunk := os.read(src, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]


def _copy_metadata(source: str, target: str, info: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then xattrs (chown clears file
    capabilities), then times (every earlier step changes them)."""
    os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(info.st_mode):  # a symlink's mode is fixed; target is ours, not a link
        os.chmod(target, stat.S_IMODE(info.st_mode))
    _copy_xattrs(source, target)
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def _copy_xattrs(source: str, target: str) -> None:
    """Every attribute the target filesystem supports; a namespace it lacks
    (ENOTSUP) cannot be kept and is dropped rather than failing the copy-up."""
    try:
        names = os.listxattr(source, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENOTSUP:
            return
        raise
    for name in names:
        try:
            value = os.getxattr(source, name, follow_symlinks=False)
            os.setxattr(target, name, value, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.ENODATA):
                raise


# -- bind mounts and the -v flag -------------------------------------------------


def bind_source(path: str, *, create: bool) -> str:
    """The normalised absolute host path of a bind mount.

    A missing path is an error unless ``create`` (then it is made with its parents,
    as ``docker run -v /host:/ctr`` does; ``--mount type=bind`` and manifests without
    ``create: true`` refuse, as Docker's ``--mount`` does). Relative paths are
    resolved by the caller (the CLI against its cwd, manifests against their file)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise VolumeSpecError(f"bind mount source {path!r} must be an absolute path")
    if "\0" in path:
        raise VolumeSpecError(f"bind mount source {path!r} contains a NUL byte")
    path = os.path.normpath(path)
    if os.path.exists(path):
        return path
    if not create:
        raise VolumeSpecError(f"bind source path does not exist: {path}")
    if os.path.islink(path):
        raise VolumeSpecError(f"bind source path {path} is a symlink to a missing path: {os.readlink(path)}")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise VolumeSpecError(f"cannot create bind source path {path}: {exc.strerror}") from None
    return path


def parse_volume_flag(text: str, *, cwd: str | None = None) -> VolumeFlag:
    """Docker's ``-v`` forms: ``NAME:/path[:MODES]`` (a named volume),
    ``/host:/path[:MODES]`` (a bind), ``/path[:MODES]`` (an anonymous volume).

    MODES is a comma list of ``ro``/``rw``, ``z``/``Z`` (ignored) and ``nocopy``
    (volumes only). A source that is not a path is a volume name and must be a
    valid one. Beyond the Docker daemon, as the Docker CLI since 23 does, ``.``
    and ``./x`` (and here also ``..`` and ``../x``) are resolved against ``cwd``
    (default: the current directory) and ``~`` against the home directory, to
    agree with the manifest's short form, where such sources are binds too.
    """
    if not text or "\0" in text:
        raise VolumeSpecError(f"invalid volume {text!r}: use NAME:/path, /host/path:/path or /path")
    parts = text.split(":")
    if len(parts) > 3 or not all(parts):
        raise VolumeSpecError(f"invalid volume {text!r}: use SOURCE:TARGET[:ro] with one ':' between parts")
    if len(parts) == 1 or (len(parts) == 2 and _is_modes(parts[1])):
        source, target, modes = "", parts[0], parts[1:]
    else:
        source, target, modes = parts[0], parts[1], parts[2:]
    kind, source = _flag_source(text, source, cwd)
    read_only, copy = _flag_modes(text, modes[0] if modes else "", kind)
    if not target.startswith("/"):
        raise VolumeSpecError(f"invalid volume {text!r}: the container path {target!r} must be absolute")
    target = os.path.normpath(target)
    if target == "/" or target == "//":
        raise VolumeSpecError(f"invalid volume {text!r}: the container path cannot be '/'")
    return VolumeFlag(type=kind, source=source, target=target, read_only=read_only, copy=copy)


def _is_modes(text: str) -> bool:
    return all(mode in FLAG_MODES or mode in PROPAGATION_MODES for mode in text.split(","))


def _flag_source(text: str, source: str, cwd: str | None) -> tuple[Literal["volume", "bind"], str]:
    if not source:
        return "volume", ""
    if source.startswith("/"):
        return "bind", os.path.normpath(source)
    if source in (".", "..") or source.startswith(("./", "../")):
        return "bind", os.path.normpath(os.path.join(cwd if cwd is not None else os.getcwd(), source))
    if source.startswith("~"):
        expanded = os.path.expanduser(source)
        if expanded.startswith("~"):
            raise VolumeSpecError(f"invalid volume {text!r}: cannot expand {source.partition('/')[0]!r}")
        return "bind", os.path.normpath(expanded)
    try:
        return "volume", check_name(source)
    except VolumeSpecError as exc:
        raise VolumeSpecError(f"invalid volume {text!r}: {exc}") from None


def _flag_modes(text: str, modes: str, kind: str) -> tuple[bool, bool]:
    """(read_only, copy) from ``ro,nocopy`` and the like."""
    seen: set[str] = set()
    for mode in filter(None, modes.split(",")):
        if mode in PROPAGATION_MODES:
            raise VolumeSpecError(f"invalid volume {text!r}: propagation mode {mode!r} is not supported")
        if mode not in FLAG_MODES:
            raise VolumeSpecError(f"invalid volume {text!r}: unknown mode {mode!r} (use ro, rw or nocopy)")
        if mode in seen:
            raise VolumeSpecError(f"invalid volume {text!r}: mode {mode!r} given twice")
        seen.add(mode)
    if {"ro", "rw"} <= seen:
        raise VolumeSpecError(f"invalid volume {text!r}: ro and rw contradict each other")
    if "nocopy" in seen and kind != "volume":
        raise VolumeSpecError(f"invalid volume {text!r}: nocopy applies to volumes, not to bind mounts")
    return "ro" in seen, "nocopy" not in seen
