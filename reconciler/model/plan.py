"""A plan: what to do to one stack, in which order, and why.

This is also the ``--output json`` format of ``reconcile plan`` (``schemas/plan.json``);
``FORMAT_VERSION`` changes only when a field changes meaning or goes away.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1

Op = Literal["create", "update", "recreate", "delete", "noop", "conflict"]
Phase = Literal["teardown", "setup"]


class Change(BaseModel):
    """One field that differs: ``path`` in dotted form (``spec.ports[0].host_port``)."""

    model_config = ConfigDict(frozen=True)

    path: str
    old: Any = None
    new: Any = None


class Action(BaseModel):
    """What happens to one object.

    ``rollout`` marks a Service update that replaces replicas batch by batch rather
    than touching them in place. ``depends_on`` lists keys of the actions that must
    finish first; ``wave`` is the earliest step wave in which this action runs.
    """

    model_config = ConfigDict(frozen=True)

    key: str
    kind: str
    name: str
    op: Op
    reasons: list[str] = Field(default_factory=list)
    changes: list[Change] = Field(default_factory=list)
    rollout: bool = False
    depends_on: list[str] = Field(default_factory=list)
    wave: int | None = Field(
        default=None, description="first wave this action has a step in; None for noop and conflict"
    )


class Step(BaseModel):
    """One unit of execution: a recreate is a teardown step and a setup step.

    Steps of the same wave depend on none of each other and may run in parallel;
    every step's dependencies are in earlier waves.
    """

    model_config = ConfigDict(frozen=True)

    wave: int
    key: str
    phase: Phase
    after: list[str] = Field(default_factory=list, description="'phase:key' of the steps this one waits for")


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    format_version: int = FORMAT_VERSION
    stack: str
    actions: list[Action] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)

    def count(self, op: Op) -> int:
        return sum(1 for a in self.actions if a.op == op)

    @property
    def has_changes(self) -> bool:
        return any(a.op not in ("noop",) for a in self.actions)

    @property
    def has_conflicts(self) -> bool:
        return any(a.op == "conflict" for a in self.actions)
