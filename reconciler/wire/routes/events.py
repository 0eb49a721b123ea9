"""Events over HTTP (``engine.models.events``): the reconcile loop's log."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/events",
        "events.list",
        query=(("since", "float"),),
        result="list[events.Event]",
        summary="the events so far (since: seconds since the epoch)",
    ),
    Route(
        "GET",
        "/v1/events/follow",
        "events.follow",
        kind="lines",
        query=(("since", "float"),),
        result="events.Event",
        summary="the events so far, then each one as it is appended",
    ),
)
