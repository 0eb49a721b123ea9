"""The Service kind: N replicas of a container template, updated by rolling batches."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from reconciler.model.common import API_VERSION, Duration, Metadata, Strict
from reconciler.model.container import ContainerSpec

_PERCENT_RE = re.compile(r"^(\d{1,3})%$")


def _count_or_percent(value: int | str) -> int | str:
    if isinstance(value, str):
        match = _PERCENT_RE.match(value)
        if not match or int(match.group(1)) > 100:
            raise ValueError(f"invalid value {value!r}: use a count or a percentage such as 25%")
        return f"{int(match.group(1))}%"  # canonical: "05%" is "5%", and "00%" is caught as "0%"
    elif value < 0:
        raise ValueError("must be 0 or more")
    return value


CountOrPercent = Annotated[int | str, AfterValidator(_count_or_percent)]


def resolve_count(value: int | str, total: int, *, round_up: bool) -> int:
    """A percentage of ``total`` (Kubernetes rounds surge up and unavailable down)."""
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    whole, rest = divmod(percent * total, 100)
    return whole + (1 if round_up and rest else 0)


class UpdatePolicy(Strict):
    parallelism: int = Field(default=1, ge=0, description="replicas replaced per batch; 0 replaces all at once")
    max_surge: CountOrPercent = Field(default=0, description="replicas allowed above the desired count")
    max_unavailable: CountOrPercent = Field(default=1, description="replicas allowed below the desired count")
    order: Literal["stop-first", "start-first"] = "stop-first"
    failure_action: Literal["rollback", "pause"] = "rollback"
    monitor: Duration = Field(default=5.0, description="time a batch must stay healthy before the next")

    @model_validator(mode="after")
    def _can_progress(self) -> UpdatePolicy:
        surge_zero = self.max_surge in (0, "0%")
        unavailable_zero = self.max_unavailable in (0, "0%")
        if surge_zero and unavailable_zero:
            raise ValueError("max_surge and max_unavailable cannot both be 0: the update could never progress")
        if self.order == "start-first" and surge_zero:
            raise ValueError("order start-first needs max_surge of 1 or more")
        if self.order == "stop-first" and unavailable_zero:
            raise ValueError("order stop-first needs max_unavailable of 1 or more")
        return self


class ServiceSpec(Strict):
    replicas: int = Field(default=1, ge=0, le=1000)
    template: ContainerSpec
    update: UpdatePolicy = Field(default_factory=UpdatePolicy)


class Service(Strict):
    apiVersion: Literal["reconcile/v1"] = API_VERSION
    kind: Literal["Service"] = "Service"
    metadata: Metadata
    spec: ServiceSpec
