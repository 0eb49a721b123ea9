"""Real and hand-made registries for the distribution tests, and test images.

``DockerRegistry`` runs Debian's ``docker-registry`` (distribution 2.8) on a free
loopback port with its storage in a temporary directory. ``FakeRegistry`` is a
small threaded ``http.server`` serving manifests and blobs from dictionaries,
for what a real registry will not do on demand: bearer-token challenges, bodies
cut short, wrong bytes, 503s, redirects to another origin. Both only listen on
127.0.0.1 and are stopped by their fixtures even when a test fails.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from reconciler.images import oci
from reconciler.images.store import Image, ImageStore

REGISTRY_BINARY = "/usr/bin/docker-registry"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- images ----------------------------------------------------------------


def _add(
    archive: tarfile.TarFile,
    name: str,
    *,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    mode: int = 0o644,
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 1_700_000_000
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def busybox_tar(extra: dict[str, bytes] | None = None) -> bytes:
    """A small root filesystem: /bin/busybox, sh and ls as links, /etc/hostname."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for directory in ("bin", "etc", "tmp"):
            _add(archive, directory, kind=tarfile.DIRTYPE, mode=0o755)
        with open("/bin/busybox", "rb") as handle:
            _add(archive, "bin/busybox", data=handle.read(), mode=0o755)
        for applet in ("sh", "ls"):
            _add(archive, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
        _add(archive, "etc/hostname", data=b"test\n")
        for name, data in (extra or {}).items():
            _add(archive, name, data=data)
    return out.getvalue()


def file_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            _add(archive, name, data=data)
    return out.getvalue()


def make_image(
    store: ImageStore,
    reference: str | None,
    layers: list[bytes],
    *,
    compress: bool = False,
    architecture: str = "amd64",
    labels: dict[str, str] | None = None,
) -> Image:
    """An image of ``layers`` (uncompressed tars) committed straight into the
    store, without unpacking: the diff-ids are computed here."""
    descriptors, diff_ids = [], []
    for tar in layers:
        blob = gzip.compress(tar, compresslevel=1, mtime=0) if compress else tar
        digest = store.content.put(blob)
        descriptors.append(oci.Descriptor(oci.OCI_LAYER_GZIP if compress else oci.OCI_LAYER, digest, len(blob)))
        diff_ids.append(sha256(tar))
    config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return store.commit(config, descriptors, [reference] if reference else [])


def no_ingests(store: ImageStore) -> bool:
    return not os.path.isdir(store.content.ingest_dir) or not os.listdir(store.content.ingest_dir)


# --- the real registry -------------------------------------------------------


@dataclass
class DockerRegistry:
    """``docker-registry serve`` on 127.0.0.1, with an optional htpasswd file."""

    directory: str
    htpasswd: str | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, "registry.log")

    def log(self) -> str:
        with open(self.log_path, errors="replace") as handle:
            return handle.read()

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  accesslog: {disabled: false}",
            "storage:",
            f"  filesystem: {{rootdirectory: {self.directory}/data}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: {self.host}",
            "  secret: test-secret",
        ]
        if self.htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: test", f"    path: {self.htpasswd}"]
        path = os.path.join(self.directory, "config.yml")
        with open(path, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        for _ in range(5):  # a free port can be taken between probing and binding
            self.port = free_port()
            config = self._config()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [REGISTRY_BINARY, "serve", config], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"docker-registry did not start:\n{self.log()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{self.url}/v2/", timeout=1)
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def docker_registry(directory: str, *, htpasswd: str | None = None) -> Iterator[DockerRegistry]:
    os.makedirs(directory, exist_ok=True)
    registry = DockerRegistry(directory, htpasswd=htpasswd)
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry, as ``htpasswd -B`` writes (cost 4: tests are fast)."""
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-nbB", "-C", "4", user, password], check=True, capture_output=True)
        return out.stdout.decode().strip()
    import bcrypt

    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"


# --- the hand-made registry ---------------------------------------------------


@dataclass
class FakeRegistry:
    """Serves ``manifests`` (reference → (bytes, media type)) and ``blobs`` of any
    repository, and misbehaves as told. ``requests`` records (method, path,
    Authorization) of every request."""

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    token: str | None = None  # when set: bearer auth, this token from /token
    token_user: tuple[str, str] | None = None  # when set: /token wants these basic credentials
    truncate: set[str] = field(default_factory=set)  # digests served half, then the connection closed
    corrupt: set[str] = field(default_factory=set)  # digests served with one byte changed
    failures: dict[str, int] = field(default_factory=dict)  # path → how many failures before success
    failure_status: int = 503
    wrong_digest_header: bool = False
    redirect_blobs_to: str | None = None  # base URL blobs are redirected to (…/storage/<digest>)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_image(self, reference: str, manifest: bytes, blobs: dict[str, bytes], media_type: str) -> str:
        digest = sha256(manifest)
        self.manifests[reference] = (manifest, media_type)
        self.manifests[digest] = (manifest, media_type)
        self.blobs.update(blobs)
        return digest

    def add_store_image(self, reference: str, store: ImageStore, image: Image) -> str:
        """Serve an image our store holds under ``reference``."""
        blobs = {d: store.content.read(d) for d in (image.config_digest, *(layer.digest for layer in image.layers))}
        return self.add_image(reference, store.content.read(image.manifest_digest), blobs, oci.OCI_MANIFEST)

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, head=False)

            def do_HEAD(self) -> None:
                fake._handle(self, head=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and path_part in p)

    # the handler's logic, kept here so the tests read one class
    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        head: bool = False,
    ) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _error(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        code: str,
        headers: dict[str, str] | None = None,
        *,
        head: bool = False,
    ) -> None:
        body = json.dumps({"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}).encode()
        self._send(handler, status, body, {"Content-Type": "application/json", **(headers or {})}, head=head)

    def _handle(self, handler: BaseHTTPRequestHandler, *, head: bool) -> None:
        url = urllib.parse.urlsplit(handler.path)
        path = url.path
        auth = handler.headers.get("Authorization", "")
        with self._lock:
            self.requests.append((handler.command, handler.path, auth))
            remaining = self.failures.get(path, 0)
            if remaining:
                self.failures[path] = remaining - 1
        if remaining:
            self._error(handler, self.failure_status, "UNAVAILABLE", {"Retry-After": "0"}, head=head)
            return
        if path == "/token":
            self._token(handler, urllib.parse.parse_qs(url.query))
            return
        if path.startswith("/storage/"):
            self._blob(handler, path.removeprefix("/storage/"), head=head)
            return
        if self.token is not None and auth != f"Bearer {self.token}":
            scope = ""
            parts = path.split("/")
            if len(parts) > 4:
                scope = f',scope="repository:{"/".join(parts[2:-2])}:pull"'
            challenge = f'Bearer realm="http://{self.host}/token",service="fake"{scope}'
            self._error(handler, 401, "UNAUTHORIZED", {"WWW-Authenticate": challenge}, head=head)
            return
        if path == "/v2/":
            self._send(handler, 200, b"{}", {"Content-Type": "application/json"}, head=head)
            return
        parts = path.split("/")
        if len(parts) >= 5 and parts[-2] == "manifests":
            self._manifest(handler, parts[-1], head=head)
        elif len(parts) >= 5 and parts[-2] == "blobs":
            if self.redirect_blobs_to:
                self._send(handler, 307, b"", {"Location": f"{self.redirect_blobs_to}/storage/{parts[-1]}"}, head=head)
            else:
                self._blob(handler, parts[-1], head=head)
        else:
            self._error(handler, 404, "NOT_FOUND", head=head)

    def _token(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        auth = handler.headers.get("Authorization", "")
        with self._lock:
            self.token_requests.append({"query": query, "authorization": auth})
        if self.token_user is not None:
            import base64

            expected = "Basic " + base64.b64encode(":".join(self.token_user).encode()).decode()
            if auth != expected:
                self._error(handler, 401, "UNAUTHORIZED")
                return
        body = json.dumps({"token": self.token, "expires_in": 300}).encode()
        self._send(handler, 200, body, {"Content-Type": "application/json"})

    def _manifest(self, handler: BaseHTTPRequestHandler, reference: str, *, head: bool) -> None:
        found = self.manifests.get(reference)
        if found is None:
            self._error(handler, 404, "MANIFEST_UNKNOWN", head=head)
            return
        data, media_type = found
        digest = sha256(b"wrong" + data) if self.wrong_digest_header else sha256(data)
        self._send(handler, 200, data, {"Content-Type": media_type, "Docker-Content-Digest": digest}, head=head)

    def _blob(self, handler: BaseHTTPRequestHandler, digest: str, *, head: bool) -> None:
        data = self.blobs.get(digest)
        if data is None:
            self._error(handler, 404, "BLOB_UNKNOWN", head=head)
            return
        if digest in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if digest in self.truncate and not head:
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(handler, 200, data, {"Content-Type": "application/octet-stream"}, head=head)


@contextlib.contextmanager
def fake_registry(**options: Any) -> Iterator[FakeRegistry]:
    fake = FakeRegistry(**options)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
