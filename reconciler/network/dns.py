"""The embedded DNS server: container names for containers, the host's resolvers for the rest.

Docker's embedded DNS (``127.0.0.11`` inside each container) in our shape: one server
process on the host listens on every network's *gateway* address, port 53, UDP and
TCP, and the container's ``resolv.conf`` names that gateway. The answer depends on
who asks (see ``dns_records``): a client on network N sees the names on N only, and
everything else is forwarded to the upstream resolvers.

Answers, Docker's where the issue is silent:

- ``A`` for a known name: its addresses, shuffled on every answer (round robin over a
  service's replicas), TTL 600 as Docker's; authoritative, recursion available.
- ``AAAA`` (or ``MX``, ``TXT`` …) for a known name: an empty ``NOERROR`` (no IPv6 on
  our networks), never forwarded: an upstream ``NXDOMAIN`` would tell the client's
  cache the name does not exist at all.
- ``PTR`` for a container address on one of the client's networks:
  ``CONTAINER.NETWORK.``; other reverse names are forwarded.
- An unknown name is forwarded, unchanged (EDNS, DNSSEC bits and ID as the client sent
  them), over the protocol the client used; a truncated UDP answer reaches the client,
  which retries over TCP and so makes us forward over TCP. Each upstream gets
  ``timeout`` seconds, the list is tried ``attempts`` times (the first try and one
  retry); an upstream answering ``SERVFAIL`` or ``REFUSED`` counts as failed and the
  next is tried, as Docker does. When all fail the client gets ``SERVFAIL``.
- A client only on internal networks, or on none of ours, gets ``REFUSED`` (recursion
  not available) for unknown names: nothing leaves an internal network through us
  (CVE-2024-29018), and we are no open resolver.
- A local answer larger than the client's UDP size (512, or its EDNS size up to 1232)
  is sent truncated (TC, question kept: glibc discards a reply without it), and the
  client retries over TCP.

Upstreams default to the ``nameserver`` lines of the host's ``/etc/resolv.conf``,
loopback ones *included*: the forwarder runs in the host's network namespace, where
systemd-resolved's ``127.0.0.53`` is reachable (Docker forwards from the host
namespace for the same reason). No nameserver line means ``127.0.0.1``, as for glibc.
Our own listening addresses are never used as upstreams (no forwarding loop).

Listeners bind with ``IP_FREEBIND``: the daemon can listen on a gateway address before
the link layer has put it on the bridge, and keeps its sockets if the bridge is
recreated.

Why dnslib: it brings a small server framework (socketserver UDP/TCP servers with the
TCP length framing and a resolver interface) and record builders (``RR``, ``A``,
``PTR``, ``EDNS0``), which is what a custom server needs; dnspython is a larger,
client-oriented toolkit without a server. Neither ships type stubs, so the dnslib
objects are ``Any`` here.

The daemon: ``python -m reconciler.network.dns --root ROOT``, started on demand by
``ensure_daemon(root)`` when the first network is created. It serves every gateway
address in ``ROOT/state.db`` and follows the database: new networks get listeners,
deleted ones lose them, new containers resolve at once (the records re-read the
database when it changed). ``ROOT/dns.pid`` holds its pid under a POSIX record lock
for its lifetime: the lock, not the file's existence, says it runs (a file left by a
killed daemon is stale and harmless), and ``F_GETLK`` names the holder without taking
the lock, so checking never races a starting daemon. SIGTERM stops it cleanly
(sockets closed, pid file removed). Its log goes to ``ROOT/dns.log``.

Importing this module imports dnslib; the engine imports it only when networks are in
use, so ``reconcile run`` without networks never pays for it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import ipaddress
import logging
import os
import pathlib
import random
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from ipaddress import IPv4Address
from typing import Any

import dnslib  # type: ignore[import-untyped]
from dnslib import server as dnslib_server

from reconciler.network import dns_records

log = logging.getLogger(__name__)

Address = tuple[str, int]

TTL = 600  # seconds, Docker's embedded DNS's TTL
TIMEOUT = 2.0  # seconds per upstream try: two rounds fit glibc's 5 s query timeout
ATTEMPTS = 2  # rounds over the upstream list: the first try and one retry
UDP_PAYLOAD = 1232  # the largest UDP answer we send to an EDNS client (DNS flag day 2020)
TCP_IDLE = 10.0  # seconds a TCP client may take to send its query
POLL = 1.0  # seconds between the daemon's looks at the database for gateways
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux; the constant is missing before Python 3.12
PID_FILE = "dns.pid"
LOG_FILE = "dns.log"
DB_FILE = "state.db"
START_TIMEOUT = 10.0

QTYPE: Any = dnslib.QTYPE
RCODE: Any = dnslib.RCODE


class DNSDaemonError(Exception):
    """The DNS daemon could not be started or stopped; the message says why."""


# -- addresses ---------------------------------------------------------------------------


def parse_address(text: str, default_port: int = 53) -> Address:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address (``%scope`` allowed)
    to ``(host, port)``; ``ValueError`` for anything else."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not an address: {text!r}")
        if rest:
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise ValueError(f"not an IP address: {text!r}") from None
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"not a port in {whole!r}")
    return int(text)


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_upstreams(resolv_conf: str = "/etc/resolv.conf") -> list[Address]:
    """The host's nameservers, loopback ones included (see the module doc); unparsable
    lines are skipped; none at all means ``127.0.0.1`` as for glibc."""
    try:
        with open(resolv_conf) as handle:
            text = handle.read()
    except OSError:
        text = ""
    upstreams = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                host, _ = parse_address(fields[1])
            except ValueError:
                continue
            if (host, 53) not in upstreams:
                upstreams.append((host, 53))
    return upstreams or [("127.0.0.1", 53)]


# -- the protocol --------------------------------------------------------------------------


def ptr_address(name: str) -> IPv4Address | None:
    """The IPv4 address a ``d.c.b.a.in-addr.arpa`` name asks about, else None."""
    key = dns_records.normalize(name)
    suffix = ".in-addr.arpa"
    if not key.endswith(suffix):
        return None
    labels = key[: -len(suffix)].split(".")
    if len(labels) != 4:
        return None
    try:
        return IPv4Address(".".join(reversed(labels)))
    except ValueError:
        return None


def exchange(data: bytes, upstream: Address, *, tcp: bool, timeout: float) -> bytes:
    """Send one DNS message to ``upstream`` and return its answer (same ID), or raise
    ``OSError`` (``TimeoutError`` included). The UDP socket is connected, so only the
    upstream's datagrams reach it; stray ones with another ID are skipped."""
    host, port = upstream
    deadline = time.monotonic() + timeout
    if tcp:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(data)) + data)
            (length,) = struct.unpack("!H", _recv_exact(sock, 2, deadline))
            response = _recv_exact(sock, length, deadline)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((host, port))
            sock.send(data)
            while True:
                sock.settimeout(_remaining(deadline))
                response = sock.recv(65535)
                if response[:2] == data[:2]:
                    break
    if len(response) < 12 or response[:2] != data[:2]:
        raise ConnectionError(f"{format_address(upstream)} sent a malformed answer")
    return response


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("upstream timed out")
    return remaining


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("upstream closed the connection")
        data += chunk
    return data


