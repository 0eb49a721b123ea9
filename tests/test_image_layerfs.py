"""Layer blobs unpacked into real directories, and overlay upper dirs written back as tars.

Blobs are built here with tarfile (plain, gzip, zstd). Unpacking sets owners, devices
and trusted.* xattrs, so most tests need root; one mounts a real overlayfs in a child
process's own mount namespace, which dies with the child.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import socket
import stat
import struct
import tarfile
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from reconciler.images import layerfs
from reconciler.images.layerfs import LayerError
from reconciler.runtime import linux

M1 = 1_600_000_000
M2 = 1_650_000_000
M3 = 1_700_000_000

Member = tuple[tarfile.TarInfo, bytes | None]

KINDS = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def entry(
    name: str,
    kind: str = "file",
    *,
    data: bytes = b"",
    mode: int | None = None,
    uid: int = 0,
    gid: int = 0,
    mtime: float = M1,
    linkname: str = "",
    dev: tuple[int, int] = (0, 0),
    xattrs: dict[str, bytes] | None = None,
) -> Member:
    info = tarfile.TarInfo(name)
    info.type = KINDS[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.uid, info.gid, info.mtime = uid, gid, mtime
    info.linkname = linkname
    info.devmajor, info.devminor = dev
    info.pax_headers = {
        "SCHILY.xattr." + key: value.decode("utf-8", "surrogateescape") for key, value in (xattrs or {}).items()
    }
    if kind == "file":
        info.size = len(data)
        return info, data
    return info, None


def tar_bytes(members: list[Member]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def compress(raw: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(raw, mtime=0)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


def write_blob(tmp_path: Path, blob: bytes) -> str:
    path = tmp_path / "blobs" / "layer"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(blob)
    return str(path)


@pytest.fixture
def layers(tmp_path: Path) -> Path:
    """An empty directory that unpacked layers go into; tests check nothing else lands there."""
    directory = tmp_path / "layers"
    directory.mkdir()
    return directory


def unpack_members(tmp_path: Path, layers: Path, members: list[Member], name: str = "root") -> tuple[Path, str]:
    blob = write_blob(tmp_path, tar_bytes(members))
    target = layers / name
    return target, layerfs.unpack(blob, str(target))


def diff_bytes(upper: Path) -> bytes:
    out = io.BytesIO()
    layerfs.diff_tar(str(upper), out)
    return out.getvalue()


def read_members(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
        return tar.getmembers()


# --- opening blobs -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["plain", "gzip", "zstd"])
def test_open_layer_detects_compression_by_magic_bytes(tmp_path: Path, how: str) -> None:
    raw = tar_bytes([entry("hello", data=b"world")])
    with layerfs.open_layer(write_blob(tmp_path, compress(raw, how))) as stream:
        assert stream.read() == raw


def test_open_layer_reads_every_frame_of_a_multi_frame_zstd_blob(tmp_path: Path) -> None:
    raw = tar_bytes([entry(f"f{index}", data=os.urandom(3000)) for index in range(8)])
    half = len(raw) // 2
    blob = compress(raw[:half], "zstd") + compress(raw[half:], "zstd")
    with layerfs.open_layer(write_blob(tmp_path, blob)) as stream:
        assert stream.read() == raw


# --- unpacking ---------------------------------------------------------------------------


@pytest.mark.requires_root
@pytest.mark.parametrize("how", ["plain", "gzip", "zstd"])
def test_unpack_returns_the_digest_of_the_uncompressed_tar(tmp_path: Path, layers: Path, how: str) -> None:
    big = os.urandom(3 << 20)  # several reads and tail windows of the hashing reader
    raw = tar_bytes([entry("etc", "dir"), entry("etc/big", data=big), entry("etc/small", data=b"x")])
    target = layers / "root"
    diff_id = layerfs.unpack(write_blob(tmp_path, compress(raw, how)), str(target))
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (target / "etc" / "big").read_bytes() == big
    assert os.listdir(layers) == ["root"]


@pytest.mark.requires_root
def test_an_empty_layer_is_an_empty_readable_directory(tmp_path: Path, layers: Path) -> None:
    raw = tar_bytes([])
    target = layers / "root"
    assert layerfs.unpack(write_blob(tmp_path, raw), str(target)) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert os.listdir(target) == []
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def capability_xattr(*caps: int) -> bytes:
    """A VFS_CAP_REVISION_2 security.capability value with the effective flag."""
    permitted = sum(1 << cap for cap in caps)
    return struct.pack("<5I", 0x02000001, permitted, 0, 0, 0)


@pytest.mark.requires_root
def test_unpack_keeps_types_modes_owners_times_and_xattrs(tmp_path: Path, layers: Path) -> None:
    capability = capability_xattr(7, 13)  # CAP_SETUID|CAP_NET_RAW: the 0x80 byte is not UTF-8
    target, _ = unpack_members(
        tmp_path,
        layers,
        [
            entry("./", "dir", mode=0o755, mtime=M3),
            entry("etc", "dir", mtime=M1, xattrs={"user.dir": b"d"}),
            entry("etc/passwd", data=b"root:x:0:0\n", mode=0o644, mtime=M2),
            entry("etc/passwd-", "hardlink", linkname="etc/passwd"),
            entry("etc/alt", "symlink", linkname="passwd", uid=1000, gid=1001, mtime=M2, xattrs={"trusted.l": b"s"}),
            entry("bin/su", data=b"\x7fELF", mode=0o4755),
            entry("bin/wall", data=b"\x7fELF", mode=0o2755, gid=5),
            entry("tmp", "dir", mode=0o1777),
            entry("home", "dir"),
            entry("home/u", "dir", mode=0o700, uid=1000, gid=1001, mtime=M2),
            entry("home/u/notes", data=b"n", mode=0o600, uid=1000, gid=1001, mtime=M1 + 0.5),
            entry("dev/null", "chr", mode=0o666, dev=(1, 3)),
            entry("dev/loop0", "blk", mode=0o660, gid=6, dev=(7, 0)),
            entry("run/fifo", "fifo", mode=0o640),
            entry(
                "usr/bin/ping",
                data=b"\x7fELF",
                mode=0o755,
                uid=1000,
                xattrs={
                    "user.note": b"hello",
                    "trusted.blob": b"\xff\x00bin",
                    "security.capability": capability,
                    "trusted.overlay.redirect": b"/elsewhere",  # overlay's own: dropped
                },
            ),
        ],
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 and target.stat().st_mtime == M3
    etc = target / "etc"
    assert etc.stat().st_mtime == M1  # set after etc/passwd and friends were created in it
    assert os.getxattr(etc, "user.dir") == b"d"
    passwd = (etc / "passwd").stat()
    assert (etc / "passwd").read_bytes() == b"root:x:0:0\n"
    assert stat.S_IMODE(passwd.st_mode) == 0o644 and passwd.st_mtime == M2
    assert (etc / "passwd-").stat().st_ino == passwd.st_ino and passwd.st_nlink == 2

    alt = os.lstat(etc / "alt")
    assert stat.S_ISLNK(alt.st_mode) and os.readlink(etc / "alt") == "passwd"
    assert (alt.st_uid, alt.st_gid, alt.st_mtime) == (1000, 1001, M2)
    assert os.getxattr(etc / "alt", "trusted.l", follow_symlinks=False) == b"s"

    assert stat.S_IMODE((target / "bin" / "su").stat().st_mode) == 0o4755
    wall = (target / "bin" / "wall").stat()
    assert stat.S_IMODE(wall.st_mode) == 0o2755 and wall.st_gid == 5
    assert stat.S_IMODE((target / "bin").stat().st_mode) == 0o755  # an implicit parent
    assert stat.S_IMODE((target / "tmp").stat().st_mode) == 0o1777

    home = (target / "home" / "u").stat()
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode), home.st_mtime) == (1000, 1001, 0o700, M2)
    notes = (target / "home" / "u" / "notes").stat()
    assert (notes.st_uid, notes.st_gid, stat.S_IMODE(notes.st_mode)) == (1000, 1001, 0o600)
    assert notes.st_mtime_ns == (M1 * 1_000_000_000) + 500_000_000

    null = (target / "dev" / "null").stat()
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = (target / "dev" / "loop0").stat()
    assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 0)
    assert loop.st_gid == 6 and stat.S_IMODE(loop.st_mode) == 0o660
    fifo = (target / "run" / "fifo").stat()
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o640

    ping = target / "usr" / "bin" / "ping"
    assert ping.stat().st_uid == 1000
    assert os.getxattr(ping, "user.note") == b"hello"
    assert os.getxattr(ping, "trusted.blob") == b"\xff\x00bin"
    assert os.getxattr(ping, "security.capability") == capability  # set after chown, which clears it
    assert "trusted.overlay.redirect" not in os.listxattr(ping)


@pytest.mark.requires_root
def test_whiteouts_become_overlay_whiteouts_and_opaque_markers_an_xattr(tmp_path: Path, layers: Path) -> None:
    target, _ = unpack_members(
        tmp_path,
        layers,
        [
            entry("a", "dir"),
            entry("a/.wh.x", uid=7, gid=8),
            entry(".wh.top"),
            entry("d", "dir"),
            entry("d/.wh..wh..opq"),
            entry("d/.wh..wh.plnk", "dir"),  # AUFS bookkeeping: ignored
            entry("d/new", data=b"new"),
            entry("deep/er/.wh..wh..opq"),  # its directories are implicit
        ],
    )
    for whiteout in (target / "a" / "x", target / "top"):
        found = os.lstat(whiteout)
        assert stat.S_ISCHR(found.st_mode) and found.st_rdev == 0
    assert os.lstat(target / "a" / "x")[stat.ST_UID : stat.ST_GID + 1] == (7, 8)
    assert os.getxattr(target / "d", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(target / "deep" / "er", "trusted.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(target / "a")
    assert sorted(os.listdir(target / "d")) == ["new"]
    assert not [name for _, dirs, files in os.walk(target) for name in dirs + files if name.startswith(".wh.")]


@pytest.mark.requires_root
def test_a_later_entry_replaces_an_earlier_one(tmp_path: Path, layers: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_bytes(b"untouched")
    target, _ = unpack_members(
        tmp_path,
        layers,
        [
            entry("p", data=b"file first"),
            entry("p", "dir"),
            entry("p/c", data=b"c"),
            entry("q", "dir"),
            entry("q/old", data=b"old"),
            entry("q", data=b"file now"),
            entry("m", "dir", mode=0o700, mtime=M1),
            entry("m/one", data=b"1"),
            entry("m", "dir", mode=0o750, mtime=M2),
            entry("m/two", data=b"2"),
            entry("s", "symlink", linkname=str(outside / "target")),
            entry("s", data=b"a file, not written through the link"),
            entry("f", data=b"first"),
            entry("f", data=b"second"),
            entry("w", data=b"whited out by the same layer"),
            entry(".wh.w"),
        ],
    )
    assert (target / "p" / "c").read_bytes() == b"c"
    assert (target / "q").read_bytes() == b"file now"
    assert sorted(os.listdir(target / "m")) == ["one", "two"]  # a directory over a directory merges
    assert stat.S_IMODE((target / "m").stat().st_mode) == 0o750 and (target / "m").stat().st_mtime == M2
    assert not os.path.islink(target / "s") and (target / "s").read_bytes().startswith(b"a file")
    assert (outside / "target").read_bytes() == b"untouched"
    assert (target / "f").read_bytes() == b"second"
    assert stat.S_ISCHR(os.lstat(target / "w").st_mode)


def assert_nothing_left(layers: Path) -> None:
    assert os.listdir(layers) == [], "a target or temporary directory was left behind"


HOSTILE = {
    "dotdot": ([entry("../x", data=b"x")], "../x", "escapes the layer root"),
    "absolute": ([entry("/abs", data=b"x")], "/abs", "escapes the layer root"),
    "dotdot-inside": ([entry("a", "dir"), entry("a/../../x", data=b"x")], "a/../../x", "escapes the layer root"),
    "symlink-then-through": (
        [entry("link", "symlink", linkname="{outside}"), entry("link/passwd", data=b"pwned")],
        "link/passwd",
        "has a symlink 'link' in its path",
    ),
    "whiteout-through-symlink": (
        [entry("link", "symlink", linkname="{outside}"), entry("link/.wh.secret")],
        "link/.wh.secret",
        "has a symlink 'link' in its path",
    ),
    "opaque-through-symlink": (
        [entry("link", "symlink", linkname="{outside}"), entry("link/.wh..wh..opq")],
        "link/.wh..wh..opq",
        "has a symlink 'link' in its path",
    ),
    "hardlink-dotdot": ([entry("h", "hardlink", linkname="../outside/secret")], "h", "escapes the layer root"),
    "hardlink-absolute": ([entry("h", "hardlink", linkname="{outside}/secret")], "h", "escapes the layer root"),
    "hardlink-through-symlink": (
        [entry("l", "symlink", linkname="{outside}"), entry("h", "hardlink", linkname="l/secret")],
        "h",
        "has a symlink 'l' in its path",
    ),
    "hardlink-to-a-later-member": (
        [entry("h", "hardlink", linkname="later"), entry("later", data=b"x")],
        "h",
        "not an earlier member",
    ),
    "file-under-a-file": ([entry("f", data=b"x"), entry("f/g", data=b"y")], "f/g", "non-directory 'f'"),
    "nameless-whiteout": ([entry(".wh..")], ".wh..", "whiteout without a file name"),
    "file-as-root": ([entry("./", data=b"x")], "./", "non-directory"),
}


@pytest.mark.requires_root
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_are_refused_and_leave_nothing(tmp_path: Path, layers: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    members, name, reason = HOSTILE[case]
    for info, _ in members:
        info.linkname = info.linkname.format(outside=outside)
    blob = write_blob(tmp_path, tar_bytes(members))
    with pytest.raises(LayerError) as raised:
        layerfs.unpack(blob, str(layers / "root"), label="sha256:abcd")
    assert f"layer sha256:abcd member {name!r}" in str(raised.value)
    assert reason in str(raised.value)
    assert_nothing_left(layers)
    assert sorted(os.listdir(outside)) == ["secret"] and (outside / "secret").read_bytes() == b"secret"


def test_the_message_names_the_layer_the_member_and_the_cause(tmp_path: Path, layers: Path) -> None:
    blob = write_blob(tmp_path, tar_bytes([entry("../x", data=b"x")]))
    with pytest.raises(LayerError, match=r"^layer sha256:ab\.\. member '\.\./x' escapes the layer root$"):
        layerfs.unpack(blob, str(layers / "root"), label="sha256:ab..")
    assert_nothing_left(layers)


def _two_files() -> bytes:
    return tar_bytes([entry("a", data=os.urandom(4000)), entry("b", data=os.urandom(4000))])


def _without_end_blocks() -> bytes:
    """A well-formed first member and nothing after it: cut exactly at a member boundary."""
    info, data = entry("a", data=b"x" * 1000)
    assert data is not None
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + data.ljust(1024, b"\0")


CORRUPT: dict[str, Callable[[], bytes]] = {
    "garbage": lambda: b"this is not a tar archive\n" * 100,
    "empty": lambda: b"",
    "truncated-gzip": lambda: compress(_two_files(), "gzip")[:5000],
    "corrupt-gzip": lambda: (lambda blob: blob[:100] + bytes(200) + blob[300:])(compress(_two_files(), "gzip")),
    "truncated-zstd": lambda: compress(_two_files(), "zstd")[:5000],
    "garbage-zstd": lambda: layerfs.ZSTD_MAGIC + b"\x00\xff" * 500,
    "truncated-plain-mid-data": lambda: _two_files()[:3000],
    "truncated-plain-at-member-boundary": _without_end_blocks,
    "garbage-header-after-first-member": lambda: _without_end_blocks() + b"\x01" * 512 + bytes(1024),
    "garbage-after-the-gzip-stream": lambda: compress(_two_files(), "gzip") + b"trailing garbage",
    "bad-crc-gzip": lambda: (lambda blob: blob[:-8] + bytes(4) + blob[-4:])(compress(_two_files(), "gzip")),
}


@pytest.mark.requires_root
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_or_truncated_blobs_fail_and_leave_nothing(tmp_path: Path, layers: Path, case: str) -> None:
    blob = write_blob(tmp_path, CORRUPT[case]())
    with pytest.raises(LayerError, match=r"^layer sha256:feed"):
        layerfs.unpack(blob, str(layers / "root"), label="sha256:feed")
    assert_nothing_left(layers)


def _big_files() -> bytes:
    """Files of several megabytes each (several of the readers' 1 MiB reads, the
    end-of-archive block in a different read than the last header) in random data."""
    rng = random.Random(7)
    return tar_bytes([entry(f"f{n}", data=rng.randbytes(n * 700_001)) for n in (1, 3, 4)])


@pytest.mark.parametrize("how", ["plain", "gzip", "zstd"])
def test_layers_of_several_megabytes_unpack_whole(tmp_path: Path, layers: Path, how: str) -> None:
    raw = _big_files()
    diff_id = layerfs.unpack(write_blob(tmp_path, compress(raw, how)), str(layers / "root"))
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar.getmembers():
            source = tar.extractfile(member)
            assert source is not None
            assert (layers / "root" / member.name).read_bytes() == source.read()


def test_a_gzip_layer_of_several_members_with_zero_padding_unpacks(tmp_path: Path, layers: Path) -> None:
    """``pigz``-style members, and the zero padding gzip readers tolerate after them."""
    raw = _big_files()
    cut = len(raw) // 3
    blob = gzip.compress(raw[:cut], mtime=0) + gzip.compress(raw[cut:], mtime=0) + bytes(4096)
    diff_id = layerfs.unpack(write_blob(tmp_path, blob), str(layers / "root"))
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_a_missing_blob_is_a_layer_error(tmp_path: Path, layers: Path) -> None:
    with pytest.raises(LayerError, match="No such file"):
        layerfs.unpack(str(tmp_path / "nope"), str(layers / "root"))
    assert_nothing_left(layers)


def test_an_existing_target_is_refused_and_kept(tmp_path: Path, layers: Path) -> None:
    (layers / "root").mkdir()
    (layers / "root" / "mine").write_bytes(b"mine")
    with pytest.raises(LayerError, match="already exists"):
        layerfs.unpack(write_blob(tmp_path, tar_bytes([entry("x", data=b"x")])), str(layers / "root"))
    assert os.listdir(layers) == ["root"] and os.listdir(layers / "root") == ["mine"]


# --- diff: upper dir → tar ---------------------------------------------------------------


def rich_layer() -> list[Member]:
    return [
        entry("a", "dir", mtime=M1),
        entry("a/.wh.x"),
        entry("a/y", data=b"why", mode=0o640, uid=1000, gid=1001, mtime=M2, xattrs={"user.k": b"v"}),
        entry("a/y-link", "hardlink", linkname="a/y"),
        entry("a/sym", "symlink", linkname="../d/new", uid=1000),
        entry("d", "dir", mode=0o750, mtime=M2, xattrs={"trusted.t": b"\xff"}),
        entry("d/.wh..wh..opq"),
        entry("d/new", data=b"new", mode=0o4755),
        entry("d/zzz", "fifo", mode=0o600),
        entry("dev", "dir"),
        entry("dev/null", "chr", mode=0o666, dev=(1, 3)),
        entry("dev/sda", "blk", mode=0o660, dev=(8, 0)),
    ]


@pytest.mark.requires_root
def test_diff_tar_is_deterministic_and_round_trips(tmp_path: Path, layers: Path) -> None:
    first, _ = unpack_members(tmp_path, layers, rich_layer(), name="first")
    before = diff_bytes(first)
    y = first / "a" / "y"
    os.utime(y, ns=(M3 * 1_000_000_000, y.stat().st_mtime_ns))  # a new atime and ctime must not matter
    assert diff_bytes(first) == before

    second = layers / "second"
    diff_id = layerfs.unpack(write_blob(tmp_path, before), str(second))
    assert diff_id == "sha256:" + hashlib.sha256(before).hexdigest()
    assert diff_bytes(second) == before  # unpack ∘ diff is a fixed point


@pytest.mark.requires_root
def test_diff_tar_writes_whiteouts_opaque_markers_and_plain_headers(tmp_path: Path, layers: Path) -> None:
    upper, _ = unpack_members(tmp_path, layers, rich_layer())
    members = read_members(diff_bytes(upper))
    assert [m.name for m in members] == [
        "a",
        "a/.wh.x",
        "a/sym",
        "a/y",
        "a/y-link",
        "d",
        "d/.wh..wh..opq",
        "d/new",
        "d/zzz",
        "dev",
        "dev/null",
        "dev/sda",
    ]
    by_name = {m.name: m for m in members}
    whiteout = by_name["a/.wh.x"]
    assert whiteout.isreg() and whiteout.size == 0 and whiteout.mode == 0o600
    opaque = by_name["d/.wh..wh..opq"]
    assert opaque.isreg() and opaque.size == 0 and opaque.mode == 0o750 and opaque.mtime == M2
    assert by_name["a/y-link"].islnk() and by_name["a/y-link"].linkname == "a/y"
    assert by_name["a/sym"].issym() and by_name["a/sym"].linkname == "../d/new"
    assert by_name["d/new"].mode == 0o4755 and by_name["d/zzz"].isfifo()
    assert (by_name["dev/null"].devmajor, by_name["dev/null"].devminor) == (1, 3)
    assert by_name["dev/sda"].isblk()
    y = by_name["a/y"]
    assert (y.uid, y.gid, y.mode, y.mtime, y.size) == (1000, 1001, 0o640, M2, 3)
    assert y.pax_headers == {"SCHILY.xattr.user.k": "v"}
    # The byte 0xff is not UTF-8: PAX marks the record binary, tarfile hands it back escaped.
    assert by_name["d"].pax_headers == {"hdrcharset": "BINARY", "SCHILY.xattr.trusted.t": "\udcff"}
    for member in members:
        assert member.uname == "" and member.gname == ""
        assert not {"atime", "ctime"} & member.pax_headers.keys()
        assert not any(key.startswith("SCHILY.xattr.trusted.overlay.") for key in member.pax_headers)


@pytest.mark.requires_root
def test_diff_tar_of_a_hand_made_upper(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "conf").write_bytes(b"c")
    os.mknod(upper / "etc" / "gone", stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(upper / "etc", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "etc", "trusted.overlay.origin", b"\x00\xfb")  # overlay's bookkeeping: left out
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(upper / "sock"))  # a socket cannot be in a tar: skipped
        members = read_members(diff_bytes(upper))
    assert [m.name for m in members] == ["etc", "etc/.wh..wh..opq", "etc/.wh.gone", "etc/conf"]
    assert members[0].pax_headers == {}


@pytest.mark.requires_root
def test_diff_tar_refuses_a_redirected_directory(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(LayerError, match=r"'moved' has trusted\.overlay\.redirect"):
        diff_bytes(upper)


# --- the layers under a real overlayfs --------------------------------------------------


def _check_overlay(lower: Path, upper: Path, merged: Path) -> int:
    """Runs in the forked child: 0 when overlayfs shows the upper layer's whiteouts."""
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("overlay", str(merged), "overlay", linux.MS_RDONLY, f"lowerdir={upper}:{lower}")
    if os.path.lexists(merged / "a" / "x") or not (merged / "a" / "y").exists():
        return 10
    if sorted(os.listdir(merged / "d")) != ["new"]:
        return 11
    return 0


@pytest.mark.requires_root
def test_unpacked_layers_stack_under_overlayfs(tmp_path: Path, layers: Path) -> None:
    lower, _ = unpack_members(
        tmp_path,
        layers,
        [entry("a", "dir"), entry("a/x", data=b"x"), entry("a/y", data=b"y"), entry("d", "dir"), entry("d/keep")],
        name="lower",
    )
    upper, _ = unpack_members(
        tmp_path,
        layers,
        [entry("a", "dir"), entry("a/.wh.x"), entry("d", "dir"), entry("d/.wh..wh..opq"), entry("d/new")],
        name="upper",
    )
    merged = tmp_path / "merged"
    merged.mkdir()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            code = _check_overlay(lower, upper, merged)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "10: a/x still visible, 11: d not opaque, 1: error (see stderr)"
    assert not os.path.ismount(merged)
    with open("/proc/self/mountinfo") as handle:
        assert str(tmp_path) not in handle.read()
