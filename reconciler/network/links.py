"""Bridges and veth pairs over netlink (pyroute2): the wiring of a container's network namespace.

A bridge network is one Linux bridge on the host holding the gateway address. A
container joins it through a veth pair: the host end is a port of the bridge, the
other end lives in the container's network namespace as ``eth0`` (``eth1``… for
further networks) with the container's address and, on its primary network, the
default route via the gateway.

The namespace is given by the *path* of its handle (``ROOT/containers/NAME/netns``,
see ``reconciler.runtime.netns``), as CNI plugins get it, because the container's
process does not exist yet when its network is wired.

Two choices keep ``attach`` at a few milliseconds:

- The peer is created directly inside the namespace, under its final name, by the
  same RTM_NEWLINK that makes the pair (``IFLA_NET_NS_FD`` in the peer's attributes,
  as ``ip link add … peer name eth0 netns X`` does). No temporary name ever exists
  in the host namespace, so concurrent attaches cannot collide there, and there is
  no move-and-rename step that a crash could leave half done.
- The namespace's own configuration (address, link up, default route) goes through
  a netlink socket opened *inside* that namespace by a short-lived thread that
  ``setns``-es into it; a socket stays bound to the namespace it was created in. The
  thread dies right after, so the calling thread never changes namespace, and no
  process is forked (pyroute2's ``IPRoute(netns=…)`` forks one per socket).

All functions block. pyroute2's synchronous IPRoute drives an asyncio loop of its
own, so it cannot run in a thread whose event loop is already running: async
callers use ``asyncio.to_thread``.

Every name we create on the host carries a prefix (bridges ``rc-``, host veths
``rv``) so cleanup and tests can count what is ours with ``list_links``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

import pyroute2  # type: ignore[import-untyped]
import pyroute2.netns  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

BRIDGE_PREFIX = "rc-"
VETH_PREFIX = "rv"
IFNAMSIZ = 15  # usable characters of an interface name (16 with the NUL)

_NETLINK_ROUTE = 0
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class LinkError(Exception):
    """A netlink operation failed; the message names the link and what was attempted."""


@dataclass(frozen=True)
class Endpoint:
    """One container interface: ``ifname`` inside the namespace, ``host_ifname`` its
    veth peer on the host (a port of the network's bridge)."""

    ifname: str
    host_ifname: str
    address: IPv4Interface
    mac: str


def bridge_name(network_name: str, *, prefix: str = BRIDGE_PREFIX) -> str:
    """A stable interface name for a network's bridge: the prefix and a hash, because
    network names are longer than IFNAMSIZ allows and may collide when truncated."""
    return _hashed_name(prefix, network_name)


def host_veth_name(container: str, network: str, *, prefix: str = VETH_PREFIX) -> str:
    """A stable name for the host end of a container's veth on one network: the same
    pair of names always gives the same name, so a leftover from a killed attach is
    found and replaced by the next one."""
    return _hashed_name(prefix, f"{container}\0{network}")


def docker_mac(address: IPv4Address) -> str:
    """Docker's MAC for a container address: ``02:42`` and the four address bytes,
    locally administered and unique within the subnet."""
    return ":".join(f"{byte:02x}" for byte in (0x02, 0x42, *address.packed))


def ensure_bridge(name: str, gateway: IPv4Interface, *, mtu: int = 1500) -> None:
    """Make the bridge ``name`` exist, up, with MTU ``mtu`` and ``gateway`` as its only
    IPv4 address. Idempotent: an existing bridge is corrected, not recreated, so its
    ports (running containers) stay attached."""
    _check_ifname(name)
    _check_mtu(mtu)
    with _iproute() as ipr:
        index = _lookup(ipr, name)
        if index is None:
            with contextlib.suppress(_Exists), _netlink(f"create bridge {name}"):
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu, address=_bridge_mac(name))
            index = _lookup(ipr, name)
            if index is None:
                raise LinkError(f"bridge {name} vanished right after it was created")
        _require_kind(ipr, index, name, "bridge")
        with _netlink(f"set MTU {mtu} and up on bridge {name}"):
            ipr.link("set", index=index, mtu=mtu, state="up")
        _converge_addresses(ipr, index, name, gateway)


def remove_bridge(name: str) -> None:
    """Delete the bridge (its remaining ports are released, not deleted). A missing
    bridge is fine; a link of that name that is not a bridge is refused."""
    _check_ifname(name)
    with _iproute() as ipr:
        index = _lookup(ipr, name)
        if index is None:
            return
        _require_kind(ipr, index, name, "bridge")
        _delete(ipr, index, name)


