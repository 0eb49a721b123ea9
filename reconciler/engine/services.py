"""Services: what the reconcile loop applied of ``kind: Service`` and how its replicas
are now (``engine.models.services``). Read-only: the loop makes, scales, updates and
removes services from manifests (``control.services``).

A service is known once its manifest is recorded in the state database; its replicas
are the containers whose state names it (``spec["service"]["name"]``), ``NAME-1`` …
``NAME-N``. ``list`` reads only those two; ``inspect`` also hashes the recorded
template (with the manifest model, as the loop does) to tell updated replicas from
outdated ones.
"""

from __future__ import annotations

import builtins
import re
from typing import TYPE_CHECKING, Any

from reconciler.engine import errors
from reconciler.engine.models import services as models
from reconciler.exitcodes import EXIT_FAILED

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.runtime.state import ContainerState
    from reconciler.state.db import ObjectRecord


class Services:
    """``models.ServicesAPI`` in-process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list(self) -> builtins.list[models.ServiceSummary]:
        """Every service the loop applied, by name."""
        records = self._records()
        replicas = self._replicas()
        return [self._summary(record, replicas.get(record.name, [])) for record in records]

    def inspect(self, name: str) -> models.ServiceDocument:
        """One service: its summary, each replica (status, health, template) and the
        spec as applied. An unknown service is NotFound."""
        record = self._record(name)
        replicas = self._replicas().get(name, [])
        wanted = _template_hash(record)
        states: builtins.list[models.ReplicaInfo] = []
        from reconciler.runtime.health import read_health

        for state in replicas:
            checked = read_health(self._engine.config.root, state.name)
            template = (state.spec.get("service") or {}).get("template")
            states.append(
                {
                    "name": state.name,
                    "status": state.status,
                    "health": checked.status if checked is not None else None,
                    "template": template,
                    "pid": state.pid if state.status in ("running", "paused") else 0,
                    "updated": template == wanted,
                }
            )
        return {
            **self._summary(record, replicas),
            "template": wanted,
            "replicas_updated": sum(1 for s in states if s["updated"]),
            "replicas": states,
            "spec": dict(record.manifest.get("spec") or {}),
        }

    # --- reading ---------------------------------------------------------------------

    def _records(self) -> builtins.list[ObjectRecord]:
        from reconciler.state.db import StateError

        try:
            return self._engine.wiring.state_db().list_objects("Service")
        except StateError as exc:
            raise errors.Unavailable(str(exc), exit_code=EXIT_FAILED) from None

    def _record(self, name: str) -> ObjectRecord:
        from reconciler.state.db import StateError

        try:
            record = self._engine.wiring.state_db().get_object("Service", name)
        except StateError as exc:
            raise errors.Unavailable(str(exc), exit_code=EXIT_FAILED) from None
        if record is None:
            raise errors.NotFound(f"no such service: {name}")
        return record

    def _replicas(self) -> dict[str, builtins.list[ContainerState]]:
        """Every service's replicas, by service name, each list by replica number."""
        from reconciler.runtime.containers import ContainerError

        try:
            states = self._engine.wiring.runtime().containers()
        except (ContainerError, OSError) as exc:
            raise errors.Internal(f"containers: {exc}") from None
        found: dict[str, builtins.list[ContainerState]] = {}
        for state in states:
            service = (state.spec.get("service") or {}).get("name")
            if service:
                found.setdefault(service, []).append(state)
        for replicas in found.values():
            replicas.sort(key=lambda s: _slot(s.name))
        return found

    def _summary(self, record: ObjectRecord, replicas: builtins.list[ContainerState]) -> models.ServiceSummary:
        spec = record.manifest.get("spec") or {}
        template = spec.get("template") or {}
        return {
            "name": record.name,
            "stack": record.stack,
            "replicas_desired": int(spec.get("replicas", 1)),
            "replicas_running": sum(1 for s in replicas if s.status == "running"),
            "image": self._image(record.stack, str(template.get("image", ""))),
            "ports": [_port(p) for p in template.get("ports") or []],
            "update_order": str((spec.get("update") or {}).get("order", "stop-first")),
            "applied_at": record.updated_at,
        }

    def _image(self, stack: str, image: str) -> str:
        """The reference the replicas run: an Image of the stack by name resolves to
        what the store keeps it as (its pull reference, or its tag), as the loop does."""
        from reconciler.state.db import StateError

        try:
            record = self._engine.wiring.state_db().get_object("Image", image)
        except StateError as exc:
            raise errors.Unavailable(str(exc), exit_code=EXIT_FAILED) from None
        if record is None or record.stack != stack:
            return image
        spec = record.manifest.get("spec") or {}
        return str(spec.get("pull") or spec.get("tag") or f"{image}:latest")


def _template_hash(record: ObjectRecord) -> str:
    from pydantic import ValidationError

    from reconciler.control.services import template_hash
    from reconciler.model.service import ServiceSpec

    try:
        return template_hash(ServiceSpec.model_validate(record.manifest.get("spec") or {}).template)
    except ValidationError as exc:
        raise errors.Internal(f"service/{record.name}: the recorded manifest is not valid: {exc}") from None


def _port(port: dict[str, Any]) -> str:
    """A published port as ``[IP:]HOST:CONTAINER/PROTOCOL`` (``CONTAINER/PROTOCOL``
    without a host port)."""
    text = f"{port.get('container_port')}/{port.get('protocol', 'tcp')}"
    if port.get("host_port") is not None:
        text = f"{port['host_port']}:{text}"
    if port.get("host_ip"):
        host_ip = str(port["host_ip"])
        text = f"{'[' + host_ip + ']' if ':' in host_ip else host_ip}:{text}"
    return text


def _slot(replica: str) -> int:
    match = re.search(r"-(\d+)$", replica)
    return int(match.group(1)) if match else 0
