"""The local volume driver: layout, idempotent create, in-use detection from container
state files, remove and prune rules, copy-up, bind sources and the ``-v`` parser.

Everything runs against a temporary root; tests that chown, mknod or mount are
marked ``requires_root``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from reconciler.model import ownership
from reconciler.volumes import local
from reconciler.volumes.local import LocalVolumes, VolumeFlag


@pytest.fixture
def volumes(tmp_path: Path) -> LocalVolumes:
    return LocalVolumes(str(tmp_path))


def write_state(root: Path, name: str, mounts: list[dict[str, object]], *, status: str = "exited") -> None:
    """A container state file as runtime.state.StateStore writes it."""
    directory = root / "containers" / name
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "name": name,
        "status": status,
        "pid": 0,
        "exit_code": 0,
        "spec": {"config": {"argv": ["/bin/true"], "mounts": mounts}},
    }
    (directory / "state.json").write_text(json.dumps(state))


def bind(source: str, target: str = "/data") -> dict[str, object]:
    return {"target": target, "type": "bind", "source": source, "read_only": False, "options": ""}


def dead_pid() -> int:
    """The pid of a child that has exited and been reaped."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


# -- create, get, list ------------------------------------------------------------


def test_create_lays_out_docker_directories_and_metadata(volumes: LocalVolumes, tmp_path: Path) -> None:
    volume = volumes.create("data", labels={local.STACK_LABEL: "shop", "tier": "db"}, retain="retain")
    directory = tmp_path / "volumes" / "data"
    assert volume.mountpoint == str(directory / "_data") == volumes.path("data")
    assert stat.S_IMODE(os.stat(volume.mountpoint).st_mode) == 0o755
    assert os.listdir(volume.mountpoint) == []
    metadata = json.loads((directory / "volume.json").read_text())
    assert metadata["name"] == "data"
    assert metadata["driver"] == "local"
    assert metadata["labels"] == {"reconcile.stack": "shop", "tier": "db"}
    assert metadata["retain"] == "retain"
    assert metadata["options"] == {}
    assert metadata["copied_up"] is False
    assert isinstance(metadata["created_at"], float)
    assert volumes.get("data") == volume
    assert not volume.anonymous
    assert sorted(os.listdir(tmp_path / "volumes")) == ["data"]  # no staging directory left


def test_stack_label_is_the_ownership_label() -> None:
    assert local.STACK_LABEL == ownership.STACK


def test_create_is_idempotent_when_labels_match(volumes: LocalVolumes) -> None:
    first = volumes.create("data", labels={"a": "1"}, retain="delete", options={"type": "tmpfs"})
    Path(first.mountpoint, "keep").write_text("x")
    again = volumes.create("data", labels={"a": "1"}, retain="delete", options={"type": "tmpfs"})
    assert again == first
    assert Path(first.mountpoint, "keep").read_text() == "x"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"labels": {"a": "2"}}, "labels"),
        ({"labels": {}}, "labels"),
        ({"labels": {"a": "1"}, "retain": "delete"}, "retain"),
        ({"labels": {"a": "1"}, "options": {"o": "size=1m"}}, "options"),
    ],
)
def test_create_conflicting_with_an_existing_volume_names_it(
    volumes: LocalVolumes, kwargs: dict[str, object], field: str
) -> None:
    volumes.create("data", labels={"a": "1"})
    with pytest.raises(local.VolumeError, match=rf"volume 'data' already exists with {field}"):
        volumes.create("data", **kwargs)  # type: ignore[arg-type]
    assert volumes.get("data").labels == {"a": "1"}


@pytest.mark.parametrize("name", ["", "a", "-ab", ".ab", "_ab", "a/b", "a b", "a:b", "ä1", "..", "x" * 256, "a\0b"])
def test_invalid_names_are_refused(volumes: LocalVolumes, name: str) -> None:
    with pytest.raises(local.VolumeSpecError, match="invalid characters for a local volume name"):
        volumes.create(name)
    with pytest.raises(local.VolumeSpecError):
        volumes.get(name)
    with pytest.raises(local.VolumeSpecError):
        volumes.path(name)