def attach(
    netns_path: str,
    *,
    bridge: str,
    host_ifname: str,
    ifname: str,
    address: IPv4Interface,
    gateway: IPv4Address | None,
    mtu: int,
    mac: str | None = None,
) -> Endpoint:
    """Wire the namespace held at ``netns_path`` to ``bridge``: a veth pair whose host
    end ``host_ifname`` is an up port of the bridge and whose other end is ``ifname``
    inside the namespace, with ``address``, ``mac`` (Docker's ``02:42:…`` from the
    address when None), MTU ``mtu``, up, and a default route via ``gateway`` when it
    is given (the primary network of a non-internal container; None adds no route).

    A host veth left under ``host_ifname`` by a killed attach is deleted first. When a
    step fails the new pair is deleted again, so a failed attach leaves nothing."""
    for name in (bridge, host_ifname, ifname):
        _check_ifname(name)
    _check_mtu(mtu)
    mac = (mac or docker_mac(address.ip)).lower()
    if not _MAC.match(mac):
        raise LinkError(f"invalid MAC address {mac!r}: use six colon-separated hex bytes")
    with _iproute() as ipr:
        bridge_index = _lookup(ipr, bridge)
        if bridge_index is None:
            raise LinkError(f"bridge {bridge} does not exist: ensure the network first")
        _delete_if_present(ipr, host_ifname)
        _create_pair(
            ipr, netns_path, bridge_index=bridge_index, host_ifname=host_ifname, ifname=ifname, mtu=mtu, mac=mac
        )
        try:
            _configure_inside(netns_path, ifname=ifname, address=address, gateway=gateway)
        except BaseException:
            _delete_if_present(ipr, host_ifname)
            raise
    return Endpoint(ifname=ifname, host_ifname=host_ifname, address=address, mac=mac)


def set_default_route(netns_path: str, *, ifname: str, gateway: IPv4Address) -> None:
    """Make the default route of the namespace at ``netns_path`` go via ``gateway`` on
    ``ifname`` (replacing any other): the way out after the network that had it was
    disconnected."""
    _check_ifname(ifname)
    fd = _netlink_socket_in(netns_path)
    try:
        ipr = _iproute(fileno=fd)  # owns the fd from here on
    except BaseException:
        os.close(fd)
        raise
    with ipr:
        index = _lookup(ipr, ifname)
        if index is None:
            raise LinkError(f"{ifname} does not exist in network namespace {netns_path}")
        with _netlink(f"add default route via {gateway} in {netns_path}"):
            ipr.route("replace", dst="0.0.0.0/0", gateway=str(gateway), oif=index)


def enslave(host_ifname: str, bridge: str) -> bool:
    """Make ``host_ifname`` an up port of ``bridge`` again: a bridge deleted by hand
    releases its ports (the containers' host veths) without deleting them, so a
    bridge made anew takes them back. False when the veth is gone too."""
    for name in (host_ifname, bridge):
        _check_ifname(name)
    with _iproute() as ipr:
        bridge_index = _lookup(ipr, bridge)
        if bridge_index is None:
            raise LinkError(f"bridge {bridge} does not exist: ensure the network first")
        index = _lookup(ipr, host_ifname)
        if index is None:
            return False
        with _netlink(f"attach {host_ifname} to bridge {bridge}"):
            ipr.link("set", index=index, master=bridge_index, state="up")
    return True


def detach(host_ifname: str) -> None:
    """Delete the host end of a container's veth; its peer in the namespace goes with
    it. A missing link is fine (the namespace, and with it the pair, may be gone)."""
    _check_ifname(host_ifname)
    with _iproute() as ipr:
        _delete_if_present(ipr, host_ifname)


def list_links(prefix: str) -> list[str]:
    """Names of the host namespace's links that start with ``prefix``, sorted."""
    with _iproute() as ipr, _netlink("list links"):
        names = (link.get_attr("IFLA_IFNAME") for link in ipr.get_links())
        return sorted(name for name in names if name and name.startswith(prefix))


# --- the pieces -------------------------------------------------------------------


class _Exists(Exception):
    """The kernel said EEXIST; raised by ``_netlink`` so callers can tolerate it."""


@contextlib.contextmanager
def _netlink(what: str) -> Iterator[None]:
    """Turn pyroute2's NetlinkError into LinkError naming what was attempted (EEXIST
    into ``_Exists``, which idempotent steps suppress)."""
    try:
        yield
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            raise _Exists(what) from exc
        raise LinkError(f"cannot {what}: {os.strerror(exc.code)}") from exc


def _iproute(fileno: int | None = None) -> Any:
    """One rtnetlink socket for a whole operation (opening one costs ~0.4 ms)."""
    try:
        return pyroute2.IPRoute(fileno=fileno)
    except OSError as exc:
        raise LinkError(f"cannot open a netlink socket: {exc}") from exc


def _lookup(ipr: Any, name: str) -> int | None:
    with _netlink(f"look up link {name}"):
        found: list[int] = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _require_kind(ipr: Any, index: int, name: str, kind: str) -> None:
    with _netlink(f"read link {name}"):
        (link,) = ipr.link("get", index=index)
    info = link.get_attr("IFLA_LINKINFO")
    actual = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    if actual != kind:
        raise LinkError(f"link {name} exists but is a {actual or 'device'} link, not a {kind}")


def _delete(ipr: Any, index: int, name: str) -> None:
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:  # gone meanwhile: what we wanted
            raise LinkError(f"cannot delete link {name}: {os.strerror(exc.code)}") from exc


def _delete_if_present(ipr: Any, name: str) -> None:
    index = _lookup(ipr, name)
    if index is not None:
        _delete(ipr, index, name)


