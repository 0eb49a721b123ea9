"""The /etc files every container gets."""

from __future__ import annotations

from pathlib import Path

from reconciler.runtime import etcfiles


def test_loopback_nameservers_are_dropped() -> None:
    host = "# generated\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.1.2.3\nsearch example.internal\n"
    assert etcfiles.resolv_conf(host) == "# generated\nnameserver 10.1.2.3\nsearch example.internal\n"
    # only loopback resolvers (systemd-resolved, dnsmasq): none left for the container
    assert etcfiles.resolv_conf("nameserver 127.0.0.1\n") == "# no nameserver reachable from the container\n"
    assert etcfiles.resolv_conf("") == "# no nameserver reachable from the container\n"


def test_files_are_written_and_mounted_over_the_images(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.53\n")
    mounts = etcfiles.write(str(tmp_path / "etc"), "web-1", host_resolv_conf=str(host))
    assert [m.target for m in mounts] == ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
    assert (tmp_path / "etc" / "hostname").read_text() == "web-1\n"
    assert "127.0.1.1\tweb-1\n" in (tmp_path / "etc" / "hosts").read_text()
    assert (tmp_path / "etc" / "resolv.conf").read_text() == "nameserver 192.0.2.53\n"
