"""What a container runs: argv, environment, user and groups, capabilities."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.model.container import CAPABILITIES
from reconciler.runtime import process, rootfs_path
from reconciler.runtime.process import ProcessError

ALL = frozenset("CAP_" + c for c in CAPABILITIES)


@pytest.mark.parametrize(
    ("image_ep", "image_cmd", "ep", "cmd", "expected"),
    [
        (None, ["sh"], None, None, ["sh"]),
        (["/init"], ["serve"], None, None, ["/init", "serve"]),
        (["/init"], ["serve"], None, ["debug"], ["/init", "debug"]),  # the command replaces CMD only
        (["/init"], ["serve"], ["/bin/sh", "-c"], None, ["/bin/sh", "-c"]),  # a new entrypoint drops CMD
        (["/init"], ["serve"], ["/bin/sh", "-c"], ["echo hi"], ["/bin/sh", "-c", "echo hi"]),
        (["/init"], ["serve"], [], ["true"], ["true"]),  # an empty entrypoint clears the image's
        (None, ["sh"], None, [], None),  # an explicitly empty command clears CMD: nothing to run
    ],
)
def test_argv_merges_like_docker(image_ep, image_cmd, ep, cmd, expected) -> None:
    if expected is None:
        with pytest.raises(ProcessError, match="no command"):
            process.argv(image_entrypoint=image_ep, image_cmd=image_cmd, entrypoint=ep, command=cmd)
        return
    assert process.argv(image_entrypoint=image_ep, image_cmd=image_cmd, entrypoint=ep, command=cmd) == expected


def test_environment_spec_wins_and_defaults_fill_in() -> None:
    env = process.environment(
        image_env=["A=image", "B=image"], env={"B": "spec", "C": ""}, hostname="web", home="/root"
    )
    assert env == ["A=image", "B=spec", "C=", f"PATH={process.DEFAULT_PATH}", "HOSTNAME=web", "HOME=/root"]
    env = process.environment(image_env=["PATH=/opt/bin"], env={"HOME": "/srv"}, hostname="h", home="/root")
    assert "PATH=/opt/bin" in env and "HOME=/srv" in env


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "# a comment\n"
        "www:x:33:33:www:/var/www:/bin/false\n"
        "app:x:1000:1000::/home/app:/bin/sh\n"
        "broken line\n"
    )
    (etc / "group").write_text("root:x:0:\nwww:x:33:\naudio:x:29:app,www\nstaff:x:50:app\napp:x:1000:\n")
    return tmp_path


@pytest.mark.parametrize(
    ("user", "group_add", "expected"),
    [
        (None, [], process.User(0, 0, (), "/root")),
        ("app", [], process.User(1000, 1000, (29, 50), "/home/app")),
        ("www", [], process.User(33, 33, (29,), "/var/www")),
        ("app:www", [], process.User(1000, 33, (29, 50), "/home/app")),
        ("1000", [], process.User(1000, 1000, (29, 50), "/home/app")),
        ("4242", [], process.User(4242, 0, (), "/")),  # a uid need not exist, as in Docker
        ("4242:4243", [], process.User(4242, 4243, (), "/")),
        ("www", ["staff", "7"], process.User(33, 33, (29, 50, 7), "/var/www")),
    ],
)
def test_users_and_groups_come_from_the_image(rootfs: Path, user, group_add, expected) -> None:
    assert process.resolve_user(str(rootfs), user, group_add=group_add) == expected


def test_unknown_user_or_group_is_a_clear_error(rootfs: Path) -> None:
    with pytest.raises(ProcessError, match="unable to find user nobody: no matching entries in passwd file"):
        process.resolve_user(str(rootfs), "nobody")
    with pytest.raises(ProcessError, match="unable to find group wheel"):
        process.resolve_user(str(rootfs), "app:wheel")


def test_an_image_without_passwd_still_runs_numeric_users(tmp_path: Path) -> None:
    assert process.resolve_user(str(tmp_path), "1:2") == process.User(1, 2, (), "/")
    with pytest.raises(ProcessError):
        process.resolve_user(str(tmp_path), "app")


def test_passwd_symlinked_out_of_the_image_stays_inside(tmp_path: Path) -> None:
    """An image whose /etc/passwd points at the host's must read its own tree only."""
    outside = tmp_path / "host-secret"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink(str(outside), root / "etc" / "passwd")  # absolute: resolved inside root → missing
    os.symlink("../../../host-secret", root / "etc" / "group")  # relative: clamped at root
    with pytest.raises(ProcessError, match="unable to find user evil"):
        process.resolve_user(str(root), "evil")
    assert rootfs_path.resolve(str(root), "/etc/group") == str(root / "host-secret")
    assert rootfs_path.resolve(str(root), "/etc/passwd") == str(root / outside.relative_to("/"))


def test_symlink_loops_are_refused(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(rootfs_path.EscapeError, match="too many symlinks"):
        rootfs_path.resolve(str(tmp_path), "/a")


def test_default_capabilities_then_drop_and_add() -> None:
    caps = process.capabilities(add=["CAP_NET_ADMIN"], drop=["CAP_MKNOD"], all_caps=ALL)
    assert "CAP_NET_ADMIN" in caps and "CAP_MKNOD" not in caps and "CAP_CHOWN" in caps
    assert "CAP_SYS_ADMIN" not in process.capabilities(add=[], drop=[], all_caps=ALL)
    assert len(process.capabilities(add=[], drop=[], all_caps=ALL)) == 14


def test_drop_all_keeps_only_what_is_added() -> None:
    assert process.capabilities(add=["CAP_NET_BIND_SERVICE"], drop=["ALL"], all_caps=ALL) == ["CAP_NET_BIND_SERVICE"]


def test_add_all_keeps_everything_but_what_is_dropped() -> None:
    caps = process.capabilities(add=["ALL"], drop=["CAP_SYS_ADMIN"], all_caps=ALL)
    assert set(caps) == ALL - {"CAP_SYS_ADMIN"}
