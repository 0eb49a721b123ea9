"""The Volume kind: named storage whose data outlives containers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reconciler.model.common import API_VERSION, Metadata, ScalarStr, Strict


class VolumeSpec(Strict):
    driver: Literal["local"] = "local"
    options: dict[str, ScalarStr] = Field(
        default_factory=dict, description="driver options (local: type, device, o), as docker volume create -o"
    )
    retain_policy: Literal["retain", "delete"] = Field(
        default="retain",
        description="retain: never deleted by prune or a spec change unless --prune-volumes; "
        "delete: removed when the manifests no longer list it",
    )


class Volume(Strict):
    apiVersion: Literal["reconcile/v1"] = API_VERSION
    kind: Literal["Volume"] = "Volume"
    metadata: Metadata
    spec: VolumeSpec = Field(default_factory=VolumeSpec)