class Answerer:
    """One query in, one answer out (bytes to bytes); no sockets of its own except the
    upstream ones. ``exclude`` returns addresses never to forward to (our listeners)."""

    def __init__(
        self,
        records: dns_records.Records,
        upstreams: Sequence[Address],
        *,
        timeout: float = TIMEOUT,
        attempts: int = ATTEMPTS,
        ttl: int = TTL,
        exclude: Callable[[], Collection[Address]] = tuple,
    ) -> None:
        self.records = records
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.attempts = attempts
        self.ttl = ttl
        self._exclude = exclude

    def answer(self, data: bytes, client: str, *, tcp: bool) -> bytes:
        """The answer to ``data`` from ``client``; ``dnslib.DNSError`` for a packet that is
        no DNS query (no answer is sent: we could not even echo its ID)."""
        request = dnslib.DNSRecord.parse(data)
        if request.header.qr:
            raise dnslib.DNSError("a response, not a query")
        if request.header.opcode != dnslib.OPCODE.QUERY:
            return self._pack(self._status(request, RCODE.NOTIMP), request, tcp=tcp)
        if len(request.questions) != 1:
            return self._pack(self._status(request, RCODE.FORMERR), request, tcp=tcp)
        try:
            source: IPv4Address | None = IPv4Address(client)
        except ValueError:
            source = None
        try:
            local = None if source is None else self._local(request, source)
            may_forward = local is None and source is not None and self.records.forwards(source)
        except Exception:  # a bug or a broken records source: answer, do not leave the client waiting
            log.exception("cannot answer %s from %s", request.q.qname, client)
            return self._pack(self._status(request, RCODE.SERVFAIL), request, tcp=tcp)
        if local is not None:
            return self._pack(local, request, tcp=tcp)
        if not may_forward:
            return self._pack(self._status(request, RCODE.REFUSED, ra=0), request, tcp=tcp)
        return self._forward(data, request, tcp=tcp)

    def _local(self, request: Any, client: IPv4Address) -> Any:
        """Our answer, or None when the name is not one of the client's."""
        question = request.q
        if question.qclass != dnslib.CLASS.IN:
            return None
        name = str(question.qname)
        if question.qtype == QTYPE.PTR:
            address = ptr_address(name)
            target = None if address is None else self.records.reverse(client, address)
            if target is None:
                return None
            reply = request.reply()
            reply.add_answer(dnslib.RR(question.qname, QTYPE.PTR, rdata=dnslib.PTR(target + "."), ttl=self.ttl))
            return reply
        addresses = self.records.lookup(client, name)
        if addresses is None:
            return None
        reply = request.reply()
        if question.qtype in (QTYPE.A, QTYPE.ANY):
            for address in random.sample(addresses, len(addresses)):
                reply.add_answer(dnslib.RR(question.qname, QTYPE.A, rdata=dnslib.A(str(address)), ttl=self.ttl))
        return reply

    def _forward(self, data: bytes, request: Any, *, tcp: bool) -> bytes:
        excluded = set(self._exclude())
        upstreams = [upstream for upstream in self.upstreams if upstream not in excluded]
        for _attempt in range(self.attempts):
            for upstream in upstreams:
                try:
                    response = exchange(data, upstream, tcp=tcp, timeout=self.timeout)
                except OSError as exc:
                    log.debug("upstream %s failed: %s", format_address(upstream), exc)
                    continue
                if response[3] & 0x0F in (RCODE.SERVFAIL, RCODE.REFUSED):
                    log.debug("upstream %s answered %s", format_address(upstream), RCODE[response[3] & 0x0F])
                    continue
                return response
        return self._pack(self._status(request, RCODE.SERVFAIL), request, tcp=tcp)

    @staticmethod
    def _status(request: Any, rcode: int, *, ra: int = 1) -> Any:
        """An answer without records, not authoritative: it only says how the query went."""
        reply = request.reply(ra=ra, aa=0)
        reply.header.rcode = rcode
        return reply

    @staticmethod
    def _pack(reply: Any, request: Any, *, tcp: bool) -> bytes:
        """Encode, with an EDNS record for an EDNS client, truncated when it would not
        fit the client's UDP size."""
        edns = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
        if edns is not None:
            reply.add_ar(dnslib.EDNS0(udp_len=UDP_PAYLOAD))
        data: bytes = reply.pack()
        limit = 512 if edns is None else max(512, min(int(edns.rclass), UDP_PAYLOAD))
        if tcp or len(data) <= limit:
            return data
        truncated = request.reply(ra=reply.header.ra)
        truncated.header.tc = 1
        truncated.header.rcode = reply.header.rcode
        if edns is not None:
            truncated.add_ar(dnslib.EDNS0(udp_len=UDP_PAYLOAD))
        packed: bytes = truncated.pack()
        return packed


