"""The pure planner: desired vs observed → ordered actions with reasons. No I/O."""

from reconciler.plan.planner import plan

__all__ = ["plan"]