@pytest.mark.parametrize("name", ["ab", "0a", "a.b_c-D", "x" * 255])
def test_valid_names(volumes: LocalVolumes, name: str) -> None:
    assert volumes.create(name).name == name
    assert [v.name for v in volumes.list()] == [name]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"labels": {"": "x"}},
        {"labels": {"a": 1}},
        {"retain": "forever"},
        {"options": {"size": "1m"}},
        {"options": {"o": 5}},
    ],
)
def test_invalid_labels_retain_and_options_are_refused(volumes: LocalVolumes, kwargs: dict[str, object]) -> None:
    with pytest.raises(local.VolumeSpecError, match="volume 'data'"):
        volumes.create("data", **kwargs)  # type: ignore[arg-type]
    assert volumes.list() == []


def test_get_missing_and_broken_volumes(volumes: LocalVolumes, tmp_path: Path) -> None:
    with pytest.raises(local.VolumeNotFoundError, match="no such volume: nope"):
        volumes.get("nope")
    (tmp_path / "volumes" / "bare" / "_data").mkdir(parents=True)
    with pytest.raises(local.VolumeError, match=r"is not a volume: it has no volume\.json"):
        volumes.get("bare")
    volumes.create("broken")
    (tmp_path / "volumes" / "broken" / "volume.json").write_text("{not json")
    with pytest.raises(local.VolumeError, match="volume 'broken': cannot read"):
        volumes.get("broken")
    volumes.create("other")
    (tmp_path / "volumes" / "other" / "volume.json").write_text(json.dumps({"name": "else", "driver": "local"}))
    with pytest.raises(local.VolumeError, match=r"malformed volume\.json"):
        volumes.get("other")
    volumes.create("good")
    assert [v.name for v in volumes.list()] == ["good"]  # the broken ones are left out, not fatal
    with pytest.raises(local.VolumeError):
        volumes.create("bare")  # never built over a directory that is not a volume


def test_list_filters_by_labels(volumes: LocalVolumes, tmp_path: Path) -> None:
    volumes.create("b-shop", labels={local.STACK_LABEL: "shop", "tier": "db"})
    volumes.create("a-shop", labels={local.STACK_LABEL: "shop"})
    volumes.create("blog", labels={local.STACK_LABEL: "blog"})
    volumes.create("hand")
    (tmp_path / "volumes" / ".new-1-abc").mkdir()  # a staging directory is not a volume
    assert [v.name for v in volumes.list()] == ["a-shop", "b-shop", "blog", "hand"]
    assert [v.name for v in volumes.list(labels={local.STACK_LABEL: "shop"})] == ["a-shop", "b-shop"]
    assert [v.name for v in volumes.list(labels={local.STACK_LABEL: None})] == ["a-shop", "b-shop", "blog"]
    assert [v.name for v in volumes.list(labels={local.STACK_LABEL: "shop", "tier": "db"})] == ["b-shop"]
    assert volumes.list(labels={"tier": "web"}) == []


def test_list_of_an_empty_root(volumes: LocalVolumes) -> None:
    assert volumes.list() == []
    assert volumes.prune(all=True, include_retained=True) == []


def test_ensure_creates_on_first_use_and_accepts_any_existing(volumes: LocalVolumes) -> None:
    made = volumes.ensure("cache")
    assert made.labels == {} and made.retain is None
    assert volumes.ensure("cache") == made
    labelled = volumes.create("owned", labels={local.STACK_LABEL: "shop"}, retain="retain")
    assert volumes.ensure("owned") == labelled  # docker run -v owned:/p uses it as it is
    with pytest.raises(local.VolumeSpecError):
        volumes.ensure("/abs")


def test_create_anonymous(volumes: LocalVolumes) -> None:
    volume = volumes.create_anonymous(labels={"x": "y"})
    assert len(volume.name) == 64 and int(volume.name, 16) >= 0
    assert volume.anonymous
    assert volume.labels == {"x": "y", local.ANONYMOUS_LABEL: ""}
    assert volumes.get(volume.name) == volume
    assert volumes.create_anonymous().name != volume.name


def test_concurrent_creates_of_one_name_give_one_volume(volumes: LocalVolumes, tmp_path: Path) -> None:
    results: list[local.Volume] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(volumes.create("shared", labels={"k": "v"}))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({v.created_at for v in results}) == 1  # all got the winner's volume
    assert os.listdir(tmp_path / "volumes") == ["shared"]


