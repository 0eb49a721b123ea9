"""IPAM: subnets from pools or specs, address leases, statics, release, plan-time validation, concurrency."""

from __future__ import annotations

import ipaddress
import multiprocessing
import multiprocessing.queues
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from reconciler.network import ipam
from reconciler.network.ipam import AddressPool, IPAMError
from reconciler.state.db import Endpoint, Lease, StateDB

FORK = multiprocessing.get_context("fork")
Net = ipaddress.IPv4Network
Addr = ipaddress.IPv4Address


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB(str(tmp_path)) as store:
        yield store


# -- pools and automatic subnets ----------------------------------------------------------------


def test_default_pools_are_dockers() -> None:
    assert ipam.DEFAULT_POOLS[0] == AddressPool(Net("172.17.0.0/16"), 16)
    assert ipam.DEFAULT_POOLS[14] == AddressPool(Net("172.31.0.0/16"), 16)
    assert ipam.DEFAULT_POOLS[-1] == AddressPool(Net("192.168.0.0/16"), 20)
    assert len(ipam.DEFAULT_POOLS) == 16
    blocks = [block for pool in ipam.DEFAULT_POOLS for block in pool.base.subnets(new_prefix=pool.size)]
    assert len(blocks) == 15 + 16


def test_automatic_subnets_come_from_the_pools_in_order(db: StateDB) -> None:
    first = ipam.allocate_subnet(db, "a")
    assert (first.subnet, first.gateway, first.ip_range) == (Net("172.17.0.0/16"), Addr("172.17.0.1"), None)
    assert db.list_leases("a") == [Lease("a", Addr("172.17.0.1"), ipam.GATEWAY_OWNER)]
    assert ipam.allocate_subnet(db, "b").subnet == Net("172.18.0.0/16")


def test_automatic_subnets_avoid_the_hosts_networks(db: StateDB) -> None:
    host = [Net("172.17.0.0/16"), Net("172.19.5.0/24"), Net("10.0.0.0/8")]
    assert ipam.allocate_subnet(db, "a", host_routes=host).subnet == Net("172.18.0.0/16")
    assert ipam.allocate_subnet(db, "b", host_routes=host).subnet == Net("172.20.0.0/16")
    assert ipam.allocate_subnet(db, "c", host_routes=iter(host)).subnet == Net("172.21.0.0/16")  # any iterable


def test_automatic_subnets_avoid_explicit_ones(db: StateDB) -> None:
    ipam.allocate_subnet(db, "manual", subnet="172.17.128.0/24")
    assert ipam.allocate_subnet(db, "auto").subnet == Net("172.18.0.0/16")


def test_after_the_172_pools_come_192_168_slash_20s(db: StateDB) -> None:
    host = [Net("172.16.0.0/12")]
    assert ipam.allocate_subnet(db, "a", host_routes=host).subnet == Net("192.168.0.0/20")
    assert ipam.allocate_subnet(db, "b", host_routes=host).subnet == Net("192.168.16.0/20")


def test_exhausted_pools_are_an_error_naming_the_network(db: StateDB) -> None:
    pools = [AddressPool(Net("10.213.0.0/23"), 24)]
    assert ipam.allocate_subnet(db, "a", pools=pools).subnet == Net("10.213.0.0/24")
    assert ipam.allocate_subnet(db, "b", pools=pools).subnet == Net("10.213.1.0/24")
    with pytest.raises(
        IPAMError, match=r"network c: no free subnet left in the address pools \(10.213.0.0/23 as /24\)"
    ):
        ipam.allocate_subnet(db, "c", pools=pools)
    assert db.get_network("c") is None
    with pytest.raises(IPAMError, match="no free subnet"):
        ipam.allocate_subnet(db, "d", pools=[])


# -- explicit subnets ---------------------------------------------------------------------------------


def test_an_explicit_subnet_with_gateway_and_range(db: StateDB) -> None:
    record = ipam.allocate_subnet(
        db,
        "front",
        subnet=Net("10.213.1.0/24"),
        gateway="10.213.1.254",
        ip_range="10.213.1.128/25",
        bridge="rc-front",
        internal=True,
        mtu=1400,
        labels={"stack": "shop"},
    )
    assert record.subnet == Net("10.213.1.0/24")
    assert record.gateway == Addr("10.213.1.254")
    assert record.ip_range == Net("10.213.1.128/25")
    assert (record.bridge, record.internal, record.mtu, record.labels) == ("rc-front", True, 1400, {"stack": "shop"})
    assert db.get_network("front") == record
    assert db.list_leases("front") == [Lease("front", Addr("10.213.1.254"), "gateway")]


