"""``reconcile image save`` / ``image load``: images as one tar file, in the two formats
other engines read and write.

**oci-archive** is a tar of an OCI image layout: ``oci-layout``, ``index.json`` and
``blobs/sha256/<hex>`` for every manifest, config and layer, each blob once however
many images share it. Each ``index.json`` entry carries two names, as Docker and
containerd write them: ``io.containerd.image.name`` with the full name
(``docker.io/library/busybox:latest``) and ``org.opencontainers.image.ref.name`` with
the tag alone (``latest``).

**docker-archive** is what ``docker save`` writes: ``manifest.json``
(``[{"Config": "<hex>.json", "RepoTags": [...], "Layers": ["<hex>/layer.tar"]}]``), the
config bytes, one *uncompressed* tar per layer (named by its diff-id, so a shared layer
is written once) and the legacy ``repositories`` file. A stored gzip or zstd layer is
decompressed on the way out; its size is only known afterwards, so it is spooled
through a temporary file in the store's ingest directory, never held in memory.

Loading reads the tar once, in whatever order its members come (``docker save``
writes ``manifest.json`` last), so it also works from a pipe:

* each member's bytes go to a content-store ingest, hashed as they arrive; a member
  named ``blobs/sha256/<hex>`` must hash to that name. Small JSON documents
  (manifests, configs, ``index.json``) are also kept in memory to be parsed.
* Once the whole tar is read, the format is chosen (``oci-layout`` + ``index.json``
  wins over ``manifest.json``, so Docker 25's combined archives load as OCI), every
  image is checked (blobs present, sizes, config diff-ids against layer count, and
  against the digest of every uncompressed layer), and only then are the blobs the
  images need committed. The ingests of everything else are dropped.
* A docker-archive image gets a new OCI manifest around the archive's config bytes,
  kept byte for byte so the image ID (the config digest) stays the archive's.
* Layers are unpacked (``ImageStore.snapshot``, which checks each diff-id) and only
  then are tags written. A failure at any step therefore leaves no new tag and no
  ingest file; blobs already committed are verified, content-addressed and left for
  garbage collection.

Names on load (the ``tag`` argument of ``load``):

* an entry's ``io.containerd.image.name``, or a docker ``RepoTags`` entry, is used as
  it is, written the short way (``docker.io/library/busybox:1`` → ``busybox:1``) as
  users type names and as the store keys them;
* an ``org.opencontainers.image.ref.name`` with ``/`` or ``:`` is a full name, as
  skopeo writes ``oci-archive:out.tar:name:tag``; a bare one (``1.0``) is a tag, as the
  image-layout spec intends, and needs a repository from ``tag``;
* ``tag`` names what the archive does not: ``tag="repo"`` is a repository (bare
  ``1.0`` → ``repo:1.0``, an unnamed image → ``repo:latest``, containerd's
  ``--base-name``); ``tag="repo:t"`` is the full name of the archive's one image that
  has no full name. Images that have full names keep them and do not get ``tag``.
  Two different images ending up with one name is an error, unless they are platforms
  of one image, when the host's platform wins.
* An image left without a name is loaded untagged and its ID returned.

An ``index.json`` entry that is itself an index (a multi-platform image) loads every
platform whose blobs are all in the archive; its name goes to the host's platform (or
to the only complete one), which alone is unpacked. The other platforms' blobs are
stored untagged, reachable as ``name@digest`` until garbage collection.

Hostile or corrupt archives fail with ArchiveError naming the archive and the cause:
not a tar, truncated, member names that are absolute or contain ``..``, a blob whose
bytes do not match its name, files ``manifest.json`` or ``index.json`` name but the
archive lacks. Link members are refused in OCI archives. A docker-archive may alias
layer tars with symlinks inside the archive (``docker save`` before Docker 25 and
skopeo both do); those are resolved by name, never on disk, and one pointing outside
the archive is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import os
import posixpath
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Literal

from reconciler.images import oci
from reconciler.images.content import BlobError, Ingest
from reconciler.images.store import Image, ImageError, ImageStore, normalize
from reconciler.model.reference import DEFAULT_REGISTRY, Reference, parse_reference

Format = Literal["oci-archive", "docker-archive"]
FORMATS: tuple[Format, ...] = ("oci-archive", "docker-archive")

OCI_LAYOUT = "oci-layout"
OCI_INDEX = "index.json"
DOCKER_MANIFEST = "manifest.json"
DOCKER_REPOSITORIES = "repositories"
LAYOUT_VERSION = "1.0.0"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
_BLOB_NAME = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
_CONFIG_NAME = re.compile(r"^([0-9a-f]{64})\.json$")
_CHUNK = 1 << 20
#: Members up to this size are read into memory in one go (small layers, VERSION files).
_SMALL = 64 << 10
#: JSON-looking members up to this size are kept in memory to be parsed, up to
#: _KEPT_TOTAL bytes in all: an archive's metadata is small, a hostile one is refused.
_DOCUMENT_MAX = 4 << 20
_KEPT_TOTAL = 64 << 20
#: How deep a chain of link members may go (a loop is refused by this, too).
_LINK_DEPTH = 8


class ArchiveError(Exception):
    """The archive could not be written or loaded; the message names the archive and the cause."""


# --- names -----------------------------------------------------------------------


def qualified(reference: str) -> str:
    """The full name Docker and containerd write: ``busybox:1`` → ``docker.io/library/busybox:1``."""
    parsed = parse_reference(normalize(reference))
    registry = parsed.registry or DEFAULT_REGISTRY
    repository = parsed.repository
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    return str(Reference(registry, repository, parsed.tag, parsed.digest))


def familiar(reference: str) -> str:
    """The name the way users type it and the store keys it: ``docker.io/library/busybox``
    → ``busybox:latest``. ValueError for an invalid reference."""
    parsed = parse_reference(reference)
    registry, repository = parsed.registry, parsed.repository
    if registry in _HUB_ALIASES:
        registry = None
        repository = repository.removeprefix("library/") if repository.count("/") == 1 else repository
    return normalize(str(Reference(registry, repository, parsed.tag, parsed.digest)))


def _repository(reference: str) -> str:
    parsed = parse_reference(reference)
    return f"{parsed.registry}/{parsed.repository}" if parsed.registry else parsed.repository


def _label(target: BinaryIO | str) -> str:
    if isinstance(target, str):
        return target
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else "<stream>"


# --- save ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Saved:
    """One reference to save: the image, and its tag when the reference was one."""

    name: str | None
    image: Image
    manifest_size: int


def save(
    store: ImageStore,
    references: list[str],
    out: BinaryIO | str,
    *,
    format: Format = "oci-archive",
) -> None:
    """Write the images ``references`` name to ``out`` (a path, written atomically, or a
    binary stream, which need not be seekable) as one archive in ``format``."""
    label = _label(out)
    if format not in FORMATS:
        raise ArchiveError(f"{label}: unknown archive format {format!r} (use {' or '.join(FORMATS)})")
    saved = _resolve(store, references, label)
    if isinstance(out, str):
        _save_to_path(store, saved, out, format)
    else:
        _write(store, saved, out, format, label)


def _resolve(store: ImageStore, references: list[str], label: str) -> list[_Saved]:
    if not references:
        raise ArchiveError(f"{label}: no image to save")
    refs = store.refs()
    saved: list[_Saved] = []
    for reference in references:
        try:
            image = store.image_by_digest(store.resolve(reference))
            size = store.content.size(image.manifest_digest)
        except (ImageError, BlobError, ValueError) as exc:
            raise ArchiveError(f"{label}: cannot save {reference}: {exc}") from None
        name = normalize(reference) if normalize(reference) in refs and "@" not in reference else None
        saved.append(_Saved(name, image, size))
    return saved


def _save_to_path(store: ImageStore, saved: list[_Saved], path: str, format: Format) -> None:
    """Write next to ``path`` and rename, so ``path`` is never half an archive."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
            dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp", delete=False
        )
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with handle:
            _write(store, saved, handle, format, path)  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise


