"""The Network kind: a bridge network with its own subnet."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from pydantic import Field, model_validator

from reconciler.model.common import API_VERSION, Metadata, Strict


class NetworkSpec(Strict):
    driver: Literal["bridge"] = "bridge"
    subnet: IPv4Network | None = Field(default=None, description="CIDR; chosen from the default pool when unset")
    gateway: IPv4Address | None = Field(default=None, description="defaults to the subnet's first address")
    ip_range: IPv4Network | None = Field(default=None, description="sub-range that containers' addresses come from")
    internal: bool = Field(default=False, description="no route out of the network")
    mtu: int | None = Field(default=None, ge=68, le=65535)

    @model_validator(mode="after")
    def _addresses_fit(self) -> NetworkSpec:
        if self.subnet is None:
            if self.gateway is not None or self.ip_range is not None:
                raise ValueError("gateway and ip_range need a subnet")
            return self
        if self.subnet.prefixlen > 30:
            raise ValueError(f"subnet {self.subnet} is too small: use /30 or larger")
        if self.gateway is not None and self.gateway not in self.subnet:
            raise ValueError(f"gateway {self.gateway} is outside subnet {self.subnet}")
        if self.gateway is not None and self.gateway in (self.subnet.network_address, self.subnet.broadcast_address):
            raise ValueError(f"gateway {self.gateway} is the network or broadcast address of {self.subnet}")
        if self.ip_range is not None and not self.ip_range.subnet_of(self.subnet):
            raise ValueError(f"ip_range {self.ip_range} is outside subnet {self.subnet}")
        return self


class Network(Strict):
    apiVersion: Literal["reconcile/v1"] = API_VERSION
    kind: Literal["Network"] = "Network"
    metadata: Metadata
    spec: NetworkSpec = Field(default_factory=NetworkSpec)