def _converge_addresses(ipr: Any, index: int, name: str, gateway: IPv4Interface) -> None:
    """Add the gateway address and drop any other IPv4 address (a changed subnet)."""
    with _netlink(f"list addresses of {name}"):
        current = ipr.get_addr(index=index, family=socket.AF_INET)
    present = False
    for entry in current:
        existing = IPv4Interface(f"{entry.get_attr('IFA_ADDRESS')}/{entry['prefixlen']}")
        if existing == gateway:
            present = True
            continue
        with _netlink(f"remove stale address {existing} from {name}"):
            ipr.addr("del", index=index, address=str(existing.ip), prefixlen=existing.network.prefixlen)
    if not present:
        with contextlib.suppress(_Exists), _netlink(f"add address {gateway} to {name}"):
            ipr.addr(
                "add",
                index=index,
                address=str(gateway.ip),
                prefixlen=gateway.network.prefixlen,
                broadcast=str(gateway.network.broadcast_address),
            )


def _create_pair(
    ipr: Any, netns_path: str, *, bridge_index: int, host_ifname: str, ifname: str, mtu: int, mac: str
) -> None:
    """One RTM_NEWLINK: the host end enslaved to the bridge and up, the peer created
    inside the namespace as ``ifname`` with its MTU and MAC."""
    try:
        ns_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise LinkError(f"cannot open network namespace {netns_path}: {exc.strerror}") from exc
    try:
        ipr.link(
            "add",
            ifname=host_ifname,
            kind="veth",
            mtu=mtu,
            master=bridge_index,
            state="up",
            peer={"ifname": ifname, "net_ns_fd": ns_fd, "mtu": mtu, "address": mac},
        )
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            raise LinkError(
                f"cannot create veth {host_ifname}: {ifname} already exists in network namespace {netns_path}"
            ) from exc
        if exc.code == errno.EINVAL:
            raise LinkError(f"cannot create veth {host_ifname}: is {netns_path} a network namespace?") from exc
        raise LinkError(f"cannot create veth {host_ifname}: {os.strerror(exc.code)}") from exc
    finally:
        os.close(ns_fd)


def _configure_inside(netns_path: str, *, ifname: str, address: IPv4Interface, gateway: IPv4Address | None) -> None:
    fd = _netlink_socket_in(netns_path)
    try:
        ipr = _iproute(fileno=fd)  # owns the fd from here on
    except BaseException:
        os.close(fd)
        raise
    with ipr:
        index = _lookup(ipr, ifname)
        if index is None:
            raise LinkError(f"{ifname} did not appear in network namespace {netns_path}")
        with contextlib.suppress(_Exists), _netlink(f"add address {address} to {ifname} in {netns_path}"):
            ipr.addr(
                "add",
                index=index,
                address=str(address.ip),
                prefixlen=address.network.prefixlen,
                broadcast=str(address.network.broadcast_address),
            )
        with _netlink(f"set {ifname} up in {netns_path}"):
            ipr.link("set", index=index, state="up")
        if gateway is not None:
            with _netlink(f"add default route via {gateway} in {netns_path}"):
                ipr.route("replace", dst="0.0.0.0/0", gateway=str(gateway), oif=index)


def _netlink_socket_in(netns_path: str) -> int:
    """The fd of an rtnetlink socket bound to the namespace at ``netns_path``, opened by
    a throwaway thread so this thread's namespace never changes."""
    result: list[int] = []
    failure: list[BaseException] = []

    def open_inside() -> None:
        try:
            ns_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                pyroute2.netns.setns(ns_fd)
            finally:
                os.close(ns_fd)
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, _NETLINK_ROUTE)
            result.append(sock.detach())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=open_inside, name="netns-socket", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise LinkError(f"cannot enter network namespace {netns_path}: {failure[0]}") from failure[0]
    return result[0]


def _hashed_name(prefix: str, key: str) -> str:
    if not 1 <= len(prefix) <= 7 or not _IFNAME.match(prefix):
        raise LinkError(f"invalid interface name prefix {prefix!r}: 1-7 of [A-Za-z0-9_.-]")
    digest = hashlib.sha256(key.encode()).hexdigest()
    return prefix + digest[: IFNAMSIZ - len(prefix)]


def _bridge_mac(name: str) -> str:
    """A fixed, locally administered MAC for the bridge. Set explicitly, it no longer
    follows the lowest port MAC, which would change under the containers' ARP caches
    whenever a container comes or goes."""
    digest = hashlib.sha256(f"bridge\0{name}".encode()).digest()
    return ":".join(f"{byte:02x}" for byte in (0x02, *digest[:5]))


def _check_ifname(name: str) -> None:
    if not _IFNAME.match(name) or name in (".", ".."):
        raise LinkError(f"invalid interface name {name!r}: 1-{IFNAMSIZ} of [A-Za-z0-9_.-]")


def _check_mtu(mtu: int) -> None:
    if not 68 <= mtu <= 65535:
        raise LinkError(f"invalid MTU {mtu}: use 68-65535")