def _write(store: ImageStore, saved: list[_Saved], out: BinaryIO, format: Format, label: str) -> None:
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            writer = _TarWriter(store, tar, label)
            if format == "oci-archive":
                writer.write_oci(saved)
            else:
                writer.write_docker(saved)
    except (OSError, BlobError, ValueError, zlib.error, EOFError) as exc:
        raise ArchiveError(f"{label}: cannot write the archive: {exc}") from exc


class _HashingReader(io.RawIOBase):
    """A source read through, hashed: what was written is checked after writing it."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source
        self.hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self.hash.update(data)
        self.size += len(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _TarWriter:
    """Writes members with fixed owners, modes and times: the same images give the same archive."""

    def __init__(self, store: ImageStore, tar: tarfile.TarFile, label: str) -> None:
        self.store = store
        self.tar = tar
        self.label = label
        self.written: set[str] = set()

    def _info(self, name: str, *, directory: bool = False) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mode = 0o755 if directory else 0o644
        info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        info.uname = info.gname = ""
        return info

    def _add(self, info: tarfile.TarInfo, data: BinaryIO | None = None) -> None:
        self.tar.addfile(info, data)
        self.tar.members.clear()  # type: ignore[attr-defined]  # tarfile keeps every header otherwise

    def directory(self, name: str) -> None:
        self._add(self._info(name, directory=True))

    def document(self, name: str, data: bytes) -> None:
        info = self._info(name)
        info.size = len(data)
        self._add(info, io.BytesIO(data))

    def blob(self, name: str, digest: str, expected: str | None = None) -> None:
        """Copy a stored blob, checking on the way that it still hashes to ``digest``."""
        info = self._info(name)
        with self.store.content.open(digest) as source:
            info.size = os.fstat(source.fileno()).st_size
            reader = _HashingReader(source)
            self._add(info, reader)  # type: ignore[arg-type]
        if reader.digest != digest:
            raise ArchiveError(f"{self.label}: stored blob {digest} is corrupt (it hashes to {reader.digest})")
        if expected is not None and reader.digest != expected:
            raise ArchiveError(f"{self.label}: layer {digest} is not the layer {expected} its image config names")

    # OCI ---------------------------------------------------------------------

    def write_oci(self, saved: list[_Saved]) -> None:
        entries: list[dict[str, Any]] = []
        for item in saved:
            annotations = None
            if item.name is not None:
                annotations = {
                    ANNOTATION_IMAGE_NAME: qualified(item.name),
                    ANNOTATION_REF_NAME: parse_reference(item.name).tag or "latest",
                }
            descriptor = oci.Descriptor(
                item.image.manifest_media_type, item.image.manifest_digest, item.manifest_size, annotations=annotations
            ).to_json()
            if descriptor not in entries:
                entries.append(descriptor)
        index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": entries}
        self.document(OCI_LAYOUT, oci.canonical({"imageLayoutVersion": LAYOUT_VERSION}))
        self.document(OCI_INDEX, oci.canonical(index))
        self.directory("blobs/")
        self.directory("blobs/sha256/")
        for item in saved:
            image = item.image
            for digest in (image.manifest_digest, image.config_digest, *(layer.digest for layer in image.layers)):
                if digest not in self.written:
                    self.blob("blobs/sha256/" + digest.removeprefix("sha256:"), digest)
                    self.written.add(digest)

    # Docker ------------------------------------------------------------------

    def write_docker(self, saved: list[_Saved]) -> None:
        by_id: dict[str, tuple[Image, list[str]]] = {}
        for item in saved:
            image, tags = by_id.setdefault(item.image.id, (item.image, []))
            if item.name is not None and item.name not in tags:
                tags.append(item.name)
        manifest = []
        repositories: dict[str, dict[str, str]] = {}
        for image, tags in by_id.values():
            paths = [f"{diff_id.removeprefix('sha256:')}/layer.tar" for diff_id in image.diff_ids]
            config_name = f"{image.id.removeprefix('sha256:')}.json"
            manifest.append({"Config": config_name, "RepoTags": tags, "Layers": paths})
            for tag in tags:
                top = image.diff_ids[-1].removeprefix("sha256:") if image.diff_ids else ""
                repositories.setdefault(_repository(tag), {})[parse_reference(tag).tag or "latest"] = top
        self.document(DOCKER_MANIFEST, json.dumps(manifest, separators=(",", ":")).encode())
        self.document(DOCKER_REPOSITORIES, json.dumps(repositories, separators=(",", ":"), sort_keys=True).encode())
        for image, _ in by_id.values():
            if image.id not in self.written:
                self.blob(f"{image.id.removeprefix('sha256:')}.json", image.id)
                self.written.add(image.id)
        for image, _ in by_id.values():
            for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
                if diff_id not in self.written:
                    self.directory(f"{diff_id.removeprefix('sha256:')}/")
                    self.layer_tar(f"{diff_id.removeprefix('sha256:')}/layer.tar", layer, diff_id)
                    self.written.add(diff_id)

    def layer_tar(self, name: str, layer: oci.Descriptor, diff_id: str) -> None:
        """A layer as a plain tar: copied when stored so, else decompressed through a spool file."""
        with self.store.content.open(layer.digest) as probe:
            head = probe.read(4)
        if oci.layer_media_type(head) == oci.OCI_LAYER:
            self.blob(name, layer.digest, expected=diff_id)
            return
        import zstandard

        from reconciler.images import layerfs  # only a compressed layer needs it

        os.makedirs(self.store.content.ingest_dir, exist_ok=True)
        # Named like an ingest ("<pid>-..."), so clean_ingests removes it if we die.
        with tempfile.TemporaryFile(dir=self.store.content.ingest_dir, prefix=f"{os.getpid()}-spool-") as spool:
            digest = hashlib.sha256()
            try:
                with layerfs.open_layer(self.store.content.path(layer.digest)) as stream:
                    for chunk in iter(lambda: stream.read(_CHUNK), b""):
                        digest.update(chunk)
                        spool.write(chunk)
            except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
                raise ArchiveError(f"{self.label}: cannot decompress layer {layer.digest}: {exc}") from None
            if "sha256:" + digest.hexdigest() != diff_id:
                raise ArchiveError(
                    f"{self.label}: layer {layer.digest} decompresses to sha256:{digest.hexdigest()}, "
                    f"but its image config says {diff_id}"
                )
            info = self._info(name)
            info.size = spool.tell()
            spool.seek(0)
            self._add(info, spool)


# --- load: reading the tar -------------------------------------------------------


class _Missing(ArchiveError):
    """A file the archive's metadata names is not in it."""


