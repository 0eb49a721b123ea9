"""A manifests directory → ``Desired``, or every error in it at once.

The directory is read recursively (``*.yaml``, ``*.yml``; hidden entries skipped,
symlinks followed with loop detection). Each document is one object. Any error
anywhere rejects the whole directory: a half-edited commit never partially applies.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.nodes import MappingNode, Node

from reconciler.manifests import envfile, yamlnodes
from reconciler.manifests.errors import InvalidManifests, ManifestError, format_path
from reconciler.manifests.files import STACK_FILE, manifest_files
from reconciler.manifests.references import check_references, raw_items_at, written_port_index
from reconciler.manifests.suggest import did_you_mean, fields_at
from reconciler.model.common import API_VERSION
from reconciler.model.container import BindMount, ContainerSpec, parse_port
from reconciler.model.manifest import KINDS, Desired, ManifestObject, StackFile, object_key

#: Largest manifest file read (Kubernetes caps an object near 1.5 MiB; a file may hold many).
MAX_FILE_SIZE = 4 * 1024 * 1024


@dataclass
class Document:
    """One YAML document and what became of it. ``obj`` is None when it did not validate."""

    file: str
    node: Node
    kind: str | None = None
    name: str | None = None
    obj: ManifestObject | None = None
    #: What remains valid once the fields with errors are dropped: used for cross-checks
    #: only, so one run reports an undefined network even beside a bad memory value.
    salvaged: ManifestObject | None = None
    errors: list[ManifestError] = field(default_factory=list)
    #: Files outside the manifests that the document read or checked for (env files,
    #: tarballs, Containerfiles): ``Desired.inputs``.
    inputs: list[str] = field(default_factory=list)

    @property
    def checkable(self) -> ManifestObject | None:
        return self.obj if self.obj is not None else self.salvaged

    @property
    def label(self) -> str | None:
        if self.kind is None:
            return None
        return object_key(self.kind, self.name or "<unnamed>")

    def error(self, loc: tuple[object, ...] | list[object], message: str) -> ManifestError:
        line, column, path = yamlnodes.locate(self.node, loc)
        return ManifestError(self.file, line, column, self.label, format_path(path) or None, message)


@dataclass
class Loaded:
    """Documents of a directory in file order, plus errors not tied to a document."""

    directory: str
    stack: str
    documents: list[Document] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)

    def all_errors(self) -> list[ManifestError]:
        return [*self.errors, *(e for d in self.documents for e in d.errors)]


def load_directory(directory: str, *, stack: str | None = None) -> Desired:
    """Load, validate and cross-check ``directory``; raise InvalidManifests listing every error."""
    loaded = read_directory(directory, stack=stack)
    check_references(loaded.documents)
    errors = loaded.all_errors()
    if errors:
        raise InvalidManifests(errors)
    objects = [d.obj for d in loaded.documents if d.obj is not None]
    sources = {d.label: f"{d.file}:{d.node.start_mark.line + 1}" for d in loaded.documents if d.label}
    inputs = sorted({path for d in loaded.documents for path in d.inputs})
    return Desired(stack=loaded.stack, objects=objects, sources=sources, inputs=inputs)


def read_directory(directory: str, *, stack: str | None = None) -> Loaded:
    """Parse and validate each document on its own; cross-references are checked later."""
    loaded = Loaded(directory=directory, stack=stack or "")
    if not os.path.isdir(directory):
        what = "does not exist" if not os.path.exists(directory) else "is not a directory"
        loaded.errors.append(ManifestError(directory, 0, 0, None, None, f"manifests directory {what}"))
        return loaded
    loaded.stack = stack or _stack_name(directory, loaded.errors)
    found = False
    for path, problem in manifest_files(directory):
        found = True
        if problem:
            loaded.errors.append(ManifestError(path, 0, 0, None, None, problem))
            continue
        _read_file(path, loaded)
    if not found and not os.path.isfile(os.path.join(directory, STACK_FILE)):
        # an empty directory is most likely a mistake; a stack.yaml alone says "this
        # stack has no objects now", which is how a whole stack is taken down
        loaded.errors.append(ManifestError(directory, 0, 0, None, None, "no manifests found (*.yaml or *.yml files)"))
    elif found and not loaded.documents and not loaded.all_errors():
        loaded.errors.append(ManifestError(directory, 0, 0, None, None, "the manifest files hold no documents"))
    return loaded


def _stack_name(directory: str, errors: list[ManifestError]) -> str:
    """From ``stack.yaml`` when present, else the directory's name made into a DNS label."""
    stack_file = os.path.join(directory, STACK_FILE)
    if os.path.isfile(stack_file):
        doc = Document(file=stack_file, node=MappingNode("tag:yaml.org,2002:map", []))
        data = _parse_single(stack_file, doc, errors)
        if data is not None:
            try:
                return StackFile.model_validate(data).name
            except ValidationError as exc:
                errors.extend(_validation_errors(doc, exc, StackFile))
                return "invalid"
    base = os.path.basename(os.path.abspath(directory)).lower()
    name = re.sub(r"[^a-z0-9]+", "-", base).strip("-")[:63].strip("-")
    if not name:
        errors.append(
            ManifestError(
                directory, 0, 0, None, None, f"cannot make a stack name from {base!r}: set it in {STACK_FILE}"
            )
        )
        return "invalid"
    return name