# -- the servers ---------------------------------------------------------------------------


class _QuietLogger:
    """dnslib's logger interface: dnslib prints every query by default; we log only
    undecodable packets, at debug level."""

    def log_error(self, handler: Any, error: object) -> None:
        log.debug("bad packet from %s: %s", handler.client_address[0], error)

    def _ignore(self, *args: object) -> None:
        pass

    log_recv = log_send = log_request = log_reply = log_truncated = log_data = _ignore


class _Handler(dnslib_server.DNSHandler):  # type: ignore[misc]
    """dnslib's handler (UDP and TCP framing) with our ``Answerer`` in place of its
    resolver, so forwarded answers pass through as the upstream's bytes."""

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, socket.socket):  # TCP: a silent client must not hold a thread
            self.request.settimeout(TCP_IDLE)

    def get_reply(self, data: bytes) -> bytes:
        answerer: Answerer = self.server.answerer
        return answerer.answer(bytes(data), self.client_address[0], tcp=self.protocol == "tcp")


class _ServerMixin:
    """Bind with IP_FREEBIND (see the module doc); request errors go to the log, not stderr."""

    socket: socket.socket
    answerer: Answerer
    logger: _QuietLogger

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        super().server_bind()  # type: ignore[misc]

    def handle_error(self, request: object, client_address: Any) -> None:
        log.debug("error answering %s", client_address, exc_info=True)