def test_the_gateway_defaults_to_the_first_host_address(db: StateDB) -> None:
    assert ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24").gateway == Addr("10.213.1.1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subnet": "10.213.1.1/24"}, r"network n: subnet '10.213.1.1/24' is not an IPv4 network \(.*host bits set"),
        ({"subnet": "bogus"}, "network n: subnet 'bogus' is not an IPv4 network"),
        ({"subnet": "fd00::/64"}, "network n: subnet 'fd00::/64' is not an IPv4 network"),
        ({"subnet": "10.213.1.0/31"}, r"subnet 10.213.1.0/31 is too small \(use a /30 or larger\)"),
        ({"subnet": "10.213.1.0/24", "gateway": "10.213.2.1"}, "gateway 10.213.2.1 is outside subnet 10.213.1.0/24"),
        ({"subnet": "10.213.1.0/24", "gateway": "10.213.1.0"}, "gateway 10.213.1.0 is the network or broadcast"),
        ({"subnet": "10.213.1.0/24", "gateway": "10.213.1.255"}, "gateway 10.213.1.255 is the network or broadcast"),
        ({"subnet": "10.213.1.0/24", "gateway": "10.213.1.x"}, "gateway '10.213.1.x' is not an IPv4 address"),
        ({"subnet": "10.213.1.0/24", "ip_range": "10.213.0.0/16"}, "ip_range 10.213.0.0/16 is outside subnet"),
        ({"subnet": "10.213.1.0/24", "ip_range": "10.213.2.0/25"}, "ip_range 10.213.2.0/25 is outside subnet"),
        ({"gateway": "10.213.1.1"}, "network n: gateway needs an explicit subnet"),
        ({"ip_range": "10.213.1.0/25"}, "network n: ip_range needs an explicit subnet"),
    ],
)
def test_bad_explicit_addressing_is_refused(db: StateDB, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(IPAMError, match=message):
        ipam.allocate_subnet(db, "n", **kwargs)  # type: ignore[arg-type]
    assert db.list_networks() == []
    assert db.list_leases() == []


def test_an_overlapping_subnet_is_refused_naming_the_other_network(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.0.0/16")
    with pytest.raises(
        IPAMError, match=re.escape("network back: subnet 10.213.5.0/24 overlaps subnet 10.213.0.0/16 of network front")
    ):
        ipam.allocate_subnet(db, "back", subnet="10.213.5.0/24")
    ipam.allocate_subnet(db, "side", subnet="10.214.0.0/24", host_routes=[Net("10.214.0.0/16")])  # host not checked


def test_ensuring_a_network_twice_returns_the_same_record(db: StateDB) -> None:
    first = ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24", ip_range="10.213.1.0/25")
    assert ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24") == first
    assert ipam.allocate_subnet(db, "front") == first
    auto = ipam.allocate_subnet(db, "auto")
    assert ipam.allocate_subnet(db, "auto") == auto
    assert len(db.list_leases()) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subnet": "10.213.2.0/24"}, "network front already exists with subnet 10.213.1.0/24, not 10.213.2.0/24"),
        (
            {"gateway": "10.213.1.9", "subnet": "10.213.1.0/24"},
            "already exists with gateway 10.213.1.1, not 10.213.1.9",
        ),
        (
            {"ip_range": "10.213.1.0/26", "subnet": "10.213.1.0/24"},
            "already exists with no ip_range, not 10.213.1.0/26",
        ),
    ],
)
def test_changing_the_addressing_of_an_existing_network_is_refused(
    db: StateDB, kwargs: dict[str, str], message: str
) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    with pytest.raises(IPAMError, match=message):
        ipam.allocate_subnet(db, "front", **kwargs)  # type: ignore[arg-type]


# -- dynamic addresses ----------------------------------------------------------------------------------


