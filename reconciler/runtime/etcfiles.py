"""The ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf`` every container gets,
written per container and bind-mounted over the image's, as Docker does."""

from __future__ import annotations

import ipaddress
import os

from reconciler.runtime.spawn import MountSpec

HOST_RESOLV_CONF = "/etc/resolv.conf"


def resolv_conf(host_text: str) -> str:
    """The host's resolver configuration without loopback nameservers: a resolver on
    the host's 127.0.0.1 is unreachable from the container's own network namespace."""
    lines = []
    for line in host_text.splitlines():
        fields = line.split()
        if fields[:1] == ["nameserver"] and len(fields) > 1:
            try:
                if ipaddress.ip_address(fields[1].split("%")[0]).is_loopback:
                    continue
            except ValueError:
                continue
        lines.append(line)
    return "\n".join(lines).rstrip() + "\n" if lines else "# no nameserver reachable from the container\n"


def write(
    directory: str,
    hostname: str,
    *,
    host_resolv_conf: str = HOST_RESOLV_CONF,
    nameservers: list[str] | None = None,
    address: str | None = None,
) -> tuple[MountSpec, ...]:
    """Write the three files into ``directory``; the mounts that put them in place.
    ``nameservers`` (the embedded DNS of the container's networks) replace the
    host's; ``address`` is the container's own, for its name in /etc/hosts."""
    os.makedirs(directory, exist_ok=True)
    try:
        with open(host_resolv_conf) as handle:
            host_text = handle.read()
    except OSError:
        host_text = ""
    contents = {
        "hostname": f"{hostname}\n",
        "hosts": (
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{address or '127.0.1.1'}\t{hostname}\n"  # 127.0.1.1 without a network address of its own
        ),
        "resolv.conf": "".join(f"nameserver {server}\n" for server in nameservers) + "options ndots:0\n"
        if nameservers
        else resolv_conf(host_text),
    }
    mounts = []
    for name, text in contents.items():
        path = os.path.join(directory, name)
        with open(path, "w") as handle:
            handle.write(text)
        mounts.append(MountSpec(target=f"/etc/{name}", source=path))
    return tuple(mounts)
