"""``reconcile build`` for real: Containerfiles built on a busybox image, RUN in our runtime.

The base image is Debian's busybox-static with its applets as symlinks, imported into a
store under tmp_path. Each test writes a context and a Containerfile, builds it, and
checks the result through the store: the config, files in the layer snapshots, and for
RUN effects the image run as a container with ``spawn.run``. Every test ends with no
mount, process, cgroup or scratch directory left (the ``leaks`` fixture checks).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zstandard

from reconciler.images import layerfs, oci
from reconciler.images.build import builder, cache
from reconciler.images.build.builder import BuildError
from reconciler.images.store import Image, ImageStore
from reconciler.runtime import cgroups, process, spawn

pytestmark = pytest.mark.requires_root

BUSYBOX = "/bin/busybox"  # Debian's busybox-static
BASE = "busybox:base"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n"


def _add(archive: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, **fields: Any) -> None:
    data = fields.pop("data", b"")
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = fields.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = 1_700_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    else:
        archive.addfile(info)


def busybox_rootfs(path: Path) -> Path:
    """A root filesystem tarball: busybox and every applet, passwd/group, the usual directories."""
    if not os.path.exists(BUSYBOX):
        pytest.fail(f"{BUSYBOX} is missing: install busybox-static (.ci/run does)")
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    with tarfile.open(path, "w") as archive:
        for directory in ("bin", "etc", "proc", "sys", "dev", "root", "home", "home/app"):
            _add(archive, directory, tarfile.DIRTYPE)
        _add(archive, "tmp", tarfile.DIRTYPE, mode=0o1777)
        archive.add(BUSYBOX, "bin/busybox")
        for applet in applets:
            if applet != "busybox":
                _add(archive, f"bin/{applet}", tarfile.SYMTYPE, linkname="busybox")
        _add(archive, "etc/passwd", data=PASSWD)
        _add(archive, "etc/group", data=GROUP)
        _add(archive, "etc/motd", data=b"welcome\n")
    return path


@dataclass
class Builder:
    """A store with the busybox base image, a context directory and a unique cgroup parent."""

    store: ImageStore
    context: Path
    cgroup_parent: str
    lines: list[str] = field(default_factory=list)

    def write(self, files: dict[str, str | bytes]) -> None:
        for name, content in files.items():
            path = self.context / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)

    def build(self, containerfile: str, *, tags: tuple[str, ...] = ("test:latest",), **options: Any) -> Image:
        (self.context / "Containerfile").write_text(containerfile)
        self.lines.clear()
        return builder.build(
            self.store,
            str(self.context),
            tags=list(tags),
            cgroup_parent=self.cgroup_parent,
            progress=self.lines.append,
            **options,
        )

    def fails(self, containerfile: str, **options: Any) -> BuildError:
        with pytest.raises(BuildError) as info:
            self.build(containerfile, **options)
        return info.value

    def file(self, reference: str, path: str) -> Path | None:
        """``path`` in the image as overlayfs shows it (no symlinks followed on the way);
        None when absent, whited out, or below an opaque directory."""
        parts = path.strip("/").split("/")
        for layer in self.store.layers(reference):
            found = Path(layer, *parts)
            if os.path.lexists(found):
                st = os.lstat(found)
                return None if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else found
            for depth in range(1, len(parts)):
                parent = Path(layer, *parts[:depth])
                if os.path.lexists(parent) and (
                    not parent.is_dir() or layerfs.OPAQUE_XATTR in os.listxattr(parent, follow_symlinks=False)
                ):
                    return None  # a whiteout, a file, or an opaque directory hides what lies below
        return None

    def found(self, reference: str, path: str) -> Path:
        result = self.file(reference, path)
        assert result is not None, f"{path} is not in {reference}"
        return result

    def run(self, reference: str, script: str, scratch: Path) -> tuple[int, str]:
        """``sh -c script`` in a container of the image; exit code and output."""
        for name in ("upper", "work", "rootfs"):
            (scratch / name).mkdir(parents=True)
        config = self.store.image(reference).config.get("config") or {}
        read_end, write_end = os.pipe()
        try:
            code = spawn.run(
                spawn.Config(
                    rootfs=str(scratch / "rootfs"),
                    argv=["/bin/sh", "-c", script],
                    env=process.environment(image_env=config.get("Env") or [], env={}, hostname="t", home="/root"),
                    capabilities=sorted(process.DEFAULT_CAPABILITIES),
                    overlay=spawn.Overlay(self.store.layers(reference), str(scratch / "upper"), str(scratch / "work")),
                ),
                stdout=write_end,
                stderr=write_end,
            )
        finally:
            os.close(write_end)
        with os.fdopen(read_end) as handle:
            return code, handle.read()

    def history(self, reference: str) -> list[dict[str, Any]]:
        return list(self.store.image(reference).config["history"])


def _listing(directory: str) -> list[str]:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    parent = f"reconcile-test-{uuid.uuid4().hex[:8]}"
    yield parent
    leftover = []
    for directory in cgroups.new_cgroup("probe", parent=parent).parent_dirs():
        if os.path.isdir(directory):
            leftover += [name for name in os.listdir(directory) if os.path.isdir(os.path.join(directory, name))]
            for name in os.listdir(directory):
                if os.path.isdir(os.path.join(directory, name)):
                    os.rmdir(os.path.join(directory, name))
            os.rmdir(directory)
    assert not leftover, f"build cgroups left behind: {leftover}"


@pytest.fixture
def b(tmp_path: Path, cgroup_parent: str) -> Iterator[Builder]:
    store = ImageStore(str(tmp_path / "root"))
    store.import_tarball(str(busybox_rootfs(tmp_path / "busybox.tar")), BASE)
    context = tmp_path / "context"
    context.mkdir()
    yield Builder(store, context, cgroup_parent)
    with open("/proc/mounts") as handle:
        leaked = [line for line in handle if str(tmp_path) in line]
    assert not leaked, f"mounts left on the host: {leaked}"
    assert _listing(os.path.join(store.directory, "build")) == [], "scratch directories left behind"


# --- instructions ------------------------------------------------------------------------


def test_metadata_instructions_set_the_config_and_add_empty_history(b: Builder) -> None:
    image = b.build(
        """FROM busybox:base
