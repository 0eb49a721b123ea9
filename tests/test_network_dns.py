"""The embedded DNS server: scoped names, forwarding, SQLite records, the daemon.

Everything runs on loopback: our server on 127.0.0.77, fake upstreams on 127.0.0.78/79
(dnslib servers the tests run), clients bound to addresses inside the test networks'
127.x subnets (Linux routes all of 127/8 to lo). Ports are ephemeral, so no root is
needed, and the host's resolvers are never asked anything.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import dnslib  # type: ignore[import-untyped]
import pytest
from dnslib import server as dnslib_server

from reconciler.network import dns, dns_records

SERVER_HOST = "127.0.0.77"
UPSTREAM_HOST = "127.0.0.78"
UPSTREAM2_HOST = "127.0.0.79"

CLIENT_A = "127.0.10.100"  # on network a
CLIENT_B = "127.0.20.100"  # on network b
CLIENT_C = "127.0.30.100"  # on internal network c only
OUTSIDER = "127.0.99.1"  # on no network

SUBNETS = {"a": "127.0.10.0/24", "b": "127.0.20.0/24", "c": "127.0.30.0/24"}
NAMES = {
    "a": {
        "web": ["127.0.10.2"],
        "www": ["127.0.10.2"],  # an alias of web
        "api": ["127.0.10.3", "127.0.10.4", "127.0.10.5"],  # a service with three replicas
        "many": [f"127.0.10.{i}" for i in range(100, 160)],  # too many for 512 bytes
        "empty": [],
    },
    "b": {"db": ["127.0.20.2"]},
    "c": {"secret": ["127.0.30.2"]},
}


def static_records() -> dns_records.StaticRecords:
    return dns_records.StaticRecords(NAMES, SUBNETS, internal=["c"])


# -- helpers -------------------------------------------------------------------------------


def query(
    server: dns.Address,
    name: str,
    qtype: str = "A",
    *,
    source: str = CLIENT_A,
    tcp: bool = False,
    edns: int | None = None,
    timeout: float = 10.0,
) -> dnslib.DNSRecord:
    """Ask ``server`` from the address ``source`` (which decides the client's network)."""
    request = dnslib.DNSRecord.question(name, qtype)
    if edns is not None:
        request.add_ar(dnslib.EDNS0(udp_len=edns))
    return dnslib.DNSRecord.parse(send_raw(server, request.pack(), source=source, tcp=tcp, timeout=timeout))


def send_raw(server: dns.Address, data: bytes, *, source: str, tcp: bool = False, timeout: float = 10.0) -> bytes:
    if tcp:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.bind((source, 0))
            sock.connect(server)
            sock.sendall(struct.pack("!H", len(data)) + data)
            (length,) = struct.unpack("!H", recv_exact(sock, 2))
            return recv_exact(sock, length)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(server)
        sock.send(data)
        return sock.recv(65535)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def addresses(reply: dnslib.DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == dnslib.QTYPE.A)


def rcode(reply: dnslib.DNSRecord) -> str:
    return str(dnslib.RCODE[reply.header.rcode])


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on ``host`` (bound and released at once)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise AssertionError("no free port")


def closed_port(host: str) -> dns.Address:
    """An address where nothing listens (UDP answers with ICMP port unreachable)."""
    return (host, free_port(host))


class FakeUpstream:
    """A dnslib server standing in for the host's resolver: ``example.test`` has
    192.0.2.1, ``mode="servfail"`` fails everything, other names are NXDOMAIN. It
    records what it was asked and over which protocol."""

    def __init__(self, host: str = UPSTREAM_HOST, *, mode: str = "ok") -> None:
        self.mode = mode
        self.asked: list[tuple[str, str, str]] = []  # (name, type, protocol)
        self._lock = threading.Lock()
        logger = dnslib_server.DNSLogger("-request,-reply,-truncated,-error")
        self.udp = dnslib_server.DNSServer(self, address=host, port=0, logger=logger)
        port = self.udp.server.server_address[1]
        self.tcp = dnslib_server.DNSServer(self, address=host, port=port, tcp=True, logger=logger)
        self.address: dns.Address = (host, port)

    def resolve(self, request: dnslib.DNSRecord, handler: dnslib_server.DNSHandler) -> dnslib.DNSRecord:
        with self._lock:
            self.asked.append((str(request.q.qname), dnslib.QTYPE[request.q.qtype], handler.protocol))
        reply = request.reply(aa=0)
        if self.mode == "servfail":
            reply.header.rcode = dnslib.RCODE.SERVFAIL
        elif str(request.q.qname).lower() == "example.test." and request.q.qtype == dnslib.QTYPE.A:
            reply.add_answer(dnslib.RR(request.q.qname, dnslib.QTYPE.A, rdata=dnslib.A("192.0.2.1"), ttl=30))
        else:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
        return reply

    def names(self) -> list[str]:
        with self._lock:
            return [name for name, _, _ in self.asked]

    def __enter__(self) -> FakeUpstream:
        self.udp.start_thread()
        self.tcp.start_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        stoppers = [threading.Thread(target=server.stop) for server in (self.udp, self.tcp)]
        for thread in stoppers:  # each waits out its serve loop's poll interval: wait once
            thread.start()
        for thread in stoppers:
            thread.join()
        for server in (self.udp, self.tcp):
            server.server.server_close()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def server(upstream: FakeUpstream) -> Iterator[dns.Address]:
    with dns.DNSServer(static_records(), [(SERVER_HOST, 0)], [upstream.address], timeout=1.0) as running:
        yield running.listening[0]


# -- records -------------------------------------------------------------------------------


def test_static_records_scope_by_client_subnet() -> None:
    records = static_records()
    a, b = IPv4Address(CLIENT_A), IPv4Address(CLIENT_B)
    assert records.lookup(a, "web") == [IPv4Address("127.0.10.2")]
    assert records.lookup(a, "db") is None
    assert records.lookup(b, "db") == [IPv4Address("127.0.20.2")]
    assert records.lookup(b, "web") is None
    assert records.lookup(IPv4Address(OUTSIDER), "web") is None
    assert records.lookup(a, "empty") == []


@pytest.mark.parametrize("name", ["web", "WEB", "Web.", "web.a", "WEB.A.", "www", "www.a"])
def test_name_forms(name: str) -> None:
    assert static_records().lookup(IPv4Address(CLIENT_A), name) == [IPv4Address("127.0.10.2")]


@pytest.mark.parametrize("name", ["", ".", "web.b", "web.nonet", "db.b", "a", "x.web", "web..", "web.a.b"])
def test_names_not_found(name: str) -> None:
    assert static_records().lookup(IPv4Address(CLIENT_A), name) is None


def test_static_records_reject_networks_without_subnet() -> None:
    with pytest.raises(ValueError, match="nowhere"):
        dns_records.StaticRecords({"nowhere": {"x": ["10.0.0.1"]}}, {})
    with pytest.raises(ValueError):
        dns_records.StaticRecords({"a": {"x": ["not-an-address"]}}, {"a": "127.0.10.0/24"})


def test_forwarding_policy() -> None:
    records = static_records()
    assert records.forwards(IPv4Address(CLIENT_A))
    assert not records.forwards(IPv4Address(CLIENT_C))  # internal only
    assert not records.forwards(IPv4Address(OUTSIDER))  # no network of ours


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2.10.0.127.in-addr.arpa.", "127.0.10.2"),
        ("2.10.0.127.IN-ADDR.ARPA", "127.0.10.2"),
        ("10.0.127.in-addr.arpa.", None),
        ("1.2.10.0.127.in-addr.arpa.", None),
        ("x.10.0.127.in-addr.arpa.", None),
        ("300.10.0.127.in-addr.arpa.", None),
        ("2.10.0.127.ip6.arpa.", None),
        ("example.test.", None),
    ],
)
def test_ptr_address(name: str, expected: str | None) -> None:
    assert dns.ptr_address(name) == (None if expected is None else IPv4Address(expected))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", 53)),
        (" 10.0.0.1:5353 ", ("10.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[fe80::1%eth0]", ("fe80::1%eth0", 53)),
    ],
)
def test_parse_address(text: str, expected: dns.Address) -> None:
    assert dns.parse_address(text) == expected
    assert dns.parse_address(dns.format_address(expected)) == expected