def test_dynamic_addresses_are_the_lowest_free_skipping_reserved(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    got = [ipam.allocate_address(db, "front", f"container/c{i}") for i in range(3)]
    assert got == [Addr("10.213.1.2"), Addr("10.213.1.3"), Addr("10.213.1.4")]


def test_a_gateway_elsewhere_frees_the_first_address(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24", gateway="10.213.1.2")
    got = [ipam.allocate_address(db, "front", f"container/c{i}") for i in range(2)]
    assert got == [Addr("10.213.1.1"), Addr("10.213.1.3")]


def test_dynamic_addresses_come_from_the_ip_range(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24", ip_range="10.213.1.252/30")
    got = [ipam.allocate_address(db, "front", f"container/c{i}") for i in range(3)]
    assert got == [Addr("10.213.1.252"), Addr("10.213.1.253"), Addr("10.213.1.254")]  # .255 is the broadcast
    with pytest.raises(IPAMError, match=r"network front: no free address left in 10.213.1.252/30"):
        ipam.allocate_address(db, "front", "container/c3")


def test_an_ip_range_at_the_start_of_the_subnet_skips_network_and_gateway(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24", ip_range="10.213.1.0/30")
    got = [ipam.allocate_address(db, "front", f"container/c{i}") for i in range(2)]
    assert got == [Addr("10.213.1.2"), Addr("10.213.1.3")]
    with pytest.raises(IPAMError, match="no free address left"):
        ipam.allocate_address(db, "front", "container/c2")


def test_a_full_subnet_is_an_error_naming_the_network(db: StateDB) -> None:
    ipam.allocate_subnet(db, "tiny", subnet="10.213.1.0/30")
    assert ipam.allocate_address(db, "tiny", "container/a") == Addr("10.213.1.2")
    with pytest.raises(IPAMError, match=r"network tiny: no free address left in 10.213.1.0/30"):
        ipam.allocate_address(db, "tiny", "container/b")
    assert db.get_lease("tiny", "container/b") is None


def test_asking_again_returns_the_owners_lease(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    first = ipam.allocate_address(db, "front", "container/web")
    ipam.allocate_address(db, "front", "container/db")
    assert ipam.allocate_address(db, "front", "container/web") == first
    assert ipam.allocate_address(db, "front", "container/web", requested=first) == first
    assert len(db.list_leases("front", owner="container/web")) == 1


def test_unknown_network_and_empty_owner_are_errors(db: StateDB) -> None:
    with pytest.raises(IPAMError, match="network nowhere does not exist"):
        ipam.allocate_address(db, "nowhere", "container/web")
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    with pytest.raises(IPAMError, match="network front: an address needs an owner"):
        ipam.allocate_address(db, "front", "")


# -- static addresses -------------------------------------------------------------------------------------


def test_a_static_address_is_leased_and_skipped_by_dynamic_ones(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    assert ipam.allocate_address(db, "front", "container/fixed", requested="10.213.1.2") == Addr("10.213.1.2")
    assert ipam.allocate_address(db, "front", "container/next") == Addr("10.213.1.3")


def test_a_static_address_may_lie_outside_the_ip_range(db: StateDB) -> None:
    """Docker's rule: ip_range bounds dynamic addresses only, so statics can live beside it."""
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24", ip_range="10.213.1.128/25")
    assert ipam.allocate_address(db, "front", "container/s", requested=Addr("10.213.1.10")) == Addr("10.213.1.10")
    assert ipam.allocate_address(db, "front", "container/d") == Addr("10.213.1.128")


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("10.213.2.5", "^container/x: address 10.213.2.5 on network front is outside its subnet 10.213.1.0/24"),
        ("10.213.1.0", "address 10.213.1.0 on network front is the network or broadcast address"),
        ("10.213.1.255", "address 10.213.1.255 on network front is the network or broadcast address"),
        ("10.213.1.1", "address 10.213.1.1 on network front is the network's gateway"),
        ("10.213.1.300", "network front: requested address '10.213.1.300' is not an IPv4 address"),
        ("10.213.1.7", "^container/x: address 10.213.1.7 on network front is already held by container/holder"),
    ],
)
def test_bad_static_addresses_are_refused(db: StateDB, requested: str, message: str) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    ipam.allocate_address(db, "front", "container/holder", requested="10.213.1.7")
    with pytest.raises(IPAMError, match=message):
        ipam.allocate_address(db, "front", "container/x", requested=requested)
    assert db.get_lease("front", "container/x") is None


def test_an_owner_asking_for_another_static_must_release_first(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    ipam.allocate_address(db, "front", "container/web")
    with pytest.raises(
        IPAMError, match=re.escape("container/web already holds 10.213.1.2 on network front, not 10.213.1.9")
    ):
        ipam.allocate_address(db, "front", "container/web", requested="10.213.1.9")
    ipam.release(db, "front", "container/web")
    assert ipam.allocate_address(db, "front", "container/web", requested="10.213.1.9") == Addr("10.213.1.9")


# -- release and removal ------------------------------------------------------------------------------------


def test_release_frees_the_address_for_reuse(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    for name in "abc":
        ipam.allocate_address(db, "front", f"container/{name}")
    assert ipam.release(db, "front", "container/a") == Addr("10.213.1.2")
    assert ipam.release(db, "front", "container/a") is None  # twice is harmless
    assert ipam.release(db, "nowhere", "container/a") is None
    assert ipam.allocate_address(db, "front", "container/d") == Addr("10.213.1.2")


def test_release_all_frees_an_owner_on_every_network(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    ipam.allocate_subnet(db, "back", subnet="10.213.2.0/24")
    for network in ("front", "back"):
        ipam.allocate_address(db, network, "container/web")
        ipam.allocate_address(db, network, "container/db")
    released = ipam.release_all(db, "container/web")
    assert released == [
        Lease("back", Addr("10.213.2.2"), "container/web"),
        Lease("front", Addr("10.213.1.2"), "container/web"),
    ]
    assert db.list_leases(owner="container/web") == []
    assert len(db.list_leases(owner="container/db")) == 2
    assert ipam.release_all(db, "container/web") == []


def test_the_gateway_lease_is_not_released_by_hand(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    with pytest.raises(IPAMError, match="gateway's lease is released only with its network"):
        ipam.release(db, "front", ipam.GATEWAY_OWNER)
    with pytest.raises(IPAMError, match="gateway's lease"):
        ipam.release_all(db, ipam.GATEWAY_OWNER)
    assert db.get_lease("front", ipam.GATEWAY_OWNER) is not None


def test_remove_network_refuses_while_addresses_are_held(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    ipam.allocate_address(db, "front", "container/web")
    ipam.allocate_address(db, "front", "container/db")
    with pytest.raises(
        IPAMError,
        match=re.escape(
            "network front is still in use: addresses held by container/web (10.213.1.2), container/db (10.213.1.3)"
        ),
    ):
        ipam.remove_network(db, "front")
    assert db.get_network("front") is not None
    ipam.release_all(db, "container/web")
    ipam.release_all(db, "container/db")
    assert ipam.remove_network(db, "front") is True
    assert db.list_leases() == []
    assert ipam.remove_network(db, "front") is False


def test_forced_removal_drops_leases_and_endpoints_and_frees_the_subnet(db: StateDB) -> None:
    ipam.allocate_subnet(db, "front", subnet="10.213.1.0/24")
    address = ipam.allocate_address(db, "front", "container/web")
    db.put_endpoint(Endpoint("web", "front", "eth0", address))
    assert ipam.remove_network(db, "front", force=True) is True
    assert (db.list_networks(), db.list_leases(), db.list_endpoints()) == ([], [], [])
    assert ipam.allocate_subnet(db, "again", subnet="10.213.1.0/24").subnet == Net("10.213.1.0/24")


def test_leases_survive_reopening_the_database(tmp_path: Path) -> None:
    with StateDB(str(tmp_path)) as store:
        ipam.allocate_subnet(store, "front", subnet="10.213.1.0/24")
        web = ipam.allocate_address(store, "front", "container/web")
        fixed = ipam.allocate_address(store, "front", "container/fixed", requested="10.213.1.50")
    with StateDB(str(tmp_path)) as store:
        assert ipam.allocate_address(store, "front", "container/web") == web
        assert ipam.allocate_address(store, "front", "container/fixed") == fixed
        assert ipam.allocate_address(store, "front", "container/new") == Addr("10.213.1.3")
        assert ipam.allocate_subnet(store, "front").subnet == Net("10.213.1.0/24")


# -- the host's networks --------------------------------------------------------------------------------------


def test_host_networks_include_loopback_and_no_default_route() -> None:
    found = ipam.host_networks()
    assert Net("127.0.0.0/8") in found
    assert all(network.prefixlen > 0 for network in found)
    assert all(isinstance(network, Net) for network in found)


# -- validate_plan ------------------------------------------------------------------------------------------------


def test_a_valid_plan_has_no_errors() -> None:
    networks: list[ipam.NetworkEntry] = [
        ("front", "10.213.1.0/24", "10.213.1.254", "10.213.1.128/25"),
        ("back", Net("10.213.2.0/24"), None, None),
        ("auto", None, None, None),
        ipam.PlannedNetwork("side", "10.213.3.0/24"),
    ]
    statics: list[ipam.StaticEntry] = [
        ("web", "front", "10.213.1.10"),
        ("api", "front", Addr("10.213.1.200")),
        ("web", "back", "10.213.2.10"),
        ipam.PlannedStatic("db", "side", "10.213.3.2"),
    ]
    assert ipam.validate_plan(networks, statics) == []


@pytest.mark.parametrize(
    ("networks", "statics", "errors"),
    [
        (
            [
                ("a", "10.213.0.0/16", None, None),
                ("b", "10.213.4.0/24", None, None),
                ("c", "10.213.4.128/25", None, None),
            ],
            [],
            [
                "network b: subnet 10.213.4.0/24 overlaps subnet 10.213.0.0/16 of network a",
                "network c: subnet 10.213.4.128/25 overlaps subnet 10.213.0.0/16 of network a",
                "network c: subnet 10.213.4.128/25 overlaps subnet 10.213.4.0/24 of network b",
            ],
        ),
        (
            [("a", "10.213.1.0/24", "10.213.9.1", "10.213.2.0/24")],
            [],
            [
                "network a: gateway 10.213.9.1 is outside subnet 10.213.1.0/24",
                "network a: ip_range 10.213.2.0/24 is outside subnet 10.213.1.0/24",
            ],
        ),
        (
            [("a", "10.213.1.0/24", "10.213.1.255", None), ("b", None, "10.213.1.1", None)],
            [],
            [
                "network a: gateway 10.213.1.255 is the network or broadcast address of 10.213.1.0/24",
                "network b: gateway needs an explicit subnet",
            ],
        ),
        (
            [("a", "10.213.1.5/24", None, None), ("a", "10.213.2.0/24", None, None)],
            [],
            [
                "network a: subnet '10.213.1.5/24' is not an IPv4 network (10.213.1.5/24 has host bits set)",
                "network a is declared more than once",
            ],
        ),
        (
            [("a", "10.213.1.0/24", None, "10.213.1.128/25")],
            [
                ("web", "a", "10.213.1.9"),
                ("db", "a", "10.213.1.9"),
                ("out", "a", "10.213.7.1"),
                ("gw", "a", "10.213.1.1"),
                ("bc", "a", "10.213.1.255"),
                ("bad", "a", "nonsense"),
            ],
            [
                "container db: address 10.213.1.9 on network a is also given to web",
                "container out: address 10.213.7.1 on network a is outside its subnet 10.213.1.0/24",
                "container gw: address 10.213.1.1 on network a is the network's gateway",
                "container bc: address 10.213.1.255 on network a is the network or broadcast address of 10.213.1.0/24",
                "network a: address of container bad 'nonsense' is not an IPv4 address "
                "(Expected 4 octets in 'nonsense')",
            ],
        ),
        (
            [("auto", None, None, None), ("broken", "x", None, None)],
            [("web", "auto", "10.213.1.9"), ("web", "ghost", "10.213.1.9"), ("web", "broken", "10.213.1.9")],
            [
                "network broken: subnet 'x' is not an IPv4 network (Expected 4 octets in 'x')",
                "container web: a static address (10.213.1.9) needs network auto to declare its subnet",
                "container web: static address on network ghost, which is not declared",
            ],
        ),
    ],
)
def test_validate_plan_names_every_problem(
    networks: Sequence[tuple[str, str | None, str | None, str | None]],
    statics: Sequence[tuple[str, str, str]],
    errors: list[str],
) -> None:
    assert ipam.validate_plan(networks, statics) == errors


def test_validate_plan_uses_the_default_gateway_for_statics() -> None:
    errors = ipam.validate_plan([("a", "10.213.1.0/24", None, None)], [("web", "a", "10.213.1.1")])
    assert errors == ["container web: address 10.213.1.1 on network a is the network's gateway"]


# -- concurrency ------------------------------------------------------------------------------------------------------


def _allocate_release_allocate(store: StateDB, owner: str) -> ipaddress.IPv4Address:
    ipam.allocate_address(store, "busy", owner)
    ipam.release(store, "busy", owner)
    return ipam.allocate_address(store, "busy", owner)


def _check_distinct_and_release(db: StateDB, got: dict[str, ipaddress.IPv4Address]) -> None:
    assert len(got) == 20
    assert len(set(got.values())) == 20
    leases = {lease.owner: lease.address for lease in db.list_leases("busy") if lease.owner != ipam.GATEWAY_OWNER}
    assert leases == got
    assert all(address in Net("10.213.9.0/24") for address in got.values())


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_twenty_threads_get_distinct_addresses(tmp_path: Path, shared: bool) -> None:
    main = StateDB(str(tmp_path))
    stores = [main if shared else StateDB(str(tmp_path)) for _ in range(20)]
    try:
        ipam.allocate_subnet(main, "busy", subnet="10.213.9.0/24")
        barrier = threading.Barrier(20)
        got: dict[str, ipaddress.IPv4Address] = {}
        failures: list[BaseException] = []

        def work(index: int) -> None:
            try:
                barrier.wait()
                got[f"container/c{index}"] = _allocate_release_allocate(stores[index], f"container/c{index}")
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(index,)) for index in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        _check_distinct_and_release(main, got)

        barrier = threading.Barrier(20)
        releases = [
            threading.Thread(target=lambda i=index: (barrier.wait(), ipam.release_all(stores[i], f"container/c{i}")))
            for index in range(20)
        ]
        for thread in releases:
            thread.start()
        for thread in releases:
            thread.join()
        assert [lease.owner for lease in main.list_leases("busy")] == [ipam.GATEWAY_OWNER]
    finally:
        for store in {id(store): store for store in [main, *stores]}.values():
            store.close()


def _allocate_in_child(
    root: str, index: int, barrier: threading.Barrier, results: multiprocessing.queues.Queue[tuple[str, str]]
) -> None:
    barrier.wait()
    owner = f"container/c{index}"
    try:
        with StateDB(root) as store:
            results.put((owner, str(_allocate_release_allocate(store, owner))))
    except Exception as exc:
        results.put((owner, f"error: {exc}"))


def _release_in_child(root: str, index: int, barrier: threading.Barrier) -> None:
    barrier.wait()
    with StateDB(root) as store:
        ipam.release_all(store, f"container/c{index}")


def _run_children(children: list[multiprocessing.process.BaseProcess]) -> None:
    try:
        for child in children:
            child.start()
        for child in children:
            child.join(120)
        assert [child.exitcode for child in children] == [0] * len(children)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
            child.join()


def test_twenty_processes_get_distinct_addresses(db: StateDB, tmp_path: Path) -> None:
    ipam.allocate_subnet(db, "busy", subnet="10.213.9.0/24")
    results: multiprocessing.queues.Queue[tuple[str, str]] = FORK.Queue()
    barrier = FORK.Barrier(20)
    children: list[multiprocessing.process.BaseProcess] = [
        FORK.Process(target=_allocate_in_child, args=(str(tmp_path), index, barrier, results)) for index in range(20)
    ]
    _run_children(children)
    reported = dict(results.get(timeout=10) for _ in range(20))
    assert [value for value in reported.values() if value.startswith("error")] == []
    _check_distinct_and_release(db, {owner: Addr(address) for owner, address in reported.items()})

    barrier = FORK.Barrier(20)
    _run_children([FORK.Process(target=_release_in_child, args=(str(tmp_path), index, barrier)) for index in range(20)])
    assert [lease.owner for lease in db.list_leases("busy")] == [ipam.GATEWAY_OWNER]