def _parse_single(path: str, doc: Document, errors: list[ManifestError]) -> Any:
    nodes = _compose_file(path, errors)
    if nodes is None:
        return None
    if len(nodes) != 1:
        errors.append(ManifestError(path, 0, 0, None, None, "expected one document with 'name: STACK'"))
        return None
    doc.node = nodes[0]
    try:
        return yamlnodes.to_data(nodes[0])
    except yamlnodes.YamlProblem as p:
        errors.append(ManifestError(path, p.line, p.column, None, None, p.message))
    return None


def _compose_file(path: str, errors: list[ManifestError]) -> list[Node] | None:
    """The documents of one file, or None after recording why not: over the size cap,
    unreadable, not UTF-8, tabs in indentation, or YAML syntax."""
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_SIZE:
            errors.append(
                ManifestError(path, 0, 0, None, None, f"file is {size} bytes, over the {MAX_FILE_SIZE} byte limit")
            )
            return None
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        errors.append(ManifestError(path, 0, 0, None, None, f"cannot read: {exc.strerror}"))
        return None
    try:
        text = yamlnodes.decode(data)
        tabs = yamlnodes.find_tabs(text)
        if tabs:
            errors.extend(ManifestError(path, t.line, t.column, None, None, t.message) for t in tabs)
            return None
        return yamlnodes.compose(text)
    except yamlnodes.YamlProblem as p:
        errors.append(ManifestError(path, p.line, p.column, None, None, p.message))
        return None


def _read_file(path: str, loaded: Loaded) -> None:
    nodes = _compose_file(path, loaded.errors)
    if nodes is None:
        return
    for node in nodes:
        doc = Document(file=path, node=node)
        loaded.documents.append(doc)
        _validate_document(doc)


def _validate_document(doc: Document) -> None:
    try:
        data = yamlnodes.to_data(doc.node)
    except yamlnodes.YamlProblem as p:
        doc.errors.append(ManifestError(doc.file, p.line, p.column, None, None, p.message))
        return
    if not isinstance(data, dict):
        doc.errors.append(doc.error((), "a manifest document must be a mapping with apiVersion, kind, metadata, spec"))
        return
    kind = data.get("kind")
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        doc.name = metadata["name"]
    if kind is None:
        doc.errors.append(doc.error(("kind",), f"missing kind: one of {', '.join(KINDS)}"))
        return
    if not isinstance(kind, str) or kind not in KINDS:
        hint = did_you_mean(str(kind), KINDS) or "; known kinds: " + ", ".join(KINDS)
        doc.errors.append(doc.error(("kind",), f"unknown kind {kind!r}{hint}"))
        return
    doc.kind = kind
    version = data.get("apiVersion")
    if version != API_VERSION:
        message = "missing apiVersion" if version is None else f"unsupported apiVersion {version!r}"
        doc.errors.append(doc.error(("apiVersion",), f"{message}: use {API_VERSION}"))
        data = {**data, "apiVersion": API_VERSION}
    model = KINDS[kind]
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        doc.errors.extend(_validation_errors(doc, exc, model))
        doc.salvaged = _salvage(model, data, exc)
        return
    if doc.errors:
        return
    base = os.path.dirname(os.path.abspath(doc.file))
    doc.obj = _resolve_files(doc, obj, base)


def _salvage(model: type[ManifestObject], data: dict[str, Any], exc: ValidationError) -> ManifestObject | None:
    """The object without the spec fields that failed, if the rest is valid."""
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return None
    bad = {err["loc"][1] for err in exc.errors() if len(err["loc"]) > 1 and err["loc"][0] == "spec"}
    if any(err["loc"][:1] != ("spec",) or len(err["loc"]) < 2 for err in exc.errors()):
        return None
    if model.__name__ == "Service":
        return None  # a template error leaves nothing of the template to check
    try:
        return model.model_validate({**data, "spec": {k: v for k, v in spec.items() if k not in bad}})
    except ValidationError:
        return None


