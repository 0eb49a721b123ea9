"""What exists now, as drivers report it. Filled by the runtime, image, network and
state layers; the planner compares it with ``Desired``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

KindName = Literal["Image", "Network", "Volume", "Container", "Service"]


class ObservedObject(BaseModel):
    """One existing object.

    ``owner`` is the stack recorded in its ownership label, None when it was made
    by hand. ``manifest`` is the canonical manifest it was last applied from (from
    the state store), None when unknown. ``digest`` is, for an Image, the digest its
    reference resolved to; for a Container or Service, the digest of the image it runs.
    """

    model_config = ConfigDict(frozen=True)

    kind: KindName
    name: str
    owner: str | None = None
    manifest: dict[str, Any] | None = None
    digest: str | None = None
    status: str = "present"


class Observed(BaseModel):
    model_config = ConfigDict(frozen=True)

    objects: list[ObservedObject] = Field(default_factory=list)
