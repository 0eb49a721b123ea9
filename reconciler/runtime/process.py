"""What a container runs, decided the way Docker decides it: the argv from the
image's ENTRYPOINT/CMD and the spec, the environment, the user and groups from the
image's own ``/etc/passwd`` and ``/etc/group``, and the capability set.

Pure except for reading those two files (through ``rootfs_path.resolve``, so an
image cannot point them outside its root). Called on every container start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from reconciler.runtime import rootfs_path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Docker's default capability set (moby's ``oci/caps/defaults.go``).
DEFAULT_CAPABILITIES = frozenset(
    (
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    )
)


class ProcessError(Exception):
    """The container cannot start as specified; the message says why."""


def argv(
    *,
    image_entrypoint: list[str] | None,
    image_cmd: list[str] | None,
    entrypoint: list[str] | None,
    command: list[str] | None,
) -> list[str]:
    """ENTRYPOINT + CMD as Docker merges them.

    Setting the entrypoint in the spec also drops the image's CMD (a CMD written
    for another entrypoint makes no sense after it); setting only the command keeps
    the image's ENTRYPOINT.
    """
    if entrypoint is not None:
        result = [*entrypoint, *(command or [])]
    else:
        result = [*(image_entrypoint or []), *(command if command is not None else image_cmd or [])]
    if not result:
        raise ProcessError("no command: the image has no ENTRYPOINT or CMD and the spec sets neither")
    return result


def environment(*, image_env: list[str], env: dict[str, str], hostname: str, home: str) -> list[str]:
    """The image's environment, overridden by the spec's; PATH, HOSTNAME and HOME
    filled in when neither sets them (as Docker and runc do)."""
    merged: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        merged[key] = value
    merged.update(env)
    merged.setdefault("PATH", DEFAULT_PATH)
    merged.setdefault("HOSTNAME", hostname)
    merged.setdefault("HOME", home)
    return [f"{key}={value}" for key, value in merged.items()]


class User(NamedTuple):
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


class _Entry(NamedTuple):
    name: str
    id: int
    gid: int
    home: str
    members: tuple[str, ...]


def _read_table(rootfs: str, path: str, *, passwd: bool) -> list[_Entry]:
    """``/etc/passwd`` or ``/etc/group`` of the image; an image without one has no names."""
    try:
        with open(rootfs_path.resolve(rootfs, path), encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    except rootfs_path.EscapeError as exc:
        raise ProcessError(str(exc)) from None
    entries = []
    for line in lines:
        fields = line.split(":")
        if line.startswith("#") or len(fields) < (7 if passwd else 4) or not fields[2].isdigit():
            continue
        if passwd:
            gid = int(fields[3]) if fields[3].isdigit() else 0
            entries.append(_Entry(fields[0], int(fields[2]), gid, fields[5] or "/", ()))
        else:
            members = tuple(m for m in fields[3].split(",") if m)
            entries.append(_Entry(fields[0], int(fields[2]), int(fields[2]), "", members))
    return entries


def resolve_user(rootfs: str, user: str | None, *, group_add: Sequence[str] = ()) -> User:
    """``name[:group]`` or ``uid[:gid]`` in the image's own files, as Docker does.

    A numeric uid need not exist in ``/etc/passwd`` (its gid is then 0 and its home
    ``/``); a name must. Supplementary groups are those listing the user as a member,
    plus ``group_add`` (names or numbers).
    """
    passwd = _read_table(rootfs, "/etc/passwd", passwd=True)
    groups = _read_table(rootfs, "/etc/group", passwd=False)
    user_part, _, group_part = (user or "0").partition(":")
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((e for e in passwd if e.id == uid), None)
    else:
        entry = next((e for e in passwd if e.name == user_part), None)
        if entry is None:
            raise ProcessError(f"unable to find user {user_part}: no matching entries in passwd file")
        uid = entry.id
    gid = entry.gid if entry else 0
    if group_part:
        gid = _group_id(groups, group_part)
    name = entry.name if entry else None
    extra = [g.id for g in groups if name is not None and name in g.members]
    extra += [_group_id(groups, g) for g in group_add]
    supplementary = tuple(dict.fromkeys(g for g in extra if g != gid))
    return User(uid=uid, gid=gid, groups=supplementary, home=entry.home if entry else "/")


def _group_id(groups: list[_Entry], group: str) -> int:
    if group.isdigit():
        return int(group)
    for entry in groups:
        if entry.name == group:
            return entry.id
    raise ProcessError(f"unable to find group {group}: no matching entries in group file")


def capabilities(*, add: list[str], drop: list[str], all_caps: frozenset[str]) -> list[str]:
    """Docker's default set, then ``drop`` and ``add`` (``ALL`` on either side
    as Docker reads it: drop ALL starts from nothing, add ALL from everything)."""
    if "ALL" in add:
        caps = set(all_caps)
    elif "ALL" in drop:
        caps = set()
    else:
        caps = set(DEFAULT_CAPABILITIES)
    caps -= {c for c in drop if c != "ALL"}
    caps |= {c for c in add if c != "ALL"}
    return sorted(caps)