def _member_name(raw: str) -> str:
    """``./a//b`` → ``a/b``; ValueError for a name that is absolute or has ``..``."""
    if raw.startswith("/"):
        raise ValueError(f"{raw!r} is an absolute name")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{raw!r} has '..' in its name")
    return "/".join(parts)


@dataclass
class _Member:
    """A regular file of the archive, read: where its bytes are, and what they hash to."""

    name: str
    size: int
    digest: str
    head: bytes
    data: bytes | None = None  # kept for small members and JSON documents
    ingest: Ingest | None = None  # written, not committed; None when in data or already in the store


@dataclass
class _Reader:
    """One pass over an archive's members, in stream order."""

    store: ImageStore
    label: str
    members: dict[str, _Member] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # member name → the name it points at
    kept: int = 0
    count: int = 0

    def fail(self, message: str) -> ArchiveError:
        return ArchiveError(f"{self.label}: {message}")

    def name(self, raw: str, what: str) -> str:
        try:
            return _member_name(raw)
        except ValueError as exc:
            raise self.fail(f"{what} {exc}") from None

    def read(self, tar: tarfile.TarFile) -> None:
        while (member := tar.next()) is not None:
            tar.members.clear()  # type: ignore[attr-defined]  # tarfile keeps every header otherwise
            self.count += 1
            name = self.name(member.name, "member")
            if not name or member.isdir():
                continue
            if name in self.members or name in self.links:
                raise self.fail(f"member {name!r} appears twice")
            if member.issym() or member.islnk():
                self.links[name] = self._link_target(name, member)
            elif member.isreg():
                self.members[name] = self._regular(tar, member, name)
            else:
                raise self.fail(f"member {name!r} is not a regular file, directory or link")

    def _link_target(self, name: str, member: tarfile.TarInfo) -> str:
        """The archive name a link member points at; a link out of the archive is refused."""
        linkname = member.linkname
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, linkname)) if linkname else ""
        if linkname.startswith("/") or target.startswith("../") or target in ("", ".", ".."):
            raise self.fail(f"member {name!r} links to {linkname!r}, outside the archive")
        return target

    def _regular(self, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> _Member:
        """Small members and JSON documents are read into memory; the rest streams to an ingest."""
        source = tar.extractfile(member)
        if source is None:
            raise self.fail(f"member {name!r} has no data")
        blob = _BLOB_NAME.match(name)
        expected = f"sha256:{blob.group(1)}" if blob else None
        with source:
            first = b""
            if member.size <= _DOCUMENT_MAX:
                first = source.read(min(member.size, _SMALL))
                if member.size <= _SMALL or first.lstrip()[:1] in (b"{", b"["):
                    return self._keep(name, first + source.read(), member.size, expected)
            return self._ingest(name, source, member.size, expected, first=first)

    def _keep(self, name: str, data: bytes, size: int, expected: str | None) -> _Member:
        self._check_size(name, len(data), size)
        self.kept += len(data)
        if self.kept > _KEPT_TOTAL:
            raise self.fail(f"more than {_KEPT_TOTAL >> 20} MiB of small files and JSON documents")
        digest = oci.sha256(data)
        self._check_digest(name, digest, expected)
        return _Member(name, size, digest, data[:8], data=data)

    def _ingest(self, name: str, source: IO[bytes], size: int, expected: str | None, *, first: bytes) -> _Member:
        """Stream a member into a content-store ingest, or only hash it when the store
        already has the blob its name promises."""
        hasher = hashlib.sha256()
        ingest = None if expected is not None and self.store.content.has(expected) else self.store.content.writer()
        total = 0
        try:
            chunk = first or source.read(_CHUNK)
            head = chunk[:8]
            while chunk:
                hasher.update(chunk)
                total += len(chunk)
                if ingest is not None:
                    ingest.write(chunk)
                chunk = source.read(_CHUNK)
            self._check_size(name, total, size)
            digest = "sha256:" + hasher.hexdigest()
            self._check_digest(name, digest, expected)
        except BaseException:
            if ingest is not None:
                ingest.abort()
            raise
        return _Member(name, size, digest, head, ingest=ingest)

    def _check_size(self, name: str, found: int, size: int) -> None:
        if found != size:
            raise self.fail(f"member {name!r} has {found} bytes, its header says {size} (truncated?)")

    def _check_digest(self, name: str, digest: str, expected: str | None) -> None:
        if expected is not None and digest != expected:
            raise self.fail(f"blob {name!r} does not match its name: its content hashes to {digest}")

    def resolve(self, name: str, *, referrer: str, follow: bool = True) -> _Member:
        """The member ``name`` means, following links when ``follow``; ``referrer`` says who named it."""
        seen = name
        for _ in range(_LINK_DEPTH):
            if name in self.members:
                return self.members[name]
            if name in self.links and not follow:
                raise self.fail(f"{referrer} names {seen!r}, which is a link: an OCI layout has only regular files")
            if name not in self.links:
                raise _Missing(f"{self.label}: {referrer} names {seen!r}, which is not in the archive")
            name = self.links[name]
        raise self.fail(f"{referrer} names {seen!r}, a chain of more than {_LINK_DEPTH} links")

    def document(self, name: str, referrer: str) -> Any:
        """A JSON member, parsed."""
        member = self.resolve(name, referrer=referrer)
        if member.data is None:
            raise self.fail(f"{name!r} is not a JSON document of at most {_DOCUMENT_MAX >> 20} MiB")
        try:
            return json.loads(member.data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise self.fail(f"{name!r} is not valid JSON: {exc}") from None

    def close(self) -> None:
        """Drop every ingest not committed: nothing the load did not use stays behind."""
        for member in self.members.values():
            if member.ingest is not None and member.ingest.committed is None:
                member.ingest.abort()


# --- load: the images in it ------------------------------------------------------


@dataclass
class _Candidate:
    """An image found in the archive, checked, not yet stored."""

    manifest_digest: str
    platform: dict[str, str]
    blobs: dict[str, _Member]  # digest → member with its bytes (manifest, config, layers)
    manifest_bytes: bytes | None = None  # a manifest we made (docker-archive), not from the archive
    names: list[str] = field(default_factory=list)
    bare_tag: str | None = None  # a ref.name annotation that is only a tag
    unpack: bool = True


@dataclass(frozen=True)
class _TagPolicy:
    """What ``load(tag=...)`` adds: see the module docstring."""

    repository: str | None = None
    full: str | None = None

    @classmethod
    def parse(cls, tag: str | None, label: str) -> _TagPolicy:
        if tag is None:
            return cls()
        try:
            parsed = parse_reference(tag)
        except ValueError as exc:
            raise ArchiveError(f"{label}: {exc}") from None
        if parsed.digest:
            raise ArchiveError(f"{label}: cannot tag a loaded image with a digest reference {tag!r}")
        if parsed.tag:
            return cls(full=familiar(tag))
        return cls(repository=_repository(familiar(tag)))

    def names(self, candidate: _Candidate) -> list[str]:
        if candidate.names:
            return candidate.names
        if self.full is not None:
            return [self.full]
        if self.repository is not None:
            return [familiar(f"{self.repository}:{candidate.bare_tag or 'latest'}")]
        return []


def _matches(found: dict[str, str], wanted: dict[str, str]) -> bool:
    if found.get("os") != wanted["os"] or found.get("architecture") != wanted["architecture"]:
        return False
    return not ("variant" in found and "variant" in wanted and found["variant"] != wanted["variant"])


def _describe(platform: dict[str, str]) -> str:
    return "/".join(filter(None, (platform.get("os"), platform.get("architecture"), platform.get("variant"))))


def _config_platform(config: dict[str, Any]) -> dict[str, str]:
    return {key: str(config[key]) for key in ("os", "architecture", "variant") if isinstance(config.get(key), str)}


class _Loader:
    def __init__(self, reader: _Reader, policy: _TagPolicy) -> None:
        self.reader = reader
        self.store = reader.store
        self.policy = policy
        self.fail = reader.fail

    # checking one image ---------------------------------------------------

    def _blob(self, descriptor: oci.Descriptor, referrer: str) -> _Member:
        if not _BLOB_NAME.match("blobs/" + descriptor.digest.replace(":", "/")):
            raise self.fail(f"{referrer} names {descriptor.digest!r}: only sha256 digests are supported")
        name = "blobs/sha256/" + descriptor.digest.removeprefix("sha256:")
        member = self.reader.resolve(name, referrer=referrer, follow=False)
        if member.size != descriptor.size:
            raise self.fail(f"blob {descriptor.digest} has {member.size} bytes, {referrer} says {descriptor.size}")
        return member

    def _json_blob(self, descriptor: oci.Descriptor, referrer: str, what: str) -> dict[str, Any]:
        member = self._blob(descriptor, referrer)
        if member.data is None:
            raise self.fail(f"{what} {descriptor.digest} is not a JSON document of at most {_DOCUMENT_MAX >> 20} MiB")
        try:
            return oci.load(member.data, f"{what} {descriptor.digest}")
        except oci.ManifestError as exc:
            raise self.fail(str(exc)) from None
        except RecursionError:  # hostile nesting; json has no depth limit of its own
            raise self.fail(f"{what} {descriptor.digest} is nested too deeply") from None

    def _oci_image(self, descriptor: oci.Descriptor, referrer: str) -> _Candidate:
        manifest = self._json_blob(descriptor, referrer, "manifest")
        what = f"manifest {descriptor.digest}"
        if oci.media_type_of(manifest, descriptor.media_type) not in oci.MANIFESTS:
            raise self.fail(f"{what} is not an image manifest")
        try:
            config_descriptor, layers = oci.manifest_parts(manifest)
        except oci.ManifestError as exc:
            raise self.fail(f"{what}: {exc}") from None
        config = self._json_blob(config_descriptor, what, "image config")
        diff_ids = self._diff_ids(config, len(layers), f"image config {config_descriptor.digest}")
        blobs = {
            descriptor.digest: self._blob(descriptor, referrer),
            config_descriptor.digest: self._blob(config_descriptor, what),
        }
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            member = self._blob(layer, what)
            self._check_layer(member, layer.digest, diff_id)
            blobs[layer.digest] = member
        platform = descriptor.platform if isinstance(descriptor.platform, dict) else _config_platform(config)
        return _Candidate(descriptor.digest, platform, blobs)

    def _diff_ids(self, config: dict[str, Any], layers: int, what: str) -> list[str]:
        rootfs = config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
            raise self.fail(f"{what} has no rootfs.diff_ids list")
        if len(diff_ids) != layers:
            raise self.fail(f"{what} lists {len(diff_ids)} diff-ids for {layers} layers")
        return diff_ids

    def _check_layer(self, member: _Member, name: str, diff_id: str) -> None:
        """An uncompressed layer's digest is its diff-id; a compressed one's is checked on unpack."""
        if oci.layer_media_type(member.head) == oci.OCI_LAYER and member.digest != diff_id:
            raise self.fail(f"layer {name} hashes to {member.digest}, but its image config says {diff_id}")

    # OCI archive ----------------------------------------------------------

    def oci_images(self) -> list[_Candidate]:
        if OCI_LAYOUT not in self.reader.members:
            raise self.fail(f"it has {OCI_INDEX} but no {OCI_LAYOUT} file: not an OCI image layout")
        layout = self.reader.document(OCI_LAYOUT, "the archive")
        if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")).startswith("1."):
            raise self.fail(f"{OCI_LAYOUT} has an unsupported imageLayoutVersion (expected {LAYOUT_VERSION})")
        index = self.reader.document(OCI_INDEX, "the archive")
        entries = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(entries, list) or not entries:
            raise self.fail(f"{OCI_INDEX} lists no manifests")
        found: list[_Candidate] = []
        for raw in entries:
            if not isinstance(raw, dict):
                raise self.fail(f"{OCI_INDEX} has a malformed entry {raw!r}")
            try:
                descriptor = oci.Descriptor.from_json(raw)
            except oci.ManifestError as exc:
                raise self.fail(f"{OCI_INDEX}: {exc}") from None
            found += self._oci_entry(descriptor)
        return found

    def _oci_entry(self, descriptor: oci.Descriptor) -> list[_Candidate]:
        annotations = descriptor.annotations if isinstance(descriptor.annotations, dict) else {}
        names, bare = self._annotation_names(annotations)
        document = self._json_blob(descriptor, OCI_INDEX, "manifest")
        if oci.media_type_of(document, descriptor.media_type) not in oci.INDEXES:
            candidate = self._oci_image(descriptor, OCI_INDEX)
            candidate.names, candidate.bare_tag = names, bare
            return [candidate]
        children = self._platforms(descriptor, document)
        chosen = self._host_choice(children, f"index {descriptor.digest}")
        for child in children:
            child.unpack = child is chosen
        chosen.names, chosen.bare_tag = names, bare
        return children

    def _platforms(self, descriptor: oci.Descriptor, index: dict[str, Any]) -> list[_Candidate]:
        """The platforms of a multi-platform index whose blobs are all in the archive."""
        what = f"index {descriptor.digest}"
        children: list[_Candidate] = []
        for raw in index.get("manifests") or []:
            try:
                child = oci.Descriptor.from_json(raw) if isinstance(raw, dict) else None
            except oci.ManifestError:
                child = None
            if child is None or child.media_type in oci.INDEXES:
                continue
            with contextlib.suppress(_Missing):  # a platform left out of the archive, as docker does
                children.append(self._oci_image(child, what))
        if not children:
            raise self.fail(f"{what} has no image whose blobs are all in the archive")
        return children

    def _annotation_names(self, annotations: dict[str, Any]) -> tuple[list[str], str | None]:
        """Full names, and a bare tag when the entry has only that."""
        full = annotations.get(ANNOTATION_IMAGE_NAME)
        ref_name = annotations.get(ANNOTATION_REF_NAME)
        if isinstance(full, str) and full:
            return [self._name(full)], None
        if isinstance(ref_name, str) and ("/" in ref_name or ":" in ref_name):
            return [self._name(ref_name)], None
        if isinstance(ref_name, str) and ref_name:
            try:
                parse_reference(f"name:{ref_name}")
            except ValueError:
                raise self.fail(f"{OCI_INDEX} has an invalid tag {ref_name!r} in {ANNOTATION_REF_NAME}") from None
            return [], ref_name
        return [], None

    def _name(self, value: str) -> str:
        try:
            name = familiar(value)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        if "@" in name:
            raise self.fail(f"the image name {value!r} is a digest reference, not a tag")
        return name

    # docker-archive -------------------------------------------------------

    def docker_images(self) -> list[_Candidate]:
        manifest = self.reader.document(DOCKER_MANIFEST, "the archive")
        if not isinstance(manifest, list) or not manifest:
            raise self.fail(f"{DOCKER_MANIFEST} lists no images")
        return [self._docker_image(item, position) for position, item in enumerate(manifest)]

    def _docker_image(self, item: Any, position: int) -> _Candidate:
        what = f"{DOCKER_MANIFEST} entry {position}"
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise self.fail(f"{what} has no Config")
        layer_paths = item.get("Layers")
        if not isinstance(layer_paths, list) or not all(isinstance(p, str) for p in layer_paths):
            raise self.fail(f"{what} has no Layers list")
        tags = item.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise self.fail(f"{what} has a malformed RepoTags")
        config_name = self.reader.name(item["Config"], f"{what} Config")
        config_member = self.reader.resolve(config_name, referrer=what)
        named = _CONFIG_NAME.match(config_name) or _BLOB_NAME.match(config_name)
        if named and config_member.digest != f"sha256:{named.group(1)}":
            raise self.fail(f"config {config_name!r} does not match its name: it hashes to {config_member.digest}")
        config = self.reader.document(config_name, what)
        if not isinstance(config, dict) or config_member.data is None:
            raise self.fail(f"config {config_name!r} is not a JSON object")
        diff_ids = self._diff_ids(config, len(layer_paths), f"config {config_name!r}")
        config_descriptor = oci.Descriptor(oci.OCI_CONFIG, config_member.digest, config_member.size)
        blobs = {config_member.digest: config_member}
        layers: list[oci.Descriptor] = []
        for path, diff_id in zip(layer_paths, diff_ids, strict=True):
            member = self.reader.resolve(self.reader.name(path, f"{what} layer"), referrer=what)
            self._check_layer(member, repr(path), diff_id)
            layers.append(oci.Descriptor(oci.layer_media_type(member.head), member.digest, member.size))
            blobs[member.digest] = member
        manifest_bytes = oci.new_manifest(config_descriptor, layers)
        return _Candidate(
            oci.sha256(manifest_bytes),
            _config_platform(config),
            blobs,
            manifest_bytes=manifest_bytes,
            names=[self._name(tag) for tag in tags],
        )

    # choosing, storing, tagging --------------------------------------------

    def _host_choice(self, candidates: list[_Candidate], what: str) -> _Candidate:
        distinct = list({c.manifest_digest: c for c in candidates}.values())
        if len(distinct) == 1:
            return distinct[0]
        matching = [c for c in distinct if _matches(c.platform, oci.host_platform())]
        if len(matching) == 1:
            return matching[0]
        platforms = ", ".join(_describe(c.platform) or "unknown platform" for c in distinct)
        raise self.fail(
            f"{what}: {len(distinct)} different images ({platforms}), "
            f"{'several' if matching else 'none'} for this host's platform {_describe(oci.host_platform())}"
        )

    def tags(self, candidates: list[_Candidate]) -> dict[str, _Candidate]:
        """Each name and the one image it goes to."""
        wanted: dict[str, list[_Candidate]] = {}
        for candidate in candidates:
            if candidate.unpack:
                for name in self.policy.names(candidate):
                    wanted.setdefault(name, []).append(candidate)
        return {name: self._host_choice(group, f"the name {name}") for name, group in wanted.items()}

    def commit(self, candidates: list[_Candidate]) -> None:
        done: set[str] = set()
        for candidate in candidates:
            for digest, member in candidate.blobs.items():
                if digest not in done:
                    self._commit(digest, member)
                    done.add(digest)
            if candidate.manifest_bytes is not None:
                self.store.content.put(candidate.manifest_bytes, candidate.manifest_digest)

    def _commit(self, digest: str, member: _Member) -> None:
        if self.store.content.has(digest):
            return
        if member.data is not None:
            self.store.content.put(member.data, digest)
        elif member.ingest is not None and member.ingest.committed is None:
            member.ingest.commit(digest, member.size)
        elif member.ingest is None:
            raise self.fail(f"blob {digest} left the store while the archive was read; load again")

    def unpack(self, candidate: _Candidate) -> Image:
        try:
            image = self.store.image_by_digest(candidate.manifest_digest)
            for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
                self.store.snapshot(layer, diff_id)
        except ImageError as exc:
            raise self.fail(str(exc)) from None
        return image


def load(store: ImageStore, source: BinaryIO | str, *, tag: str | None = None) -> list[str]:
    """Load every image of an oci-archive or docker-archive (the format is detected) from
    ``source`` (a path or a binary stream, which need not be seekable); the references
    tagged, then the image ID of each image left without a name."""
    label = _label(source)
    policy = _TagPolicy.parse(tag, label)
    reader = _Reader(store, label)
    try:
        with _opened(source, label) as handle:
            _read(reader, handle)
        loader = _Loader(reader, policy)
        if OCI_INDEX in reader.members and (OCI_LAYOUT in reader.members or DOCKER_MANIFEST not in reader.members):
            candidates = loader.oci_images()
        elif DOCKER_MANIFEST in reader.members:
            candidates = loader.docker_images()
        else:
            raise reader.fail(f"not an image archive (it has neither {OCI_INDEX} nor {DOCKER_MANIFEST})")
        names = loader.tags(candidates)
        loader.commit(candidates)
        images = {c.manifest_digest: loader.unpack(c) for c in candidates if c.unpack}
        result: list[str] = []
        for name, candidate in names.items():
            store.tag(name, candidate.manifest_digest, source=f"archive {label}")
            result.append(name)
        named = {c.manifest_digest for c in names.values()}
        result += [image.id for digest, image in images.items() if digest not in named]
        return list(dict.fromkeys(result))
    except (BlobError, ImageError, OSError) as exc:
        raise ArchiveError(f"{label}: {exc}") from exc
    finally:
        reader.close()


@contextlib.contextmanager
def _opened(source: BinaryIO | str, label: str) -> Iterator[BinaryIO]:
    if not isinstance(source, str):
        yield source
        return
    try:
        handle = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ArchiveError(f"{label}: cannot open: {exc.strerror}") from None
    with handle:
        yield handle


def _read(reader: _Reader, handle: BinaryIO) -> None:
    try:
        with tarfile.open(fileobj=handle, mode="r|*") as tar:
            reader.read(tar)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        if reader.count == 0:
            raise reader.fail(f"not a tar archive ({exc})") from None
        raise reader.fail(f"the archive is corrupt or truncated ({exc})") from None