MAINTAINER someone <a@example.org>
ARG VERSION=1.0
ENV APP=/srv/app PATH=/usr/local/bin:/usr/bin:/bin
ENV MESSAGE="hello $APP" VERSION=$VERSION
LABEL org.example.version=$VERSION "with space"="a b"
USER app:staff
EXPOSE 80 53/udp 8000-8002
VOLUME ["/data", "/logs"]
VOLUME /cache
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD wget -q localhost || exit 1
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
CMD echo $MESSAGE
ENTRYPOINT ["/bin/tini", "--"]
ONBUILD RUN echo triggered
"""
    )
    config = image.config
    assert (config["os"], config["architecture"]) == (oci.host_platform()["os"], oci.host_platform()["architecture"])
    assert config["author"] == "someone <a@example.org>"
    settings = config["config"]
    assert settings["Env"] == [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "APP=/srv/app",
        "MESSAGE=hello /srv/app",
        "VERSION=1.0",
    ]
    assert settings["Labels"] == {"org.example.version": "1.0", "with space": "a b"}
    assert settings["User"] == "app:staff"
    assert settings["ExposedPorts"] == {p: {} for p in ("80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp")}
    assert settings["Volumes"] == {"/data": {}, "/logs": {}, "/cache": {}}
    assert settings["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
        "Interval": 30_000_000_000,
        "Timeout": 5_000_000_000,
        "Retries": 3,
    }
    assert settings["StopSignal"] == "SIGINT"
    assert settings["Shell"] == ["/bin/sh", "-ec"]
    assert settings["Cmd"] == ["/bin/sh", "-ec", "echo $MESSAGE"]  # CMD is never expanded; set in this stage, kept
    assert settings["Entrypoint"] == ["/bin/tini", "--"]
    assert settings["OnBuild"] == ["RUN echo triggered"]
    assert len(image.layers) == 1  # nothing but the base layer
    history = config["history"][1:]
    assert len(history) == 14 and all(entry["empty_layer"] for entry in history)  # ARG records nothing
    assert history[2]["created_by"] == "/bin/sh -c #(nop)  ENV MESSAGE=hello /srv/app VERSION=1.0"
    assert config["created"] == history[-1]["created"]


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a layer records about a tree: types, modes, owners, devices, links, contents, xattrs."""
    out: dict[str, tuple[object, ...]] = {}
    for directory, names, files in os.walk(root):
        for name in (*names, *files):
            path = Path(directory) / name
            st = os.lstat(path)
            content = path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(path) if path.is_symlink() else b""
            names_ = os.listxattr(path, follow_symlinks=False)
            xattrs = {key: os.getxattr(path, key, follow_symlinks=False) for key in names_}
            rel = path.relative_to(root).as_posix()
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, st.st_mtime_ns // 10**9, content, xattrs)
    return out