class _UDPServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True
    allow_reuse_address = True
    max_packet_size = 65535


class _TCPServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _Listener:
    """UDP and TCP servers on one address, each with its serving thread."""

    def __init__(self, address: Address, answerer: Answerer) -> None:
        host, port = address
        if not isinstance(ipaddress.ip_address(host), IPv4Address):
            raise ValueError(f"only IPv4 listeners are supported: {host}")
        udp = _UDPServer((host, port), _Handler)  # port 0: the kernel picks, TCP takes the same
        try:
            tcp = _TCPServer((host, udp.server_address[1]), _Handler)
        except OSError:
            udp.server_close()
            raise
        self.servers: tuple[socketserver.BaseServer, ...] = (udp, tcp)
        self.address: Address = (host, int(udp.server_address[1]))
        for server in (udp, tcp):
            server.answerer = answerer
            server.logger = _QuietLogger()
        self.threads = [
            threading.Thread(target=server.serve_forever, name=f"dns-{format_address(self.address)}", daemon=True)
            for server in self.servers
        ]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Shut both servers down at once: each ``shutdown()`` waits out a serve loop's
        poll interval (half a second)."""
        helper = threading.Thread(target=self.servers[1].shutdown)
        helper.start()
        self.servers[0].shutdown()
        helper.join()
        for server in self.servers:
            server.server_close()
        for thread in self.threads:
            thread.join()


class DNSServer:
    """The embedded DNS server on a changing set of listening addresses.

    ``listen`` addresses are bound by ``start()``; ``add_listener``/``remove_listener``
    change the set at runtime (networks come and go). Port 0 picks a free port (the
    same for UDP and TCP): ``listening`` tells the bound addresses. Each request runs
    in its own thread, so a slow upstream delays only its own query.

    Example::

        with DNSServer(records, [("10.213.1.1", 53)], host_upstreams()) as server:
            server.add_listener(("10.213.2.1", 53))
    """

    def __init__(
        self,
        records: dns_records.Records,
        listen: Iterable[Address] = (),
        upstreams: Sequence[Address] = (),
        *,
        timeout: float = TIMEOUT,
        attempts: int = ATTEMPTS,
        ttl: int = TTL,
    ) -> None:
        self._lock = threading.Lock()
        self._pending: list[Address] = list(listen)
        self._listeners: dict[Address, _Listener] = {}
        self._running = False
        self.answerer = Answerer(records, upstreams, timeout=timeout, attempts=attempts, ttl=ttl, exclude=self._bound)

    def __enter__(self) -> DNSServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def listening(self) -> list[Address]:
        """The bound addresses (after ``start()``), sorted."""
        return sorted(self._bound())

    def _bound(self) -> list[Address]:
        return list(self._listeners)

    def start(self) -> None:
        """Bind every ``listen`` address; on a failure nothing stays bound."""
        with self._lock:
            if self._running:
                return
            self._running = True
            pending, self._pending = self._pending, []
        try:
            for address in pending:
                self.add_listener(address)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Close every listener (in parallel: each shutdown waits for its serve loop)."""
        with self._lock:
            self._running = False
            listeners, self._listeners = list(self._listeners.values()), {}
        stoppers = [threading.Thread(target=listener.stop) for listener in listeners]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()

    def add_listener(self, address: Address) -> Address:
        """Listen on ``address`` too (at once when started, else at ``start()``); returns
        the bound address. ``OSError`` when it cannot be bound."""
        with self._lock:
            if not self._running:
                self._pending.append(address)
                return address
            if address in self._listeners:
                return address
            listener = _Listener(address, self.answerer)
            self._listeners[listener.address] = listener
            return listener.address

    def remove_listener(self, address: Address) -> None:
        """Stop listening on ``address`` (a bound address); unknown addresses are ignored."""
        with self._lock:
            listener = self._listeners.pop(address, None)
            if address in self._pending:
                self._pending.remove(address)
        if listener is not None:
            listener.stop()


