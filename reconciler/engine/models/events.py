"""Events: the reconcile loop's log (``ROOT/events.jsonl``), one record per object
outcome, pass, drift, heal and invalid manifest set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, Required, TypedDict


class Event(TypedDict, total=False):
    """One record. ``time`` and ``event`` are always there; the rest depends on the
    event ("object": key, outcome, reason, stack, revision; "pass": reason, outcome,
    seconds, directory; "drift", "healed", "heal-failed", "invalid": key, stack,
    action, reason, directory). Fields not listed here may appear: readers keep
    what they do not know."""

    time: Required[float]  # seconds since the epoch
    event: Required[str]
    key: str
    outcome: str
    reason: str
    stack: str
    revision: str | None
    action: str
    directory: str
    seconds: float


class EventsAPI(Protocol):
    def list(self, *, since: float | None = None) -> list[Event]:
        """The events so far (at or after ``since``, seconds since the epoch)."""
        ...

    def follow(self, *, since: float | None = None) -> Iterator[Event]:
        """The events so far, then each one as it is appended; never ends by itself."""
        ...