def test_a_steps_snapshot_is_what_unpacking_its_layer_gives(b: Builder, tmp_path: Path) -> None:
    b.write({"dir/file": "f", "dir/sub/deep": "d"})
    image = b.build(
        "FROM busybox:base\n"
        "RUN rm /etc/motd && rm -rf /home && mkdir -p /home/new && chmod 700 /home/new && ln -s /x /link\n"
        "COPY dir /copied\n"
        "WORKDIR /w\n"
    )
    (tmp_path / "unpacked").mkdir()
    for layer, diff_id in zip(image.layers[1:], image.diff_ids[1:], strict=True):
        unpacked = tmp_path / "unpacked" / diff_id.removeprefix("sha256:")
        layerfs.unpack(b.store.content.path(layer.digest), str(unpacked))
        assert _tree(Path(b.store.snapshot_path(diff_id))) == _tree(unpacked)
    assert b.file("test", "/etc/motd") is None and b.file("test", "/home/app") is None


def test_entrypoint_drops_an_inherited_cmd_but_not_one_set_in_the_stage(b: Builder) -> None:
    b.build('FROM busybox:base\nCMD ["sh"]\n', tags=("with-cmd",))
    assert "Cmd" not in b.build('FROM with-cmd\nENTRYPOINT ["env"]\n').config["config"]
    kept = b.build('FROM with-cmd\nCMD ["-i"]\nENTRYPOINT ["env"]\n').config["config"]
    assert kept["Cmd"] == ["-i"] and kept["Entrypoint"] == ["env"]
    assert b.build("FROM with-cmd\nCMD []\n").config["config"]["Cmd"] == []


def test_run_output_streams_to_progress_and_its_changes_are_a_layer(b: Builder, tmp_path: Path) -> None:
    image = b.build(
        "FROM busybox:base\nRUN echo building; mkdir /srv && echo made > /srv/file && hostname\nCMD cat /srv/file\n"
    )
    assert "STEP 2/3: RUN echo building; mkdir /srv && echo made > /srv/file && hostname" in b.lines
    assert "building" in b.lines and builder.HOSTNAME in b.lines
    assert len(image.layers) == 2 and image.config["history"][-2]["created_by"].startswith("/bin/sh -c echo building")
    assert image.layers[-1].media_type == oci.OCI_LAYER_GZIP
    top = Path(b.store.layers("test")[0])
    assert sorted(os.listdir(top)) == ["srv"]  # no /etc, /proc or /dev made to mount things
    assert b.run("test", "cat /srv/file", tmp_path / "c") == (0, "made\n")


def test_run_is_isolated_runs_as_user_and_sees_args_as_environment(b: Builder) -> None:
    b.build(
        """FROM busybox:base
ARG COLOR=red
ARG SIZE
ENV SHAPE=square COLOR=green
USER app
WORKDIR /home/app
RUN echo "color=$COLOR size=$SIZE shape=$SHAPE home=$HOME pwd=$(pwd)"; id -u; ls /sys/class/net
""",
        build_args={"SIZE": "big", "UNUSED": "x", "http_proxy": "http://proxy:3128"},
    )
    assert "color=green size=big shape=square home=/home/app pwd=/home/app" in b.lines  # ENV wins over ARG
    assert "1000" in b.lines
    assert "lo" in b.lines and not any(line.startswith("eth") for line in b.lines)
    assert any(line.startswith("WARNING") and "UNUSED" in line and "http_proxy" not in line for line in b.lines)
    history = b.history("test")
    assert history[-1]["created_by"].startswith("|2 COLOR=red SIZE=big /bin/sh -c echo")  # as Docker records it