def _validation_errors(doc: Document, exc: ValidationError, model: Any) -> list[ManifestError]:
    out: list[ManifestError] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = _loc_as_written(doc, err["loc"])
        line, column, path = yamlnodes.locate(doc.node, loc)
        where = format_path(path)
        if where in seen:  # a union reports once per member; the first is enough
            continue
        seen.add(where)
        out.append(ManifestError(doc.file, line, column, doc.label, where or None, _message(err, path, model)))
    return out


def _loc_as_written(doc: Document, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Map an index into the expanded ``ports`` list back to the item as written.

    A range such as ``8000-8002:80-82`` is one YAML item but three PortMappings,
    so pydantic's index of a later item would point past the list in the file.
    When an item does not parse, the list was validated as written (no expansion)
    and the index is already the written one.
    """
    for i, element in enumerate(loc[:-1]):
        if element == "ports" and isinstance(loc[i + 1], int):
            raw = raw_items_at(doc, loc[: i + 1])
            try:
                for item in raw:
                    parse_port(item)
            except ValueError:
                return loc
            return (*loc[: i + 1], written_port_index(raw, loc[i + 1]), *loc[i + 2 :])
    return loc


def _message(err: Any, path: list[object], model: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        if model.__name__ == "Service" and path[:-1] == ["spec"] and name in ContainerSpec.model_fields:
            return f"unknown field {name!r}; container fields of a Service go under spec.template"
        return f"unknown field {name!r}{did_you_mean(name, fields_at(model, path[:-1]))}"
    if kind == "missing":
        return "required field is missing"
    message: str = err["msg"]
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = err.get("input")
    if (kind.endswith("_type") or kind.endswith("_parsing") or kind in ("literal_error", "enum")) and isinstance(
        value, str | int | float | bool
    ):
        message += f", got {value!r}"
    return message


def _resolve_files(doc: Document, obj: ManifestObject, base: str) -> ManifestObject:
    """Make file references absolute (relative to the manifest file) and read env files.

    Env files are read now, so the planner sees their content and a changed env
    file recreates the containers that use it.
    """
    if obj.kind == "Container":
        resolved = _resolve_container(doc, ("spec",), obj.spec, base)
        return obj if resolved is obj.spec else obj.model_copy(update={"spec": resolved})
    if obj.kind == "Service":
        template = _resolve_container(doc, ("spec", "template"), obj.spec.template, base)
        if template is obj.spec.template:
            return obj
        return obj.model_copy(update={"spec": obj.spec.model_copy(update={"template": template})})
    if obj.kind == "Image":
        spec = obj.spec
        if spec.build is not None:
            context = _absolute(base, spec.build.context)
            containerfile = spec.build.containerfile
            if not os.path.isdir(context):
                doc.errors.append(
                    doc.error(("spec", "build", "context"), f"build context {context} is not a directory")
                )
            else:
                candidates = [containerfile] + (["Dockerfile"] if containerfile == "Containerfile" else [])
                doc.inputs.extend(os.path.join(context, c) for c in candidates)
                found = [c for c in candidates if os.path.isfile(os.path.join(context, c))]
                if not found:
                    doc.errors.append(
                        doc.error(("spec", "build", "containerfile"), f"no {containerfile} in build context {context}")
                    )
                else:
                    containerfile = found[0]  # record the file the build will read
            build = spec.build.model_copy(update={"context": context, "containerfile": containerfile})
            spec = spec.model_copy(update={"build": build})
        if spec.import_ is not None:
            path = _absolute(base, spec.import_.path)
            doc.inputs.append(path)
            if not os.path.isfile(path):
                doc.errors.append(doc.error(("spec", "import", "path"), f"tarball {path} does not exist"))
            spec = spec.model_copy(update={"import_": spec.import_.model_copy(update={"path": path})})
        return obj.model_copy(update={"spec": spec})
    return obj


def _resolve_container(doc: Document, at: tuple[str, ...], spec: ContainerSpec, base: str) -> ContainerSpec:
    if not spec.env_file and not any(isinstance(m, BindMount) for m in spec.volumes):
        return spec
    volumes = [
        m.model_copy(update={"source": _absolute(base, m.source)}) if isinstance(m, BindMount) else m
        for m in spec.volumes
    ]
    env: dict[str, str] = {}
    for index, name in enumerate(spec.env_file):
        path = _absolute(base, name)
        doc.inputs.append(path)
        try:
            env.update(envfile.read(path))
        except envfile.EnvFileError as exc:
            doc.errors.append(doc.error((*at, "env_file", index), str(exc)))
    env.update(spec.env)
    return spec.model_copy(update={"volumes": volumes, "env": env})


def _absolute(base: str, path: str) -> str:
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))