def _ensure_in_child(root: str) -> str:
    return LocalVolumes(root).ensure("proc-shared").mountpoint


def test_concurrent_ensures_from_processes(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(8) as pool:
        mountpoints = pool.map(_ensure_in_child, [str(tmp_path)] * 16)
    assert set(mountpoints) == {str(tmp_path / "volumes" / "proc-shared" / "_data")}
    assert os.listdir(tmp_path / "volumes") == ["proc-shared"]


# -- in use, remove ----------------------------------------------------------------


def test_in_use_reads_container_state_files(volumes: LocalVolumes, tmp_path: Path) -> None:
    data = volumes.create("data").mountpoint
    other = volumes.create("other").mountpoint
    write_state(tmp_path, "web", [bind(data)], status="running")
    write_state(tmp_path, "job", [bind(os.path.join(data, "sub"), "/sub")], status="exited")  # a subpath mount
    write_state(tmp_path, "api", [bind(other)])
    write_state(tmp_path, "tmp", [{"target": "/data", "type": "tmpfs", "source": data, "options": ""}])
    write_state(tmp_path, "host", [bind("/srv")])
    write_state(tmp_path, "dotted", [bind(data + "/./")])
    (tmp_path / "containers" / "reserved").mkdir()  # a name reserved, no state file yet
    (tmp_path / "containers" / "garbled").mkdir()
    (tmp_path / "containers" / "garbled" / "state.json").write_text("{")
    (tmp_path / "containers" / "nospec").mkdir()
    (tmp_path / "containers" / "nospec" / "state.json").write_text(json.dumps({"name": "nospec", "spec": {}}))
    assert volumes.in_use("data") == ["dotted", "job", "web"]
    assert volumes.in_use("other") == ["api"]
    assert volumes.in_use("free") == []


def test_in_use_without_any_containers(volumes: LocalVolumes) -> None:
    volumes.create("data")
    assert volumes.in_use("data") == []


def test_remove_refuses_while_in_use_and_names_the_container(volumes: LocalVolumes, tmp_path: Path) -> None:
    volume = volumes.create("data")
    Path(volume.mountpoint, "file").write_text("precious")
    write_state(tmp_path, "db", [bind(volume.mountpoint)], status="exited")
    for force in (False, True):
        with pytest.raises(local.VolumeInUseError, match="in use by container\\(s\\) db") as caught:
            volumes.remove("data", force=force)
        assert caught.value.containers == ["db"]
    assert Path(volume.mountpoint, "file").read_text() == "precious"
    (tmp_path / "containers" / "db" / "state.json").unlink()
    volumes.remove("data")
    assert not (tmp_path / "volumes" / "data").exists()
    assert os.listdir(tmp_path / "volumes") == []  # no grave left
    with pytest.raises(local.VolumeNotFoundError):
        volumes.remove("data")
    volumes.remove("data", force=True)  # -f: a missing volume is no error


def test_remove_deletes_data_without_following_symlinks(volumes: LocalVolumes, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    volume = volumes.create("data")
    os.symlink(outside, os.path.join(volume.mountpoint, "link"))
    Path(volume.mountpoint, "dir", "deep").mkdir(parents=True)
    volumes.remove("data")
    assert (outside / "keep").read_text() == "x"


@pytest.fixture
def tmpfs_inside(tmp_path: Path) -> Iterator[list[str]]:
    """Mount points made by the test, unmounted even on failure."""
    mounted: list[str] = []
    yield mounted
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", point], check=False)


@pytest.mark.requires_root
def test_something_mounted_inside_a_volume_keeps_it(
    volumes: LocalVolumes, tmp_path: Path, tmpfs_inside: list[str]
) -> None:
    volume = volumes.create_anonymous()
    point = os.path.join(volume.mountpoint, "mount point")  # mountinfo escapes the space
    os.mkdir(point)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", point], check=True)
    tmpfs_inside.append(point)
    Path(point, "x").write_text("on the mount")
    with pytest.raises(local.VolumeError, match="has mounts inside it on the host"):
        volumes.remove(volume.name)
    assert volumes.prune() == []
    assert Path(point, "x").read_text() == "on the mount"
    subprocess.run(["umount", point], check=True)
    tmpfs_inside.remove(point)
    assert volumes.prune() == [volume.name]


# -- prune -------------------------------------------------------------------------


@pytest.fixture
def zoo(volumes: LocalVolumes, tmp_path: Path) -> dict[str, str]:
    """One volume of each kind; the in-use ones are mounted by a stopped container."""
    names = {
        "anon": volumes.create_anonymous().name,
        "anon_used": volumes.create_anonymous().name,
        "plain": volumes.create("plain").name,
        "kept": volumes.create("kept", labels={local.STACK_LABEL: "shop"}, retain="retain").name,
        "disposable": volumes.create("disposable", labels={local.STACK_LABEL: "shop"}, retain="delete").name,
        "used": volumes.create("used", retain="delete").name,
        "kept_used": volumes.create("kept-used", retain="retain").name,
    }
    mounts = [bind(volumes.path(names[k]), f"/{k}") for k in ("anon_used", "used", "kept_used")]
    write_state(tmp_path, "stopped", mounts, status="exited")
    return names


def _remaining(volumes: LocalVolumes) -> set[str]:
    return {v.name for v in volumes.list()}


def test_prune_by_default_removes_unused_anonymous_volumes_only(volumes: LocalVolumes, zoo: dict[str, str]) -> None:
    assert volumes.prune() == [zoo["anon"]]
    assert _remaining(volumes) == set(zoo.values()) - {zoo["anon"]}


def test_prune_all_adds_unused_named_volumes_but_keeps_retained(volumes: LocalVolumes, zoo: dict[str, str]) -> None:
    assert sorted(volumes.prune(all=True)) == sorted([zoo["anon"], "plain", "disposable"])
    assert _remaining(volumes) == {zoo["anon_used"], "kept", "used", "kept-used"}


def test_prune_all_with_retained_still_never_removes_volumes_in_use(volumes: LocalVolumes, zoo: dict[str, str]) -> None:
    assert sorted(volumes.prune(all=True, include_retained=True)) == sorted(
        [zoo["anon"], "plain", "disposable", "kept"]
    )
    assert _remaining(volumes) == {zoo["anon_used"], "used", "kept-used"}


def test_prune_only_touches_volumes_matching_labels(volumes: LocalVolumes, zoo: dict[str, str]) -> None:
    assert volumes.prune(all=True, labels={local.STACK_LABEL: "shop"}) == ["disposable"]
    assert volumes.prune(all=True, include_retained=True, labels={local.STACK_LABEL: "shop"}) == ["kept"]
    assert "plain" in _remaining(volumes)


def test_include_retained_without_all_keeps_named_volumes(volumes: LocalVolumes, zoo: dict[str, str]) -> None:
    assert volumes.prune(include_retained=True) == [zoo["anon"]]


def test_prune_sweeps_what_dead_processes_left_behind(volumes: LocalVolumes, tmp_path: Path) -> None:
    volumes.create("data")
    base = tmp_path / "volumes"
    dead = dead_pid()
    stale = [base / f".new-{dead}-aa", base / f".removing-{dead}-bb"]
    live = [base / f".new-{os.getpid()}-cc", base / f".removing-{os.getpid()}-dd"]
    for directory in [*stale, *live]:
        (directory / "_data").mkdir(parents=True)
    assert volumes.prune() == []
    assert not any(d.exists() for d in stale)
    assert all(d.exists() for d in live)  # their process may still be working on them
    assert _remaining(volumes) == {"data"}


# -- copy-up -----------------------------------------------------------------------


def test_copy_up_needed_only_for_a_new_empty_volume(volumes: LocalVolumes) -> None:
    volume = volumes.create("data")
    assert volumes.copy_up_needed("data")
    Path(volume.mountpoint, "seeded").write_text("by hand")
    assert not volumes.copy_up_needed("data")  # not empty: Docker would not copy either
    os.unlink(os.path.join(volume.mountpoint, "seeded"))
    assert volumes.copy_up_needed("data")
    volumes.mark_copied_up("data")
    assert volumes.get("data").copied_up
    assert not volumes.copy_up_needed("data")  # emptied after its first mount: stays empty
    volumes.mark_copied_up("data")  # idempotent
    assert volumes.create("data") == volumes.get("data")  # the mark is no conflict
    with pytest.raises(local.VolumeNotFoundError):
        volumes.copy_up_needed("nope")
    with pytest.raises(local.VolumeNotFoundError):
        volumes.mark_copied_up("nope")


def _build_tree(root: Path, outside: Path) -> None:
    (root / "etc" / "conf.d").mkdir(parents=True)
    (root / "etc" / "conf.d" / "a.conf").write_text("a=1\n")
    (root / "etc" / "secret").write_text("s")
    os.chmod(root / "etc" / "secret", 0o600)
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 4096)
    os.chmod(root / "bin" / "tool", 0o4755)
    os.link(root / "bin" / "tool", root / "bin" / "tool-link")
    os.symlink("conf.d/a.conf", root / "etc" / "relative")
    os.symlink(str(outside), root / "escape")  # a symlink out of the tree: copied, never followed
    os.symlink("missing", root / "dangling")
    os.mkfifo(root / "fifo", 0o640)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    (root / "locked").mkdir()
    (root / "locked" / "inner").write_text("i")
    os.chmod(root / "locked", 0o500)  # read-only directory: filled before its mode is set
    os.setxattr(root / "etc" / "secret", "user.origin", b"image")
    os.setxattr(root / "etc", "user.dir", b"yes")
    for path in [root / "etc" / "secret", root / "etc", root / "fifo"]:
        os.utime(path, ns=(1_000_000_000, 1_500_000_000), follow_symlinks=False)
    os.utime(root / "escape", ns=(2_000_000_000, 2_500_000_000), follow_symlinks=False)
    os.chmod(root, 0o750)


def _walk(root: Path) -> dict[str, tuple[object, ...]]:
    """Relative path -> what copy_tree preserves."""
    out: dict[str, tuple[object, ...]] = {}
    for directory, dirs, files in os.walk(root):
        for name in ["", *dirs, *files]:
            path = os.path.join(directory, name) if name else directory
            info = os.lstat(path)
            content: object = None
            if stat.S_ISREG(info.st_mode):
                content = Path(path).read_bytes()
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            mtime = None if stat.S_ISDIR(info.st_mode) and name == "" else info.st_mtime_ns
            xattrs = {} if stat.S_ISLNK(info.st_mode) else {k: os.getxattr(path, k) for k in os.listxattr(path)}
            key = os.path.relpath(path, root)
            out[key] = (info.st_mode, info.st_uid, info.st_gid, info.st_rdev, content, xattrs, mtime)
    return out


@pytest.fixture
def trees(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    source, target, outside = tmp_path / "image", tmp_path / "volume", tmp_path / "outside"
    source.mkdir()
    outside.mkdir()
    (outside / "host-file").write_text("host")
    yield source, target, outside
    for directory in (source, target):  # let tmp_path's cleanup into read-only directories
        for path in [directory, *directory.rglob("*")] if directory.exists() else []:
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o755)


def test_copy_tree_preserves_modes_links_special_files_xattrs_and_times(trees: tuple[Path, Path, Path]) -> None:
    source, target, outside = trees
    _build_tree(source, outside)
    target.mkdir()
    local.copy_tree(str(source), str(target))
    assert _walk(target) == _walk(source)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o750  # the top takes the source's mode
    assert os.readlink(target / "escape") == str(outside)
    assert os.listdir(outside) == ["host-file"]  # nothing written through the link
    assert stat.S_ISFIFO(os.lstat(target / "fifo").st_mode)
    assert stat.S_ISSOCK(os.lstat(target / "sock").st_mode)
    tool, link = os.stat(target / "bin" / "tool"), os.stat(target / "bin" / "tool-link")
    assert tool.st_ino != link.st_ino and tool.st_nlink == link.st_nlink == 1  # hard links become copies
    assert os.lstat(target / "escape").st_mtime_ns == 2_500_000_000  # a symlink's own time


def test_copy_tree_creates_a_missing_target(trees: tuple[Path, Path, Path]) -> None:
    source, target, _ = trees
    (source / "f").write_text("x")
    local.copy_tree(str(source), str(target / "deep"))
    assert (target / "deep" / "f").read_text() == "x"


def test_copy_tree_of_a_missing_source_copies_nothing(trees: tuple[Path, Path, Path]) -> None:
    source, target, _ = trees
    target.mkdir()
    local.copy_tree(str(source / "absent"), str(target))
    assert os.listdir(target) == []


def test_copy_tree_refuses_a_source_that_is_not_a_directory(trees: tuple[Path, Path, Path]) -> None:
    source, target, outside = trees
    (source / "file").write_text("x")
    os.symlink(outside, source / "link")
    for bad in ("file", "link"):
        with pytest.raises(NotADirectoryError):
            local.copy_tree(str(source / bad), str(target))


def test_copy_tree_never_writes_through_an_entry_already_in_the_target(trees: tuple[Path, Path, Path]) -> None:
    source, target, outside = trees
    (source / "host-file").write_text("from the image")
    target.mkdir()
    os.symlink(outside / "host-file", target / "host-file")
    with pytest.raises(FileExistsError):
        local.copy_tree(str(source), str(target))
    assert (outside / "host-file").read_text() == "host"


@pytest.mark.requires_root
def test_copy_tree_preserves_owners_devices_and_trusted_xattrs(trees: tuple[Path, Path, Path]) -> None:
    source, target, _ = trees
    (source / "home").mkdir()
    (source / "home" / "user").write_text("u")
    os.chown(source / "home" / "user", 1234, 5678)
    os.chmod(source / "home" / "user", 0o2755)  # setgid survives the chown that clears it
    os.chown(source / "home", 1234, 1234)
    os.symlink("user", source / "home" / "link")
    os.chown(source / "home" / "link", 4321, 8765, follow_symlinks=False)
    os.mknod(source / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(source / "loop", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.setxattr(source / "home" / "user", "trusted.note", b"t")
    os.chown(source, 1000, 1000)
    target.mkdir()
    local.copy_tree(str(source), str(target))
    assert _walk(target) == _walk(source)
    assert (os.stat(target).st_uid, os.stat(target).st_gid) == (1000, 1000)
    link = os.lstat(target / "home" / "link")
    assert (link.st_uid, link.st_gid) == (4321, 8765)
    assert os.stat(target / "null").st_rdev == os.makedev(1, 3)
    with open(target / "null", "wb") as handle:  # a working device node, not a file
        handle.write(b"discarded")
    assert os.stat(target / "null").st_size == 0


# -- bind sources ------------------------------------------------------------------


def test_bind_source_requires_an_absolute_existing_path(tmp_path: Path) -> None:
    for relative in ("data", "./data", "", "~/x"):
        with pytest.raises(local.VolumeSpecError, match="must be an absolute path"):
            local.bind_source(relative, create=True)
    missing = tmp_path / "missing" / "deeper"
    with pytest.raises(local.VolumeSpecError, match=f"bind source path does not exist: {missing}"):
        local.bind_source(str(missing), create=False)
    assert not missing.exists()
    with pytest.raises(local.VolumeSpecError, match="NUL"):
        local.bind_source("/a\0b", create=True)


def test_bind_source_normalises_and_creates(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert local.bind_source(f"{tmp_path}//file", create=False) == str(tmp_path / "file")
    made = local.bind_source(f"{tmp_path}/a/../b/c/", create=True)
    assert made == str(tmp_path / "b" / "c") and os.path.isdir(made)
    assert local.bind_source(made, create=True) == made


def test_bind_source_refuses_to_create_through_a_dangling_symlink(tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere", tmp_path / "link")
    with pytest.raises(local.VolumeSpecError, match="symlink to a missing path"):
        local.bind_source(str(tmp_path / "link"), create=True)
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(local.VolumeSpecError, match="cannot create bind source path"):
        local.bind_source(str(tmp_path / "file" / "sub"), create=True)


# -- the -v flag -------------------------------------------------------------------

V: Final = "volume"
B: Final = "bind"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data:/var/lib/db", VolumeFlag(V, "data", "/var/lib/db")),
        ("data:/var/lib/db:ro", VolumeFlag(V, "data", "/var/lib/db", read_only=True)),
        ("data:/var/lib/db:rw", VolumeFlag(V, "data", "/var/lib/db")),
        ("data:/db:nocopy", VolumeFlag(V, "data", "/db", copy=False)),
        ("data:/db:ro,nocopy", VolumeFlag(V, "data", "/db", read_only=True, copy=False)),
        ("data:/db:z", VolumeFlag(V, "data", "/db")),
        ("Data.1_x-y:/db/", VolumeFlag(V, "Data.1_x-y", "/db")),
        ("ro:/x", VolumeFlag(V, "ro", "/x")),  # a volume named like a mode
        ("/srv/www:/usr/share/nginx/html", VolumeFlag(B, "/srv/www", "/usr/share/nginx/html")),
        ("/srv/www/:/www:ro", VolumeFlag(B, "/srv/www", "/www", read_only=True)),
        ("/srv//a/../b:/b:Z", VolumeFlag(B, "/srv/b", "/b")),
        ("/:/host:ro", VolumeFlag(B, "/", "/host", read_only=True)),
        ("/data", VolumeFlag(V, "", "/data")),
        ("/data:ro", VolumeFlag(V, "", "/data", read_only=True)),
        ("/data:nocopy", VolumeFlag(V, "", "/data", copy=False)),
        ("/a/./b/", VolumeFlag(V, "", "/a/b")),
        (".:/src", VolumeFlag(B, "/home/me/project", "/src")),
        ("./conf:/etc/app:ro", VolumeFlag(B, "/home/me/project/conf", "/etc/app", read_only=True)),
        ("../shared:/shared", VolumeFlag(B, "/home/me/shared", "/shared")),
        ("..:/up", VolumeFlag(B, "/home/me", "/up")),
    ],
)
def test_parse_volume_flag(text: str, expected: VolumeFlag) -> None:
    assert local.parse_volume_flag(text, cwd="/home/me/project") == expected


def test_parse_volume_flag_anonymous_and_home() -> None:
    assert local.parse_volume_flag("/data").anonymous
    assert not local.parse_volume_flag("x1:/data").anonymous
    assert not local.parse_volume_flag("/x:/data").anonymous
    home = os.path.expanduser("~")
    assert local.parse_volume_flag("~/conf:/conf") == VolumeFlag(B, os.path.join(home, "conf"), "/conf")
    relative = local.parse_volume_flag("./x:/x")
    assert relative.source == os.path.join(os.getcwd(), "x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "use NAME:/path"),
        ("data", "container path 'data' must be absolute"),
        ("data:ro", "container path 'data' must be absolute"),
        ("data:db", "container path 'db' must be absolute"),
        ("data:/db:xx", "unknown mode 'xx'"),
        ("data:/db:ro,rw", "ro and rw contradict"),
        ("data:/db:ro,ro", "given twice"),
        ("/host:/db:nocopy", "nocopy applies to volumes"),
        ("/host:/db:rshared", "propagation mode 'rshared' is not supported"),
        ("/data:shared", "propagation mode 'shared'"),
        ("a:/b:ro:extra", "use SOURCE:TARGET"),
        (":/db", "use SOURCE:TARGET"),
        ("data:", "use SOURCE:TARGET"),
        ("data:/db:", "use SOURCE:TARGET"),
        ("d:/db", "invalid characters for a local volume name"),
        ("my data:/db", "invalid characters for a local volume name"),
        ("sub/dir:/db", "If you intended to pass a host directory, use an absolute path"),
        ("data:/", "cannot be '/'"),
        ("data:/a/..", "cannot be '/'"),
        ("/x:/\0", "use NAME:/path"),
        ("~nosuchuser12345/x:/x", "cannot expand '~nosuchuser12345'"),
    ],
)
def test_parse_volume_flag_errors(text: str, message: str) -> None:
    with pytest.raises(local.VolumeSpecError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        local.parse_volume_flag(text, cwd="/w")
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError report it


def test_errors_are_volume_errors() -> None:
    assert issubclass(local.VolumeNotFoundError, local.VolumeError)
    assert issubclass(local.VolumeInUseError, local.VolumeError)