def test_build_args_override_defaults_and_global_args_choose_the_base(b: Builder) -> None:
    containerfile = """ARG BASE=busybox:nothere
ARG FLAVOR=plain
FROM ${BASE} AS first
ARG FLAVOR
RUN echo "flavor=$FLAVOR" > /flavor
"""
    with pytest.raises(BuildError, match="image busybox:nothere not found: pull it first"):
        b.build(containerfile)
    b.build(containerfile, build_args={"BASE": BASE})
    assert b.found("test", "/flavor").read_text() == "flavor=plain\n"
    b.build(containerfile, build_args={"BASE": BASE, "FLAVOR": "spicy"})
    assert b.found("test", "/flavor").read_text() == "flavor=spicy\n"


def test_env_is_expanded_in_later_instructions(b: Builder) -> None:
    b.write({"a.txt": "a\n"})
    image = b.build(
        """FROM busybox:base
ENV DIR=/opt/app NAME=copied
WORKDIR $DIR
COPY a.txt ${DIR}/${NAME}.txt
COPY a.txt relative.txt
COPY ["a.txt", "$DIR/json form.txt"]
LABEL where=$DIR
USER ${NAME:-nobody}
"""
    )
    assert b.file("test", "/opt/app/copied.txt") is not None
    assert b.file("test", "/opt/app/relative.txt") is not None  # relative to WORKDIR
    assert b.file("test", "/opt/app/json form.txt") is not None
    assert image.config["config"]["WorkingDir"] == "/opt/app"
    assert image.config["config"]["Labels"] == {"where": "/opt/app"}
    assert image.config["config"]["User"] == "copied"


def test_workdir_adds_a_layer_only_when_it_creates_the_directory(b: Builder) -> None:
    image = b.build("FROM busybox:base\nUSER app\nWORKDIR /tmp\nWORKDIR new/deeper\n")
    assert image.config["config"]["WorkingDir"] == "/tmp/new/deeper"
    history = image.config["history"]
    assert history[-2]["empty_layer"] is True and "empty_layer" not in history[-1]
    assert len(image.layers) == 2
    made = b.file("test", "/tmp/new/deeper")
    assert made is not None and made.is_dir() and (made.stat().st_uid, made.stat().st_gid) == (1000, 1000)


def test_copy_globs_directories_chown_and_chmod(b: Builder) -> None:
    b.write({"a.txt": "a", "b.txt": "b", "c.md": "c", "dir/sub/x": "x", "dir/top": "t"})
    os.chmod(b.context / "dir" / "top", 0o751)
    os.chmod(b.context / "dir", 0o700)  # the host directory's mode is not the image's
    os.chown(b.context / "a.txt", 4321, 4321)  # nor are the host's owners
    os.symlink("top", b.context / "dir" / "link")
    b.build(
        """FROM busybox:base
COPY *.txt /globbed/
COPY [ab].txt /class/
COPY dir /tree
COPY dir/ /tree2/
COPY --chown=app:staff a.txt /owned/by-name
COPY --chown=1234 a.txt /owned/by-number
COPY --chown=app a.txt /owned/user-only
COPY --chmod=700 b.txt c.md /mode/
"""
    )

    def found(path: str) -> Path:
        return b.found("test", path)

    assert sorted(os.listdir(found("/globbed"))) == ["a.txt", "b.txt"]
    assert sorted(os.listdir(found("/class"))) == ["a.txt", "b.txt"]
    assert sorted(os.listdir(found("/tree"))) == ["link", "sub", "top"]  # the contents, not the directory
    assert found("/tree/sub/x").read_text() == "x"
    assert stat.S_IMODE(found("/tree").stat().st_mode) == 0o755
    assert stat.S_IMODE(found("/tree/top").stat().st_mode) == 0o751
    assert os.readlink(found("/tree/link")) == "top"
    assert found("/tree2/top").read_text() == "t"
    st = found("/globbed/a.txt").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)  # context files become root's
    assert (found("/owned/by-name").stat().st_uid, found("/owned/by-name").stat().st_gid) == (1000, 50)
    assert (found("/owned/by-number").stat().st_uid, found("/owned/by-number").stat().st_gid) == (1234, 1234)
    assert (found("/owned/user-only").stat().st_uid, found("/owned/user-only").stat().st_gid) == (1000, 1000)
    assert stat.S_IMODE(found("/mode/b.txt").stat().st_mode) == 0o700
    assert stat.S_IMODE(found("/mode/c.md").stat().st_mode) == 0o700


