"""The checked-in JSON Schemas match the models, and they accept the manifests we ship."""

from __future__ import annotations

import json
import pathlib

import pytest

from reconciler.manifests import schema

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"


def test_checked_in_schemas_are_fresh() -> None:
    from reconciler.api import openapi

    generated = {**schema.generate(), "openapi.json": openapi.document()}
    on_disk = {p.name for p in SCHEMAS.glob("*.json")}
    assert on_disk == set(generated), "schemas/ holds other files than the generator writes"
    stale = [name for name, content in generated.items() if (SCHEMAS / name).read_text() != schema.dumps(content)]
    assert not stale, f"stale schemas {stale}: run `reconcile schema --write`"


def test_one_schema_per_kind_and_any_document() -> None:
    names = set(schema.generate())
    assert {"image.json", "network.json", "volume.json", "container.json", "service.json"} <= names
    assert {"manifest.json", "plan.json"} <= names


def test_manifest_schema_dispatches_on_kind() -> None:
    document = schema.generate()["manifest.json"]
    assert document["discriminator"]["propertyName"] == "kind"
    assert set(document["discriminator"]["mapping"]) == {"Image", "Network", "Volume", "Container", "Service"}


def test_short_forms_are_in_the_schema() -> None:
    """Editors must accept what the loader accepts: `512m`, `"8080:80"`, `"data:/d:ro"`."""
    defs = schema.generate()["container.json"]["$defs"]
    spec = defs["ContainerSpec"]["properties"]
    assert {"type": ["string", "integer"]}.items() <= spec["ports"]["items"]["anyOf"][0].items()
    assert spec["volumes"]["items"]["anyOf"][0]["type"] == "string"
    memory = defs["Resources"]["properties"]["memory"]
    types = json.dumps(memory)
    assert '"integer"' in types and '"string"' in types


jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is only needed for this cross-check")


@pytest.mark.parametrize("directory", ["manifests", "examples/webapp"])
def test_shipped_manifests_validate_against_the_schema(directory: str) -> None:
    from reconciler.manifests import yamlnodes

    validator = jsonschema.Draft202012Validator(schema.generate()["manifest.json"])
    files = [p for p in (ROOT / directory).rglob("*.yaml") if p.name != "stack.yaml"]
    assert files
    for path in files:
        for node in yamlnodes.compose(path.read_text()):
            errors = list(validator.iter_errors(yamlnodes.to_data(node)))
            assert not errors, f"{path}: {errors[0].message}"