# -- the daemon ------------------------------------------------------------------------------

_FLOCK = struct.Struct("@hhqqi4x")  # struct flock on 64-bit Linux


def pid_path(root: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(root), PID_FILE)


def _lock_holder(path: str) -> int | None:
    """The pid of the process holding the record lock on ``path`` (F_GETLK: asks
    without taking the lock), None when nobody does."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, l_pid = _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, query))
    finally:
        os.close(fd)
    return None if l_type == fcntl.F_UNLCK else int(l_pid)


def running_pid(root: str | os.PathLike[str]) -> int | None:
    """The pid of the serving daemon of ``root``; None when none runs or it is still
    starting (it writes its pid once its first listeners are bound)."""
    path = pid_path(root)
    holder = _lock_holder(path)
    if holder is None:
        return None
    try:
        with open(path) as handle:
            written = handle.read().strip()
    except FileNotFoundError:
        return None
    return holder if written == str(holder) else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an orphaned daemon's zombie lingers
    until init reaps it, but it serves nothing and holds no lock)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _package_root() -> str:
    return str(pathlib.Path(__file__).resolve().parents[2])


def ensure_daemon(
    root: str | os.PathLike[str],
    *,
    port: int = 53,
    upstreams: Sequence[Address] | None = None,
    timeout: float = START_TIMEOUT,
) -> int:
    """The pid of ``root``'s DNS daemon, started (detached, in its own session) if none
    runs. ``upstreams`` None means the host's resolvers. Safe to call concurrently: of
    two daemons started at once one exits at once, and both callers get the other's
    pid. ``DNSDaemonError`` when it does not come up within ``timeout`` seconds."""
    root = os.fspath(root)
    path = pid_path(root)
    pid = running_pid(root)
    if pid is not None:
        return pid
    os.makedirs(root, exist_ok=True)
    child = None
    if _lock_holder(path) is None:  # else one is starting: wait for it
        child = _spawn(root, port=port, upstreams=upstreams, timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        pid = running_pid(root)
        if pid is not None:
            return pid
        if child is not None and not _alive(child) and _lock_holder(path) is None:
            raise DNSDaemonError(f"the DNS daemon exited at start: {_log_tail(root)}")
        if time.monotonic() > deadline:
            raise DNSDaemonError(f"the DNS daemon did not start within {timeout} s: {_log_tail(root)}")
        time.sleep(0.02)


def _spawn(root: str, *, port: int, upstreams: Sequence[Address] | None, timeout: float) -> int:
    """Start the daemon detached (it forks once more, so it is nobody's child to reap);
    returns the daemon's pid."""
    command = [sys.executable, "-m", "reconciler.network.dns", "--root", root, "--port", str(port), "--detach"]
    if upstreams is not None:
        command += [f"--upstream={format_address(upstream)}" for upstream in upstreams] or ["--no-upstreams"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_package_root(), env.get("PYTHONPATH")]))
    with open(os.path.join(root, LOG_FILE), "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            cwd="/",
            env=env,
            start_new_session=True,
        )
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise DNSDaemonError(f"the DNS daemon did not detach within {timeout} s: {_log_tail(root)}") from None
    if process.returncode != 0 or not out.strip().isdigit():
        raise DNSDaemonError(f"the DNS daemon failed to start (exit {process.returncode}): {_log_tail(root)}")
    return int(out.strip())


def _log_tail(root: str, lines: int = 5) -> str:
    try:
        with open(os.path.join(root, LOG_FILE), errors="replace") as handle:
            tail = handle.read().splitlines()[-lines:]
    except OSError:
        return "no log"
    return " | ".join(tail) or "empty log"


