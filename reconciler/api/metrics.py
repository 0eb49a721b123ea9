"""Prometheus metrics at ``/metrics`` (prometheus-client), one registry per agent:
API requests by route and status, reconcile passes and rollouts, pulled bytes, and
containers by state, read from the engine when scraped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from reconciler.api.errors import Handler

if TYPE_CHECKING:
    from reconciler.engine.core import Engine


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "reconcile_api_request_duration_seconds",
            "API requests by route, method and status, and how long they took",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.passes = Counter(
            "reconcile_passes_total", "Reconcile passes by outcome", ["outcome"], registry=self.registry
        )
        self.pass_seconds = Histogram(
            "reconcile_pass_duration_seconds", "Duration of reconcile passes", registry=self.registry
        )
        self.rollouts = Counter(
            "reconcile_rollouts_total", "Service rollouts by result", ["result"], registry=self.registry
        )
        self.pull_bytes = Counter("reconcile_pull_bytes_total", "Bytes pulled from registries", registry=self.registry)
        self.registry.register(_ContainerStates(engine))
        engine.observers.append(self.observe)

    def observe(self, event: str, fields: dict[str, Any]) -> None:
        """What the engine did, as counters: pulled bytes, rollout results."""
        if event == "pulled":
            self.pull_bytes.inc(int(fields.get("bytes", 0)))
        elif event == "rollout":
            self.rollouts.labels(str(fields.get("result", "unknown"))).inc()

    def observe_pass(self, outcome: str, seconds: float) -> None:
        self.passes.labels(outcome).inc()
        self.pass_seconds.observe(seconds)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            self.requests.labels(route, request.method, str(status)).observe(time.monotonic() - started)

    async def handler(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _ContainerStates:
    """``reconcile_containers{state=…}``, counted when scraped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("reconcile_containers", "Containers by state", labels=["state"])
        counts = {"created": 0, "running": 0, "paused": 0, "exited": 0}
        try:
            for row in self.engine.containers.list(all=True):
                counts[row["status"]] = counts.get(row["status"], 0) + 1
        except Exception:
            pass
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family
