"""Checks across objects of one stack: duplicate names, references to undefined
objects, depends_on cycles, host ports published twice, overlapping subnets and
static addresses. Each error is reported at the document and field that cause it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, ip_address
from typing import TYPE_CHECKING, Any

from ruamel.yaml.nodes import SequenceNode

from reconciler.manifests import yamlnodes
from reconciler.model.container import ContainerSpec, parse_port
from reconciler.model.network import Network
from reconciler.model.reference import parse_reference
from reconciler.model.service import Service

if TYPE_CHECKING:
    from reconciler.manifests.loader import Document


def check_references(documents: list[Document]) -> None:
    """Append errors to the documents they concern."""
    names: dict[tuple[str, str], Document] = {}
    for doc in documents:
        if doc.kind is None or doc.name is None:
            continue
        first = names.get((doc.kind, doc.name))
        if first is not None:
            doc.errors.append(
                doc.error(
                    ("metadata", "name"),
                    f"duplicate {doc.kind} name {doc.name!r} (first defined at {_where(first)})",
                )
            )
        else:
            names[(doc.kind, doc.name)] = doc
    defined = {kind: {n for (k, n) in names if k == kind} for kind in ("Image", "Network", "Volume")}
    workloads = {n: d for (k, n), d in names.items() if k in ("Container", "Service")}
    _check_replica_names(names)
    valid = [d for d in documents if d.checkable is not None]
    for doc, at, spec in _workloads(valid):
        _check_workload(doc, at, spec, defined, workloads)
    _check_cycles(valid)
    _check_ports(valid)
    _check_networks(valid)


def _where(doc: Document) -> str:
    return f"{doc.file}:{doc.node.start_mark.line + 1}"


def _workloads(docs: list[Document]) -> Iterator[tuple[Document, tuple[str, ...], ContainerSpec]]:
    for doc in docs:
        obj: Any = doc.checkable
        if doc.kind == "Container":
            yield doc, ("spec",), obj.spec
        elif doc.kind == "Service":
            yield doc, ("spec", "template"), obj.spec.template


def _check_replica_names(names: dict[tuple[str, str], Document]) -> None:
    """A Service ``web`` owns the container names ``web-1`` … ``web-N``."""
    services = {n for (k, n) in names if k == "Service"}
    for (kind, name), doc in names.items():
        match = re.match(r"^(.*)-([1-9][0-9]*)$", name)  # replicas are numbered from 1, unpadded
        if kind == "Container" and match and match.group(1) in services:
            doc.errors.append(
                doc.error(
                    ("metadata", "name"),
                    f"container name {name!r} collides with a replica of service {match.group(1)!r}",
                )
            )
        if kind == "Service" and ("Container", name) in names:
            doc.errors.append(
                doc.error(
                    ("metadata", "name"), f"service {name!r} has the same name as a container; DNS would be ambiguous"
                )
            )


def _check_workload(
    doc: Document,
    at: tuple[str, ...],
    spec: ContainerSpec,
    defined: dict[str, set[str]],
    workloads: dict[str, Document],
) -> None:
    image = spec.image
    if image not in defined["Image"]:
        try:
            ref = parse_reference(image)
        except ValueError as exc:
            doc.errors.append(doc.error((*at, "image"), str(exc)))
        else:
            if ref.tag is None and ref.digest is None and ref.registry is None and "/" not in image:
                doc.errors.append(
                    doc.error(
                        (*at, "image"),
                        f"undefined image {image!r}: define an Image named {image!r} "
                        f"or write a full reference such as {image}:latest",
                    )
                )
    for network in spec.networks:
        if network not in defined["Network"]:
            doc.errors.append(doc.error((*at, "networks", network), f"undefined network {network!r}"))
    for index, mount in enumerate(spec.volumes):
        if mount.type == "volume" and mount.source not in defined["Volume"]:
            doc.errors.append(doc.error((*at, "volumes", index), f"undefined volume {mount.source!r}"))
    for target in spec.depends_on:
        if target == doc.name:
            doc.errors.append(doc.error((*at, "depends_on", target), "an object cannot depend on itself"))
        elif target not in workloads:
            doc.errors.append(
                doc.error((*at, "depends_on", target), f"undefined dependency {target!r}: no Container or Service")
            )
    service = doc.checkable
    if isinstance(service, Service) and any(p.host_port is None for p in spec.ports):
        # the service publishes each port once, at a healthy replica: it needs a fixed host port
        doc.errors.append(doc.error((*at, "ports"), "a Service's published ports need a host port (HOST:CONTAINER)"))
    shared_static = any(a.ipv4_address is not None for a in spec.networks.values())
    if isinstance(service, Service) and service.spec.replicas > 1 and shared_static:
        doc.errors.append(doc.error((*at, "networks"), "a static ipv4_address cannot be shared by several replicas"))


def _check_cycles(docs: list[Document]) -> None:
    """depends_on must be acyclic; each cycle is reported once, at its first member."""
    graph: dict[str, list[str]] = {}
    by_name: dict[str, Document] = {}
    for doc, _at, spec in _workloads(docs):
        assert doc.name is not None
        graph[doc.name] = [t for t in spec.depends_on if t != doc.name]
        by_name[doc.name] = doc
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in graph.get(name, []):
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    doc = by_name[cycle[0]]
                    at = ("spec", "depends_on") if doc.kind == "Container" else ("spec", "template", "depends_on")
                    chain = " -> ".join([*cycle, cycle[0]])
                    doc.errors.append(
                        doc.error((*at, cycle[1] if len(cycle) > 1 else target), f"dependency cycle: {chain}")
                    )
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name)


def _check_ports(docs: list[Document]) -> None:
    """A host port (per protocol) is published once; an unset host IP overlaps every IP."""
    taken: dict[tuple[str, int], list[tuple[str | None, Document]]] = {}
    for doc, at, spec in _workloads(docs):
        raw_items = raw_items_at(doc, (*at, "ports"))
        for index, port in enumerate(spec.ports):
            if port.host_port is None:
                continue
            key = (port.protocol, port.host_port)
            for ip, other in taken.get(key, []):
                if ip is None or port.host_ip is None or ip == port.host_ip:
                    shown = f"{port.host_ip + ':' if port.host_ip else ''}{port.host_port}/{port.protocol}"
                    doc.errors.append(
                        doc.error(
                            (*at, "ports", written_port_index(raw_items, index)),
                            f"host port {shown} is already published by {other.label} ({_where(other)})",
                        )
                    )
                    break
            else:
                taken.setdefault(key, []).append((port.host_ip, doc))


def raw_items_at(doc: Document, path: tuple[str, ...]) -> list[Any]:
    """The items of the list at ``path`` as written in the file (before short forms expand)."""
    node: Any = doc.node
    for element in path:
        node, _ = yamlnodes.child(node, element)
        if node is None:
            return []
    if not isinstance(node, SequenceNode):  # e.g. ``ports: 8080``: a scalar's value is a str
        return []
    return [yamlnodes.to_data(item) for item in node.value]


def written_port_index(raw_items: list[Any], canonical_index: int) -> int:
    """The index of the item as written, when ranges expanded into several mappings."""
    position = 0
    for index, item in enumerate(raw_items):
        try:
            position += len(parse_port(item))
        except ValueError:
            position += 1
        if canonical_index < position:
            return index
    return canonical_index


def _check_networks(docs: list[Document]) -> None:
    subnets: list[tuple[IPv4Network, Document]] = []
    networks: dict[str, Any] = {}
    for doc in docs:
        network = doc.checkable
        if not isinstance(network, Network):
            continue
        spec = network.spec
        assert doc.name is not None
        networks[doc.name] = spec
        if spec.subnet is None:
            continue
        for subnet, other in subnets:
            if subnet.overlaps(spec.subnet):
                doc.errors.append(
                    doc.error(
                        ("spec", "subnet"),
                        f"subnet {spec.subnet} overlaps {subnet} of {other.label} ({_where(other)})",
                    )
                )
                break
        else:
            subnets.append((spec.subnet, doc))
    addresses: dict[tuple[str, IPv4Address], Document] = {}
    for doc, at, cspec in _workloads(docs):
        for name, attachment in cspec.networks.items():
            address = attachment.ipv4_address
            if address is None or name not in networks:
                continue
            where = (*at, "networks", name, "ipv4_address")
            net = networks[name]
            if net.subnet is None:
                doc.errors.append(doc.error(where, f"a static address needs network {name!r} to set a subnet"))
                continue
            if address not in net.subnet:
                doc.errors.append(doc.error(where, f"{address} is outside subnet {net.subnet} of network {name!r}"))
                continue
            gateway = net.gateway or ip_address(int(net.subnet.network_address) + 1)
            if address in (net.subnet.network_address, net.subnet.broadcast_address, gateway):
                doc.errors.append(
                    doc.error(where, f"{address} is reserved in subnet {net.subnet} (network, broadcast or gateway)")
                )
                continue
            user = addresses.get((name, address))
            if user is not None:
                doc.errors.append(doc.error(where, f"{address} on network {name!r} is already used by {user.label}"))
            else:
                addresses[(name, address)] = doc
