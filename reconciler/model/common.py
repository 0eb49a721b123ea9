"""Building blocks shared by every manifest kind: metadata, names, canonical types.

Each ``Annotated`` type here pairs a parser that accepts what users write with a
JSON Schema that says so, so editors validate the same forms the loader accepts
while the model stores one canonical value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from reconciler.model import quantities

API_VERSION: Final = "reconcile/v1"

#: Labels under this prefix are written by reconcile itself (ownership); users may not set them.
RESERVED_LABEL_PREFIX = "reconcile."

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _dns_label(value: object) -> object:
    if isinstance(value, str):
        if len(value) > 63:
            raise ValueError(f"{value!r} is longer than 63 characters (a DNS label)")
        if not DNS_LABEL_RE.match(value):
            raise ValueError(
                f"{value!r} is not a DNS label: use lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
    return value


DNSLabel = Annotated[
    str,
    BeforeValidator(_dns_label),
    WithJsonSchema({"type": "string", "pattern": DNS_LABEL_RE.pattern, "maxLength": 63}),
]


def _scalar_to_str(value: object) -> object:
    """Accept YAML scalars where a string is meant (``PORT: 8080``, ``debug: true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return ""
    return value


ScalarStr = Annotated[
    str,
    BeforeValidator(_scalar_to_str),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]

Bytes = Annotated[
    int,
    BeforeValidator(quantities.parse_bytes),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kmgtpKMGTP][iI]?)?[bB]?\s*$"},
            ],
            "description": "bytes, or a size with a binary unit: 512m, 1.5g, 64Mi",
        }
    ),
]

Duration = Annotated[
    float,
    BeforeValidator(quantities.parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d)?)+$"},
            ],
            "description": "seconds, or a duration such as 30s, 1h30m, 500ms",
        }
    ),
]

Cpus = Annotated[
    float,
    BeforeValidator(quantities.parse_cpus),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*m?\s*$"},
            ],
            "description": "a number of CPUs (1.5) or millicores (500m)",
        }
    ),
]


class Strict(BaseModel):
    """Base of every manifest model: unknown fields are errors, values are canonical."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


def _check_label_keys(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not key or len(key) > 253 or any(c.isspace() for c in key):
            raise ValueError(f"invalid label key {key!r}: 1-253 characters, no whitespace")
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise ValueError(f"label key {key!r} uses the prefix {RESERVED_LABEL_PREFIX!r}, reserved for reconcile")
    return value


class Metadata(Strict):
    """Identity of an object. Labels become the runtime object's labels too."""

    name: DNSLabel = Field(description="the object's name within its kind: a DNS label")
    labels: dict[str, ScalarStr] = Field(default_factory=dict)
    annotations: dict[str, ScalarStr] = Field(default_factory=dict)
    drift: Literal["heal", "warn", "ignore"] = Field(
        default="heal",
        description="when the object is found changed or gone between passes: heal it, only report it, or neither",
    )

    _keys = field_validator("labels", "annotations")(_check_label_keys)


def string_or_list(value: Any) -> Any:
    """Accept a single string where a list of strings is meant."""
    return [value] if isinstance(value, str) else value


@dataclass(frozen=True, eq=False)  # hashed by identity: typing unions hash their members
class AlsoAccepts:
    """JSON Schema annotation: the value (or, with ``items``, each list item) may also
    be written in the short form ``schema``, which a BeforeValidator expands.

    The long form keeps pydantic's own schema, so ``$ref`` definitions stay intact.
    """

    schema: dict[str, Any]
    items: bool = False

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        generated = handler(core_schema)
        if self.items:
            return {**generated, "items": {"anyOf": [self.schema, generated["items"]]}}
        return {"anyOf": [self.schema, generated]}