def _archive(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        _add(archive, "pkg", tarfile.DIRTYPE, uid=7, gid=8)
        for name, data in members.items():
            _add(archive, name, data=data, mode=0o640, uid=7, gid=8)
        _add(archive, "pkg/link", tarfile.SYMTYPE, linkname="one")
    return out.getvalue()


def test_add_extracts_local_archives_of_every_compression(b: Builder) -> None:
    plain = _archive({"pkg/one": b"1"})
    b.write(
        {
            "plain.tar": plain,
            "gz.tgz": gzip.compress(plain),
            "bz.tar.bz2": bz2.compress(plain),
            "xz.tar.xz": lzma.compress(plain),
            "zst.tar.zst": zstandard.ZstdCompressor().compress(plain),
            "notes.txt.gz": gzip.compress(b"not a tar"),
        }
    )
    b.build(
        """FROM busybox:base
ADD plain.tar /x/plain/
ADD gz.tgz /x/gz
ADD bz.tar.bz2 /x/bz
ADD xz.tar.xz /x/xz
ADD zst.tar.zst /x/zst
ADD notes.txt.gz /x/
"""
    )
    for name in ("plain", "gz", "bz", "xz", "zst"):
        one = b.file("test", f"/x/{name}/pkg/one")
        assert one is not None and one.read_bytes() == b"1", name
        assert (one.stat().st_uid, one.stat().st_gid, stat.S_IMODE(one.stat().st_mode)) == (7, 8, 0o640)
        assert os.readlink(b.found("test", f"/x/{name}/pkg/link")) == "one"
    assert gzip.decompress(b.found("test", "/x/notes.txt.gz").read_bytes()) == b"not a tar"


def test_add_refuses_urls_and_an_archive_that_climbs_out(b: Builder) -> None:
    error = b.fails("FROM busybox:base\nADD https://example.org/x.tar /x/\n")
    assert error.line == 2 and "no network" in str(error)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        _add(archive, "../../escape", data=b"x")
    b.write({"evil.tar": out.getvalue()})
    assert "leads outside the destination" in str(b.fails("FROM busybox:base\nADD evil.tar /x/\n"))


def test_the_ignore_file_leaves_files_out_of_the_context(b: Builder) -> None:
    b.write(
        {
            "app.py": "code",
            "debug.log": "noise",
            "logs/old.log": "noise",
            "secret/key": "k",
            "secret/keep": "kept",
            ".dockerignore": "*.log\n**/*.log\nsecret\n!secret/keep\n",
        }
    )
    b.build("FROM busybox:base\nCOPY . /ctx/\n")
    ctx = b.file("test", "/ctx")
    assert ctx is not None
    assert sorted(p.relative_to(ctx).as_posix() for p in ctx.rglob("*")) == [
        ".dockerignore",
        "Containerfile",
        "app.py",
        "logs",
        "secret",
        "secret/keep",
    ]
    error = b.fails("FROM busybox:base\nCOPY debug.log /x\n")
    assert "excluded by the ignore file" in str(error) and error.line == 2


def test_multi_stage_copy_from_a_stage_an_index_and_an_image_with_target(b: Builder) -> None:
    containerfile = """FROM busybox:base AS builder
RUN mkdir /out && echo artifact > /out/app && chown 1000:50 /out/app

FROM busybox:base AS unused
RUN exit 1

FROM builder AS derived
RUN echo more > /out/more

FROM busybox:base
COPY --from=builder /out/app /usr/bin/app
COPY --from=derived /out/more /more
COPY --from=0 /out /copied
COPY --from=busybox:base /etc/motd /motd
"""
    b.build(containerfile)
    app = b.file("test", "/usr/bin/app")
    assert app is not None and app.read_text() == "artifact\n"
    assert (app.stat().st_uid, app.stat().st_gid) == (1000, 50)  # --from keeps owners
    assert b.file("test", "/copied/app") is not None
    assert b.found("test", "/more").read_text() == "more\n"
    assert b.found("test", "/motd").read_text() == "welcome\n"
    assert not any("exit 1" in line for line in b.lines)  # a stage nothing needs is not built
    b.build(containerfile, target="builder", tags=("builder-only",))
    assert b.file("builder-only", "/out/app") is not None and b.file("builder-only", "/usr/bin/app") is None
    with pytest.raises(BuildError, match="target stage 'nope' not found"):
        b.build(containerfile, target="nope")


def test_a_file_removed_by_a_later_run_is_gone_from_the_image(b: Builder, tmp_path: Path) -> None:
    b.build("FROM busybox:base\nRUN echo x > /etc/x\nRUN rm /etc/x /etc/motd\n")
    assert b.file("test", "/etc/x") is None and b.file("test", "/etc/motd") is None
    code, out = b.run("test", "cat /etc/x /etc/motd", tmp_path / "c")
    assert code == 1 and "No such file" in out
    assert b.run("test", "cat /etc/passwd", tmp_path / "d")[0] == 0


def test_onbuild_triggers_run_in_builds_from_the_image(b: Builder) -> None:
    b.write({"trigger.txt": "t"})
    b.build("FROM busybox:base\nONBUILD COPY trigger.txt /from-trigger\nONBUILD RUN echo fired\n", tags=("parent",))
    image = b.build("FROM parent\nRUN echo child\n")
    assert "fired" in b.lines and b.file("test", "/from-trigger") is not None
    assert "OnBuild" not in image.config["config"]  # triggers are not inherited


def test_from_scratch_with_a_copy_is_a_one_layer_image(b: Builder) -> None:
    b.write({"hello": "hi"})
    image = b.build('FROM scratch\nCOPY hello /\nCMD ["/hello"]\n')
    assert len(image.layers) == 1 and image.diff_ids == tuple(image.config["rootfs"]["diff_ids"])
    assert b.file("test", "/hello") is not None


def test_platform_of_the_host_is_accepted_and_others_refused(b: Builder) -> None:
    host = oci.host_platform()
    b.build(f"FROM --platform={host['os']}/{host['architecture']} busybox:base\n")
    b.build("FROM --platform=$BUILDPLATFORM busybox:base\n")
    error = b.fails("FROM --platform=linux/s390x busybox:base\n")
    assert error.line == 1 and "only this host's platform" in str(error)


def test_source_date_epoch_stamps_the_history(b: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    image = b.build("FROM busybox:base\nENV A=1\nRUN true\n", no_cache=True)
    assert [entry["created"] for entry in image.config["history"][1:]] == ["2023-11-14T22:13:20Z"] * 2
    assert image.config["created"] == "2023-11-14T22:13:20Z"


# --- the cache -----------------------------------------------------------------------------


def _store_files(store: ImageStore) -> tuple[list[str], list[str]]:
    return (
        _listing(os.path.join(store.directory, "blobs", "sha256")),
        _listing(os.path.join(store.directory, "snapshots")),
    )


CACHED = """FROM busybox:base
ENV A=1
COPY one.txt /one.txt
RUN echo "$(cat /one.txt) ran" > /ran.txt
COPY two.txt /two.txt
RUN cat /two.txt > /copy.txt
LABEL done=yes
"""


def test_an_unchanged_rebuild_is_the_same_image_and_writes_no_blob_or_snapshot(b: Builder) -> None:
    b.write({"one.txt": "1", "two.txt": "2"})
    first = b.build(CACHED)
    b.store.layers("test")  # every snapshot there is
    before = _store_files(b.store)
    again = b.build(CACHED, tags=("test:latest", "other:tag"))
    assert again.id == first.id and again.manifest_digest == first.manifest_digest
    assert _store_files(b.store) == before
    assert sum(line.startswith("--> Using cache") for line in b.lines) == 6
    assert not any(line.endswith(" ran") for line in b.lines)
    assert b.store.images()["other:tag"] == first.manifest_digest


def test_a_changed_copy_source_reruns_that_step_and_the_later_ones_only(b: Builder) -> None:
    b.write({"one.txt": "1", "two.txt": "2"})
    first = b.build(CACHED)
    b.write({"two.txt": "changed"})
    second = b.build(CACHED)
    steps = [line for line in b.lines if line.startswith(("STEP", "--> Using cache"))]
    cached = {steps[i] for i in range(len(steps) - 1) if steps[i + 1].startswith("--> Using cache")}
    assert {line.split(":", 1)[0] for line in cached} == {"STEP 2/7", "STEP 3/7", "STEP 4/7"}
    assert second.id != first.id and second.diff_ids[:3] == first.diff_ids[:3]
    assert b.found("test", "/copy.txt").read_text() == "changed"
    os.utime(b.context / "two.txt")  # a new mtime with the same content is still a hit
    assert b.build(CACHED).id == second.id


def test_no_cache_runs_every_step(b: Builder) -> None:
    b.write({"one.txt": "1", "two.txt": "2"})
    b.build(CACHED)
    b.build(CACHED, no_cache=True)
    assert not any(line.startswith("--> Using cache") for line in b.lines)
    assert b.found("test", "/ran.txt").read_text() == "1 ran\n"


def test_a_lost_layer_blob_is_a_miss_and_later_steps_rebuild(b: Builder) -> None:
    b.write({"one.txt": "1", "two.txt": "2"})
    first = b.build(CACHED)
    b.store.content.delete(first.layers[2].digest)  # the first RUN's layer
    b.store.untag("test:latest")
    second = b.build(CACHED)
    run = b.lines.index("STEP 4/7: " + CACHED.splitlines()[3])
    assert b.lines[run - 1].startswith("--> Using cache") and not b.lines[run + 1].startswith("--> Using cache")
    assert b.store.content.has(second.layers[2].digest)


def test_file_hashes_are_remembered_by_stat_but_not_for_files_just_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "file"
    path.write_text("content")
    hashes = cache.FileHashes(str(tmp_path / "cache"), str(tmp_path))
    digest = hashes.digest(str(path), os.lstat(path))
    hashes.save()
    assert not (tmp_path / "cache" / "files").exists()  # changed just now: not remembered
    monkeypatch.setattr(cache, "_RACY_NS", -1)
    hashes.digest(str(path), os.lstat(path))
    hashes.save()
    st = os.lstat(path)
    path.unlink()  # a remembered hash is not read from the file again
    assert cache.FileHashes(str(tmp_path / "cache"), str(tmp_path)).digest(str(path), st) == digest


# --- failures ------------------------------------------------------------------------------


def test_a_failing_run_reports_its_line_exit_code_and_output_and_tags_nothing(b: Builder) -> None:
    tags_before = b.store.images()
    error = b.fails("FROM busybox:base\nENV A=1\nRUN echo first line; echo oops >&2; sleep 60 & exit 3\n")
    assert error.line == 3 and error.exit_code == 3
    assert error.output[-2:] == ["first line", "oops"]
    assert str(error).startswith("Containerfile:3: RUN echo first line; echo oops >&2; sleep 60 & exit 3: ")
    assert "exited with code 3" in str(error) and "oops" in str(error)
    assert b.store.images() == tags_before  # the cgroup, mounts and scratch are checked by the fixtures


class Interrupted(Exception):
    pass


def test_an_interrupted_run_is_killed_and_cleaned_up(b: Builder) -> None:
    def progress(line: str) -> None:
        if line == "started":
            raise Interrupted  # as a ^C in the middle of a RUN would

    (b.context / "Containerfile").write_text("FROM busybox:base\nRUN echo started; sleep 60; echo never\n")
    with pytest.raises(Interrupted):
        builder.build(b.store, str(b.context), cgroup_parent=b.cgroup_parent, progress=progress)
    # the fixtures check that no cgroup (so no process), mount or scratch directory is left


def test_a_missing_program_is_a_start_error(b: Builder) -> None:
    error = b.fails('FROM busybox:base\nRUN ["/no/such/program"]\n')
    assert error.exit_code == 127 and "executable not found" in str(error)


def test_syntax_errors_have_the_line(b: Builder) -> None:
    error = b.fails("FROM busybox:base\n\nRUN echo ok\nCOPYY a b\n")
    assert error.line == 4 and 'unknown instruction "COPYY"' in str(error) and str(error).startswith("Containerfile:4")
    assert b.fails("FROM busybox:base\nENV A=${B\n").line == 2
    assert "RUN --mount is not supported" in str(b.fails("FROM busybox:base\nRUN --mount=type=cache,target=/x true\n"))


def test_copy_errors_are_clear(b: Builder, tmp_path: Path) -> None:
    b.write({"a.txt": "a", "dir/file": "f"})
    (tmp_path / "outside").write_text("secret")
    os.symlink("/etc", b.context / "etc-link")
    os.symlink(str(tmp_path / "outside"), b.context / "out-link")
    for line, fragment in (
        ("COPY missing.txt /x", "missing.txt: no such file or directory in the build context"),
        ("COPY ../outside /x", "../outside: forbidden path outside the build context"),
        ("COPY etc-link /x", "etc-link: leads outside the build context"),
        ("COPY etc-link/passwd /x", "leads outside the build context"),
        ("COPY out-link /x", "leads outside the build context"),
        ("COPY *.nothing /x/", "no file in the build context matches"),
        ("COPY a.txt dir /x", "the destination must be a directory ending in /"),
        ("COPY --chown=nobody a.txt /x", "unable to find user nobody"),
        ("COPY --chmod=rwx a.txt /x", "--chmod=rwx: give an octal mode"),
        ("COPY --from=nothere /x /y", "image nothere not found: pull it first"),
    ):
        error = b.fails(f"FROM busybox:base\n{line}\n")
        assert fragment in str(error), (line, str(error))
        assert error.line == 2 and error.path == "Containerfile"
    error = b.fails("FROM scratch AS empty\nLABEL a=b\nFROM busybox:base\nCOPY --from=empty /x /x\n")
    assert error.line == 4 and "/x: no such file or directory in --from=empty" in str(error)
    error = b.fails("FROM busybox:base\nRUN mkdir -p /t/file\nCOPY dir /t\n")
    assert error.line == 3 and "cannot replace directory /t/file with a file" in str(error)


def test_an_unknown_base_is_an_error_unless_a_pull_fetches_it(b: Builder) -> None:
    error = b.fails("FROM example.org/nothing:1\n")
    assert (
        str(error)
        == "Containerfile:1: FROM example.org/nothing:1: image example.org/nothing:1 not found: pull it first"
    )
    pulled: list[str] = []

    def pull(reference: str) -> Image:
        pulled.append(reference)
        return b.store.image(BASE)

    image = b.build("FROM example.org/nothing:1\nENV PULLED=yes\n", pull=pull)
    assert pulled == ["example.org/nothing:1"] and "PULLED=yes" in image.config["config"]["Env"]


def test_a_containerfile_can_be_named_and_the_context_must_exist(b: Builder, tmp_path: Path) -> None:
    other = tmp_path / "Other.containerfile"
    other.write_text("FROM busybox:base\nLABEL named=yes\n")
    image = builder.build(b.store, str(b.context), containerfile=str(other), cgroup_parent=b.cgroup_parent)
    assert image.config["config"]["Labels"] == {"named": "yes"}
    with pytest.raises(BuildError, match="not a directory"):
        builder.build(b.store, str(tmp_path / "nope"))
    with pytest.raises(BuildError, match="no Containerfile or Dockerfile"):
        builder.build(b.store, str(b.context))
    shutil.rmtree(tmp_path / "root" / "images" / "build-cache")  # the cache is only ever an optimisation
    again = builder.build(b.store, str(b.context), containerfile=str(other), cgroup_parent=b.cgroup_parent)
    assert again.config["config"]["Labels"] == {"named": "yes"}


def test_the_history_reads_like_dockers(b: Builder) -> None:
    b.write({"a.txt": "a"})
    b.build("FROM busybox:base\nCOPY a.txt /a\nWORKDIR /w\n")
    created_by = [entry["created_by"] for entry in b.history("test")[1:]]
    assert created_by[0].startswith("/bin/sh -c #(nop) COPY file:") and created_by[0].endswith(" in /a")
    assert created_by[1] == "/bin/sh -c #(nop)  WORKDIR /w"
    json.dumps(b.history("test"))  # plain JSON all the way
