"""The Image kind: where a container's root filesystem comes from.

Exactly one source: ``pull`` a reference, ``build`` a context, or ``import`` a
root filesystem tarball.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from reconciler.model.common import API_VERSION, Metadata, ScalarStr, Strict
from reconciler.model.reference import parse_reference


def _valid_reference(value: str) -> str:
    parse_reference(value)
    return value


ImageRef = Annotated[str, AfterValidator(_valid_reference)]

_PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


def _valid_platform(value: str) -> str:
    if not _PLATFORM_RE.match(value):
        raise ValueError(f"invalid platform {value!r}: use os/arch[/variant], e.g. linux/amd64")
    return value


class BuildSource(Strict):
    context: str = Field(description="directory sent to the build, relative to the manifest file")
    containerfile: str = Field(default="Containerfile", description="relative to the context; Dockerfile also found")
    args: dict[str, ScalarStr] = Field(default_factory=dict, description="--build-arg values")
    target: str | None = Field(default=None, description="stage to build in a multi-stage Containerfile")


class ImportSource(Strict):
    path: str = Field(description="root filesystem tarball, relative to the manifest file")


class ImageSpec(Strict):
    pull: ImageRef | None = Field(default=None, description="a registry reference: [registry/]repo[:tag][@digest]")
    build: BuildSource | None = None
    import_: ImportSource | None = Field(default=None, alias="import")
    tag: ImageRef | None = Field(default=None, description="reference the built or imported image is tagged as")
    platform: Annotated[str, AfterValidator(_valid_platform)] | None = Field(
        default=None, description="os/arch[/variant]; the host's platform when unset"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ImageSpec:
        sources = [name for name, v in (("pull", self.pull), ("build", self.build), ("import", self.import_)) if v]
        if len(sources) != 1:
            found = ", ".join(sources) or "none"
            raise ValueError(f"an image needs exactly one source of pull, build, import (found: {found})")
        if self.pull and self.tag:
            raise ValueError("tag applies to build and import sources; a pulled image keeps its reference")
        return self


class Image(Strict):
    apiVersion: Literal["reconcile/v1"] = API_VERSION
    kind: Literal["Image"] = "Image"
    metadata: Metadata
    spec: ImageSpec
