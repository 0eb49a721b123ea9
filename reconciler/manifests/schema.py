"""JSON Schemas generated from the models: one per kind, one for any document, and
one for the ``--output json`` plan format. Checked in under ``schemas/`` and kept
fresh by a test, so editors (yaml-language-server) validate and complete manifests.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from reconciler.model.manifest import KINDS, Manifest
from reconciler.model.plan import Plan

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _finish(schema: dict[str, Any], name: str, title: str) -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, "$id": f"{name}.json", "title": title, **schema}


def generate() -> dict[str, dict[str, Any]]:
    """File name → schema, for every schema reconcile publishes."""
    out: dict[str, dict[str, Any]] = {}
    for kind, model in KINDS.items():
        name = kind.lower()
        out[f"{name}.json"] = _finish(model.model_json_schema(), name, f"reconcile/v1 {kind}")
    out["manifest.json"] = _finish(TypeAdapter(Manifest).json_schema(), "manifest", "reconcile/v1 manifest (any kind)")
    out["plan.json"] = _finish(Plan.model_json_schema(mode="serialization"), "plan", "reconcile plan --output json")
    return out


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