@pytest.mark.parametrize(
    "text", ["", "dns.example", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:x", "[::1", "[::1]x", "1.2.3"]
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        dns.parse_address(text)


def test_host_upstreams(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver 127.0.0.53\n"
        "nameserver   192.0.2.53\nnameserver bogus\nnameserver\nnameserver 2001:db8::53\noptions ndots:2\n"
    )
    assert dns.host_upstreams(str(conf)) == [("192.0.2.53", 53), ("127.0.0.53", 53), ("2001:db8::53", 53)]
    conf.write_text("search example.org\n")
    assert dns.host_upstreams(str(conf)) == [("127.0.0.1", 53)]  # glibc's default
    assert dns.host_upstreams(str(tmp_path / "missing")) == [("127.0.0.1", 53)]


# -- the server: local names -------------------------------------------------------------------


def test_client_sees_its_own_network_only(server: dns.Address, upstream: FakeUpstream) -> None:
    assert addresses(query(server, "web", source=CLIENT_A)) == ["127.0.10.2"]
    assert addresses(query(server, "db", source=CLIENT_B)) == ["127.0.20.2"]
    other = query(server, "db", source=CLIENT_A)  # b's name, asked from a: not ours, forwarded
    assert rcode(other) == "NXDOMAIN"
    assert other.rr == []
    assert upstream.names() == ["db."]
    assert rcode(query(server, "web", source=CLIENT_B)) == "NXDOMAIN"
    assert upstream.names() == ["db.", "web."]


def test_answer_shape(server: dns.Address, upstream: FakeUpstream) -> None:
    reply = query(server, "Web.A")
    assert rcode(reply) == "NOERROR"
    assert reply.header.aa == 1
    assert reply.header.ra == 1
    assert str(reply.q.qname) == "Web.A."  # the question as asked
    assert [(str(rr.rname), rr.ttl) for rr in reply.rr] == [("Web.A.", dns.TTL)]
    assert upstream.asked == []


def test_alias_and_service_names(server: dns.Address) -> None:
    assert addresses(query(server, "www")) == ["127.0.10.2"]
    assert addresses(query(server, "api")) == ["127.0.10.3", "127.0.10.4", "127.0.10.5"]
    assert addresses(query(server, "API.", tcp=True)) == ["127.0.10.3", "127.0.10.4", "127.0.10.5"]


@pytest.mark.parametrize("qtype", ["AAAA", "MX", "TXT", "SRV"])
def test_other_types_of_known_names_are_empty_not_forwarded(
    server: dns.Address, upstream: FakeUpstream, qtype: str
) -> None:
    reply = query(server, "web", qtype)
    assert rcode(reply) == "NOERROR"
    assert reply.rr == []
    assert upstream.asked == []


def test_known_name_without_addresses_is_nodata(server: dns.Address, upstream: FakeUpstream) -> None:
    reply = query(server, "empty")
    assert (rcode(reply), reply.rr, upstream.asked) == ("NOERROR", [], [])


def test_reverse_lookup(server: dns.Address, upstream: FakeUpstream) -> None:
    reply = query(server, "2.10.0.127.in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in reply.rr] == ["web.a."]
    assert upstream.asked == []
    query(server, "2.10.0.127.in-addr.arpa", "PTR", source=CLIENT_B)  # not b's container: forwarded
    query(server, "9.10.0.127.in-addr.arpa", "PTR")  # no container there: forwarded
    assert upstream.names() == ["2.10.0.127.in-addr.arpa.", "9.10.0.127.in-addr.arpa."]


def test_large_answer_is_truncated_over_udp_and_whole_over_tcp(server: dns.Address) -> None:
    expected = sorted(NAMES["a"]["many"])
    truncated = query(server, "many")
    assert truncated.header.tc == 1
    assert truncated.rr == []
    assert str(truncated.q.qname) == "many."  # glibc drops a reply without the question
    assert addresses(query(server, "many", tcp=True)) == expected
    with_edns = query(server, "many", edns=4096)  # fits the 1232 bytes we send to an EDNS client
    assert with_edns.header.tc == 0
    assert addresses(with_edns) == expected
    assert any(rr.rtype == dnslib.QTYPE.OPT for rr in with_edns.ar)


def test_busybox_nslookup() -> None:
    """A real resolver client (it asks A and AAAA): from 127.0.0.1, on a network of its own here."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed")
    records = dns_records.StaticRecords({"lo": {"api": ["127.0.0.3", "127.0.0.4"]}}, {"lo": "127.0.0.0/24"})
    with dns.DNSServer(records, [(SERVER_HOST, 0)], []) as server:
        target = dns.format_address(server.listening[0])

        def nslookup(name: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([busybox, "nslookup", name, target], capture_output=True, text=True, timeout=30)

        found = nslookup("API")
        assert found.returncode == 0, found.stdout + found.stderr
        answers = [line.split()[-1] for line in found.stdout.splitlines() if line.startswith("Address: ")]
        assert sorted(answers) == ["127.0.0.3", "127.0.0.4"]
        missing = nslookup("nothere.test")
        assert missing.returncode != 0
        assert "SERVFAIL" in missing.stdout  # no upstreams


# -- the server: forwarding ------------------------------------------------------------------------


def test_forwarding_over_udp_and_tcp(server: dns.Address, upstream: FakeUpstream) -> None:
    request = dnslib.DNSRecord.question("example.test")
    reply = dnslib.DNSRecord.parse(send_raw(server, request.pack(), source=CLIENT_A))
    assert reply.header.id == request.header.id
    assert addresses(reply) == ["192.0.2.1"]
    assert reply.header.aa == 0  # the upstream's answer, passed through
    assert addresses(query(server, "example.test", tcp=True)) == ["192.0.2.1"]
    assert rcode(query(server, "nothing.test")) == "NXDOMAIN"
    assert upstream.asked == [
        ("example.test.", "A", "udp"),
        ("example.test.", "A", "tcp"),
        ("nothing.test.", "A", "udp"),
    ]


def test_unknown_names_refused_for_internal_and_outside_clients(server: dns.Address, upstream: FakeUpstream) -> None:
    assert addresses(query(server, "secret", source=CLIENT_C)) == ["127.0.30.2"]  # own names still resolve
    for source in (CLIENT_C, OUTSIDER):
        reply = query(server, "example.test", source=source)
        assert rcode(reply) == "REFUSED"
        assert reply.header.ra == 0
    assert upstream.asked == []


@pytest.mark.parametrize("dead", ["closed", "silent"])
def test_upstream_down_gives_servfail(dead: str) -> None:
    with contextlib.ExitStack() as stack:
        if dead == "closed":
            address = closed_port(UPSTREAM_HOST)
        else:  # a socket that never answers: the timeout path
            silent = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            silent.bind((UPSTREAM_HOST, 0))
            address = silent.getsockname()
        server = stack.enter_context(dns.DNSServer(static_records(), [(SERVER_HOST, 0)], [address], timeout=0.2))
        reply = query(server.listening[0], "example.test")
        assert rcode(reply) == "SERVFAIL"
        assert reply.rr == []
        assert rcode(query(server.listening[0], "example.test", tcp=True)) == "SERVFAIL"


def test_no_upstreams_gives_servfail() -> None:
    with dns.DNSServer(static_records(), [(SERVER_HOST, 0)], []) as server:
        assert rcode(query(server.listening[0], "example.test")) == "SERVFAIL"
        assert addresses(query(server.listening[0], "web")) == ["127.0.10.2"]


def test_failing_upstreams_are_skipped(upstream: FakeUpstream) -> None:
    with FakeUpstream(UPSTREAM2_HOST, mode="servfail") as failing:
        dead = closed_port(UPSTREAM_HOST)
        upstreams = [dead, failing.address, upstream.address]
        with dns.DNSServer(static_records(), [(SERVER_HOST, 0)], upstreams, timeout=1.0) as server:
            assert addresses(query(server.listening[0], "example.test")) == ["192.0.2.1"]
        assert failing.names() == ["example.test."]
        assert upstream.names() == ["example.test."]


def test_retry_once_then_servfail() -> None:
    with FakeUpstream(UPSTREAM2_HOST, mode="servfail") as failing:
        with dns.DNSServer(static_records(), [(SERVER_HOST, 0)], [failing.address], attempts=2) as server:
            assert rcode(query(server.listening[0], "example.test")) == "SERVFAIL"
        assert failing.names() == ["example.test.", "example.test."]  # the try and one retry


def test_never_forwards_to_itself() -> None:
    port = free_port(SERVER_HOST)
    own = (SERVER_HOST, port)
    with dns.DNSServer(static_records(), [own], [own], timeout=0.5) as server:
        assert server.listening == [own]
        assert rcode(query(own, "example.test")) == "SERVFAIL"


# -- the server: bad input, listeners ------------------------------------------------------------


def test_garbage_gets_no_answer_and_does_not_hurt(server: dns.Address) -> None:
    response = dnslib.DNSRecord.question("example.test").reply().pack()  # a response, not a query
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.bind((CLIENT_A, 0))
        sock.connect(server)
        for junk in (b"", b"\x00", b"\xff" * 40, response):
            sock.send(junk)
        good = dnslib.DNSRecord.question("web")
        sock.send(good.pack())
        first = dnslib.DNSRecord.parse(sock.recv(65535))  # the only answer is the good query's
    assert first.header.id == good.header.id
    assert addresses(first) == ["127.0.10.2"]


def test_unsupported_requests(server: dns.Address) -> None:
    notify = dnslib.DNSRecord(dnslib.DNSHeader(opcode=dnslib.OPCODE.NOTIFY), q=dnslib.DNSQuestion("web"))
    assert rcode(dnslib.DNSRecord.parse(send_raw(server, notify.pack(), source=CLIENT_A))) == "NOTIMP"
    two = dnslib.DNSRecord.question("web")
    two.add_question(dnslib.DNSQuestion("www"))
    assert rcode(dnslib.DNSRecord.parse(send_raw(server, two.pack(), source=CLIENT_A))) == "FORMERR"


def test_tcp_client_that_sends_little(server: dns.Address) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(server)
        sock.sendall(b"\x00")  # half a length prefix, then hang up
    assert addresses(query(server, "web", tcp=True)) == ["127.0.10.2"]


def test_broken_records_give_servfail() -> None:
    class Broken:
        def lookup(self, client: IPv4Address, name: str) -> list[IPv4Address] | None:
            raise RuntimeError("broken")

        def reverse(self, client: IPv4Address, address: IPv4Address) -> str | None:
            raise RuntimeError("broken")

        def forwards(self, client: IPv4Address) -> bool:
            raise RuntimeError("broken")

    with dns.DNSServer(Broken(), [(SERVER_HOST, 0)]) as server:
        assert rcode(query(server.listening[0], "web")) == "SERVFAIL"


def test_listeners_come_and_go() -> None:
    server = dns.DNSServer(static_records(), [(SERVER_HOST, 0)])
    pending = server.add_listener((UPSTREAM2_HOST, 0))  # before start: bound by start()
    assert pending == (UPSTREAM2_HOST, 0)
    assert server.listening == []
    with server:
        first, second = server.listening
        assert {first[0], second[0]} == {SERVER_HOST, UPSTREAM2_HOST}
        third = server.add_listener(("127.0.0.80", 0))
        assert third[1] != 0
        assert server.add_listener(third) == third  # already there
        assert addresses(query(third, "web")) == ["127.0.10.2"]
        assert addresses(query(third, "web", tcp=True)) == ["127.0.10.2"]
        server.remove_listener(third)
        server.remove_listener(("127.0.0.81", 53))  # unknown: ignored
        assert third not in server.listening
        with pytest.raises(OSError):
            query(third, "web", tcp=True)
        with pytest.raises(OSError):  # UDP: ICMP port unreachable
            query(third, "web", timeout=5)
    assert server.listening == []


def test_start_failure_leaves_nothing_bound() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((SERVER_HOST, 0))
        busy = taken.getsockname()
        free = (UPSTREAM2_HOST, free_port(UPSTREAM2_HOST))
        server = dns.DNSServer(static_records(), [free, busy])
        with pytest.raises(OSError):
            server.start()
        assert server.listening == []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
            again.bind(free)  # released


def test_ipv6_listener_rejected() -> None:
    with dns.DNSServer(static_records()) as server, pytest.raises(ValueError):
        server.add_listener(("::1", 0))


# -- SQLite records ------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE networks (name TEXT PRIMARY KEY, driver TEXT NOT NULL DEFAULT 'bridge', subnet TEXT NOT NULL,
                       gateway TEXT NOT NULL, internal INTEGER NOT NULL DEFAULT 0);
CREATE TABLE endpoints (container TEXT NOT NULL, network TEXT NOT NULL, ifname TEXT NOT NULL, address TEXT NOT NULL,
                        mac TEXT NOT NULL DEFAULT '', aliases_json TEXT NOT NULL DEFAULT '[]',
                        host_ifname TEXT NOT NULL DEFAULT '', PRIMARY KEY (container, network));
"""


@contextlib.contextmanager
def writer(path: Path) -> Iterator[sqlite3.Connection]:
    """A separate writing connection, as the engine's would be (WAL, autocommit)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        yield conn
    finally:
        conn.close()


def add_network(conn: sqlite3.Connection, name: str, subnet: str, gateway: str, *, internal: bool = False) -> None:
    conn.execute(
        "INSERT INTO networks (name, subnet, gateway, internal) VALUES (?, ?, ?, ?)",
        (name, subnet, gateway, int(internal)),
    )


def add_endpoint(conn: sqlite3.Connection, container: str, network: str, address: str, aliases: list[str]) -> None:
    conn.execute(
        "INSERT INTO endpoints (container, network, ifname, address, aliases_json) VALUES (?, ?, 'eth0', ?, ?)",
        (container, network, address, json.dumps(aliases)),
    )


def test_sqlite_records_follow_the_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    records = dns_records.SqliteRecords(path)
    client = IPv4Address("10.213.1.50")
    try:
        assert records.lookup(client, "web") is None  # no file yet
        assert not path.exists()  # and reading never creates it
        with writer(path) as conn:
            assert records.lookup(client, "web") is None  # no tables yet
            conn.executescript(SCHEMA)
            assert records.lookup(client, "web") is None
            add_network(conn, "front", "10.213.1.0/24", "10.213.1.1")
            add_endpoint(conn, "web", "front", "10.213.1.2", ["www", "site"])
            assert records.lookup(client, "WWW.") == [IPv4Address("10.213.1.2")]
            assert records.gateways() == [IPv4Address("10.213.1.1")]
            add_endpoint(conn, "web2", "front", "10.213.1.3", ["site"])  # a second replica, no restart
            assert sorted(records.lookup(client, "site") or []) == [
                IPv4Address("10.213.1.2"),
                IPv4Address("10.213.1.3"),
            ]
            assert records.reverse(client, IPv4Address("10.213.1.3")) == "web2.front"
            conn.execute("DELETE FROM endpoints WHERE container = 'web'")
            assert records.lookup(client, "web") is None
            assert records.lookup(client, "site") == [IPv4Address("10.213.1.3")]
        path.unlink()
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (tmp_path / f"state.db{suffix}").unlink()
        assert records.lookup(client, "site") is None  # deleted database: no names
        with writer(path) as conn:  # a new file at the same path
            conn.executescript(SCHEMA)
            add_network(conn, "front", "10.213.1.0/24", "10.213.1.1")
            add_endpoint(conn, "other", "front", "10.213.1.9", [])
        assert records.lookup(client, "other") == [IPv4Address("10.213.1.9")]
    finally:
        records.close()


def test_sqlite_records_scope_by_container(tmp_path: Path) -> None:
    """A container on two networks sees both; the network it asks through wins a name
    both have; containers see nothing of networks they are not on."""
    path = tmp_path / "state.db"
    with writer(path) as conn:
        conn.executescript(SCHEMA)
        add_network(conn, "front", "10.213.1.0/24", "10.213.1.1")
        add_network(conn, "back", "10.213.2.0/24", "10.213.2.1", internal=True)
        add_endpoint(conn, "proxy", "front", "10.213.1.2", [])
        add_endpoint(conn, "proxy", "back", "10.213.2.2", [])
        add_endpoint(conn, "db", "back", "10.213.2.3", ["cache"])
        add_endpoint(conn, "cache", "front", "10.213.1.4", [])  # "cache" is a name on both networks
    records = dns_records.SqliteRecords(path)
    try:
        via_front, via_back = IPv4Address("10.213.1.2"), IPv4Address("10.213.2.2")
        db, stranger = IPv4Address("10.213.2.3"), IPv4Address("10.213.1.77")
        assert records.lookup(via_front, "db") == [db]  # proxy is on back too
        assert records.lookup(via_front, "cache") == [IPv4Address("10.213.1.4")]
        assert records.lookup(via_back, "cache") == [db]
        assert records.lookup(via_front, "cache.back") == [db]
        assert records.lookup(stranger, "db") is None  # not an endpoint: its subnet's names only
        assert records.lookup(stranger, "proxy") == [via_front]
        assert records.lookup(db, "proxy") == [via_back]
        assert records.lookup(db, "cache.front") is None
        assert records.forwards(via_front)
        assert not records.forwards(db)  # only on the internal network
        assert records.forwards(via_back)  # proxy is also on front
        assert records.reverse(db, via_back) == "proxy.back"
        assert records.reverse(db, via_front) is None
        assert records.gateways() == [IPv4Address("10.213.1.1"), IPv4Address("10.213.2.1")]
    finally:
        records.close()


def test_sqlite_records_skip_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with writer(path) as conn:
        conn.executescript(SCHEMA)
        add_network(conn, "front", "10.213.1.0/24", "10.213.1.1")
        add_network(conn, "broken", "not-a-subnet", "10.213.9.1")
        add_endpoint(conn, "web", "front", "10.213.1.2", ["www"])
        add_endpoint(conn, "bad-address", "front", "10.213.1.999", [])
        conn.execute(
            "INSERT INTO endpoints (container, network, ifname, address, aliases_json) "
            "VALUES ('bad-json', 'front', 'eth0', '10.213.1.3', '{not json'), "
            "('bad-aliases', 'front', 'eth0', '10.213.1.4', '[1, 2]'), "
            "('orphan', 'gone', 'eth0', '10.213.1.5', '[]')"
        )
    records = dns_records.SqliteRecords(path)
    try:
        client = IPv4Address("10.213.1.50")
        assert records.lookup(client, "www") == [IPv4Address("10.213.1.2")]
        for name in ("bad-address", "bad-json", "bad-aliases", "orphan"):
            assert records.lookup(client, name) is None
        assert records.gateways() == [IPv4Address("10.213.1.1")]
    finally:
        records.close()


def test_sqlite_records_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    records = dns_records.SqliteRecords(path)
    try:
        assert records.lookup(IPv4Address("10.213.1.50"), "web") is None
    finally:
        records.close()


def test_sqlite_records_with_the_state_store(tmp_path: Path) -> None:
    """The real schema of ``reconciler.state.db``, written through its own API."""
    from reconciler.state import db as state_db

    store = state_db.StateDB(str(tmp_path))
    records = dns_records.SqliteRecords(tmp_path / state_db.FILENAME)
    try:
        client = IPv4Address("10.213.3.50")
        assert records.lookup(client, "web") is None
        store.put_network(
            state_db.NetworkRecord("front", IPv4Network("10.213.3.0/24"), IPv4Address("10.213.3.1"), internal=True)
        )
        store.put_endpoint(state_db.Endpoint("web", "front", "eth0", IPv4Address("10.213.3.2"), aliases=("www",)))
        assert records.lookup(client, "www") == [IPv4Address("10.213.3.2")]
        assert not records.forwards(client)
        assert records.gateways() == [IPv4Address("10.213.3.1")]
    finally:
        records.close()
        store.close()


def test_server_on_sqlite_records(tmp_path: Path, upstream: FakeUpstream) -> None:
    path = tmp_path / "state.db"
    with writer(path) as conn:
        conn.executescript(SCHEMA)
        add_network(conn, "a", SUBNETS["a"], "127.0.10.1")
        records = dns_records.SqliteRecords(path)
        try:
            with dns.DNSServer(records, [(SERVER_HOST, 0)], [upstream.address]) as server:
                address = server.listening[0]
                assert rcode(query(address, "late")) == "NXDOMAIN"  # forwarded: nobody has it yet
                add_endpoint(conn, "late", "a", "127.0.10.7", [])
                assert addresses(query(address, "late")) == ["127.0.10.7"]  # no restart
        finally:
            records.close()


# -- the daemon ------------------------------------------------------------------------------------


def daemon_processes(root: Path) -> list[int]:
    """Live (not zombie) processes whose command line names ``root``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"reconciler.network.dns" in cmdline and os.fsencode(root) in cmdline and dns._alive(int(entry)):
            found.append(int(entry))
    return found


@pytest.fixture
def daemon_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "root"
    root.mkdir()
    try:
        yield root
    finally:
        dns.stop_daemon(root)
        for pid in daemon_processes(root):  # anything that escaped (a test failed half-way)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert daemon_processes(root) == [], "DNS daemon processes left behind"


def wait_for_answer(server: dns.Address, name: str, *, source: str) -> dnslib.DNSRecord:
    """The daemon picks changes up on its next poll: ask until it answers (or give up)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            reply = query(server, name, source=source, timeout=1)
            if reply.rr:
                return reply
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{name} never resolved at {server}"
        time.sleep(0.05)


def test_daemon_lifecycle(daemon_root: Path) -> None:
    with writer(daemon_root / "state.db") as conn:
        conn.executescript(SCHEMA)
        add_network(conn, "a", "127.0.41.0/24", "127.0.41.1")
        add_endpoint(conn, "web", "a", "127.0.41.2", ["www"])
    port = free_port("127.0.41.1")
    assert dns.running_pid(daemon_root) is None
    pid = dns.ensure_daemon(daemon_root, port=port, upstreams=[closed_port(UPSTREAM_HOST)])
    assert (daemon_root / "dns.pid").read_text() == f"{pid}\n"
    assert dns.running_pid(daemon_root) == pid
    assert daemon_processes(daemon_root) == [pid]
    assert dns.ensure_daemon(daemon_root, port=port) == pid  # already running: the same one

    assert addresses(query(("127.0.41.1", port), "www", source="127.0.41.9")) == ["127.0.41.2"]
    assert addresses(query(("127.0.41.1", port), "web", source="127.0.41.9", tcp=True)) == ["127.0.41.2"]
    assert rcode(query(("127.0.41.1", port), "example.test", source="127.0.41.9")) == "SERVFAIL"

    with writer(daemon_root / "state.db") as conn:  # a new network: a new listener, new names
        add_network(conn, "b", "127.0.42.0/24", "127.0.42.1")
        add_endpoint(conn, "db", "b", "127.0.42.2", [])
    assert addresses(wait_for_answer(("127.0.42.1", port), "db", source="127.0.42.9")) == ["127.0.42.2"]

    assert dns.stop_daemon(daemon_root)
    assert not (daemon_root / "dns.pid").exists()  # removed by the daemon: a clean exit
    assert daemon_processes(daemon_root) == []
    assert dns.running_pid(daemon_root) is None
    assert not dns.stop_daemon(daemon_root)
    with pytest.raises(OSError):
        query(("127.0.41.1", port), "web", source="127.0.41.9", tcp=True)


def test_daemon_concurrent_starts_give_one(daemon_root: Path) -> None:
    port = free_port("127.0.0.1")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        pids = list(pool.map(lambda _: dns.ensure_daemon(daemon_root, port=port, upstreams=[]), range(4)))
    assert len(set(pids)) == 1
    deadline = time.monotonic() + 30
    while daemon_processes(daemon_root) != [pids[0]]:  # the losers exit as soon as they see the lock
        assert time.monotonic() < deadline, daemon_processes(daemon_root)
        time.sleep(0.05)
    assert "another DNS daemon" in (daemon_root / "dns.log").read_text()


def test_daemon_stale_pid_file(daemon_root: Path) -> None:
    (daemon_root / "dns.pid").write_text("1\n")  # left by a killed daemon: nobody holds its lock
    assert dns.running_pid(daemon_root) is None
    assert not dns.stop_daemon(daemon_root)
    pid = dns.ensure_daemon(daemon_root, port=free_port("127.0.0.1"), upstreams=[])
    assert pid != 1
    assert dns.running_pid(daemon_root) == pid


def test_daemon_in_foreground_exits_cleanly_on_sigterm(daemon_root: Path) -> None:
    listen = f"{SERVER_HOST}:{free_port(SERVER_HOST)}"
    command = [sys.executable, "-m", "reconciler.network.dns", "--root", str(daemon_root), "--no-upstreams"]
    process = subprocess.Popen([*command, "--listen", listen], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while dns.running_pid(daemon_root) != process.pid:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        host, port = dns.parse_address(listen)
        assert rcode(query((host, port), "example.test", source=SERVER_HOST)) == "REFUSED"  # on no network
        second = subprocess.run([*command, "--port", "1053"], capture_output=True, text=True, timeout=30)
        assert second.returncode == 0
        assert "another DNS daemon" in second.stderr
        assert dns.running_pid(daemon_root) == process.pid
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
    assert not (daemon_root / "dns.pid").exists()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--root", "/nonexistent-dns-test", "--upstream", "bogus"],
        ["--root", "/nonexistent-dns-test", "--port", "0"],
        ["--root", "/nonexistent-dns-test", "--port", "x"],
        ["--root", "/nonexistent-dns-test", "--listen", "nowhere"],
    ],
)
def test_daemon_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        dns.main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not os.path.exists("/nonexistent-dns-test")