def stop_daemon(root: str | os.PathLike[str], *, timeout: float = START_TIMEOUT) -> bool:
    """Stop ``root``'s DNS daemon: SIGTERM, then SIGKILL after ``timeout`` seconds.
    False when none was running."""
    path = pid_path(root)
    pid = _lock_holder(path)
    if pid is None:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _alive(pid):
            break
    else:
        raise DNSDaemonError(f"the DNS daemon {pid} did not exit")
    if _lock_holder(path) is None:  # killed: the file it could not remove is stale
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return True


def _lock_pid_file(path: str) -> int | None:
    """An fd holding the write lock on ``path``, or None when another daemon holds it.
    A record lock (``lockf``), not ``flock``: ``F_GETLK`` can then name its holder. The
    file we locked must still be the one at ``path``: a stopping daemon unlinks it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return None
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        opened = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return fd
        os.close(fd)


def _sync_listeners(
    server: DNSServer, records: dns_records.SqliteRecords, port: int, extra: Iterable[Address], failing: set[Address]
) -> None:
    """Listen on every gateway of the database (and on ``extra``), on nothing else. An
    address that cannot be bound is retried at every sync and logged once."""
    wanted = {(str(gateway), port) for gateway in records.gateways()} | set(extra)
    for address in set(server.listening) - wanted:
        server.remove_listener(address)
        log.info("stopped listening on %s", format_address(address))
    for address in sorted(wanted - set(server.listening)):
        try:
            server.add_listener(address)
        except OSError as exc:
            if address not in failing:
                log.warning("cannot listen on %s: %s", format_address(address), exc)
            failing.add(address)
            continue
        failing.discard(address)
        log.info("listening on %s", format_address(address))


def _detach() -> None:
    """Fork: the parent prints the child's pid and exits, the child carries on with
    stdout on /dev/null (the parent's caller reads the pipe to its end)."""
    pid = os.fork()
    if pid > 0:
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()
        os._exit(0)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    path = pid_path(args.root)
    fd = _lock_pid_file(path)
    if fd is None:
        log.info("another DNS daemon serves %s (pid %s)", args.root, _lock_holder(path))
        return 0
    records = dns_records.SqliteRecords(args.db or os.path.join(args.root, DB_FILE))
    upstreams = [] if args.no_upstreams else (args.upstream or host_upstreams())
    server = DNSServer(records, [], upstreams, timeout=args.timeout)
    failing: set[Address] = set()
    try:
        server.start()
        _sync_listeners(server, records, args.port, args.listen, failing)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        log.info("serving %s, forwarding to %s", args.root, ", ".join(map(format_address, upstreams)) or "nobody")
        while not stop.wait(args.poll):
            _sync_listeners(server, records, args.port, args.listen, failing)
    finally:
        server.stop()
        records.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
    log.info("stopped")
    return 0


def _port_argument(text: str) -> int:
    return _port(text, text)


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.network.dns", description="The embedded DNS server of reconcile's networks."
    )
    parser.add_argument("--root", required=True, help="the state root: ROOT/state.db, ROOT/dns.pid")
    parser.add_argument("--db", help="the state database (default ROOT/state.db)")
    parser.add_argument("--port", type=_port_argument, default=53, help="for the gateways (default 53)")
    parser.add_argument(
        "--listen", action="append", default=[], metavar="ADDR[:PORT]", help="also listen here (repeatable)"
    )
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        type=parse_address,
        metavar="ADDR[:PORT]",
        help="forward unknown names here (repeatable; default: the host's /etc/resolv.conf)",
    )
    parser.add_argument("--no-upstreams", action="store_true", help="forward nothing (unknown names get SERVFAIL)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per upstream try")
    parser.add_argument("--poll", type=float, default=POLL, help="seconds between looks for new gateways")
    parser.add_argument("--detach", action="store_true", help="fork, print the daemon's pid and return")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _argument_parser()
    args = parser.parse_args(argv)
    try:
        args.listen = [parse_address(text, args.port) for text in args.listen]
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s dns[%(process)d] %(levelname)s %(message)s"
    )
    os.makedirs(args.root, exist_ok=True)
    if args.detach:
        _detach()
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
