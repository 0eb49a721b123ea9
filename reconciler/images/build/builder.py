"""``reconcile build``: a Containerfile and a context directory in, an image in the store out.

The builder walks the stages the target needs, in file order, one instruction at a
time, as Docker's builder does:

* **metadata** instructions (ENV, LABEL, CMD, ENTRYPOINT, USER, EXPOSE, VOLUME,
  HEALTHCHECK, STOPSIGNAL, SHELL, ONBUILD, MAINTAINER) change the image config and add
  a history entry with ``empty_layer: true``; ARG changes neither;
* **RUN, COPY and ADD** add one layer each, even an empty one (as Docker does);
  **WORKDIR** adds one only when it had to create the directory.

Variables: global ARGs (before the first FROM, plus BuildKit's predefined platform
ARGs) are what FROM can use; inside a stage, ARG declares a build argument from its
line on (``--build-arg`` overrides its default; a bare ``ARG X`` picks up the global
X), ENV sets the image environment, and ENV wins over an ARG of the same name. Every
instruction Docker expands is expanded with ``containerfile.expand`` word by word; a
RUN sees the ARGs in scope as environment variables; CMD and ENTRYPOINT are never
expanded. Build arguments no ARG consumed are reported, as Docker warns.

Layers are made in :mod:`workspace` (an overlay in a private mount namespace; RUN as a
container through ``spawn.run``), files placed by :mod:`fileops`, sources matched by
:mod:`context`, and every step looked up first in the :mod:`cache`: an unchanged
rebuild reads a few small files and writes nothing but the tag.

Errors are :class:`BuildError`, located in the Containerfile: ``FILE:LINE: STEP: cause``.
A failed build tags nothing and leaves no mount, process, cgroup or scratch directory;
layers of the steps that succeeded stay in the store for the cache, as Docker's do.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import posixpath
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.images import oci
from reconciler.images.build import cache, context, fileops, ignore, workspace
from reconciler.images.build import containerfile as parser
from reconciler.images.build.containerfile import Containerfile, ContainerfileError, Instruction, Stage
from reconciler.images.content import BlobError
from reconciler.images.store import Image, ImageError, ImageStore
from reconciler.runtime import cgroups, etcfiles, process, spawn

Progress = Callable[[str], None]

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_FILES = ("Containerfile", "Dockerfile")
#: The RUN container's hostname: fixed, so a command that records it builds the same layer.
HOSTNAME = "reconcile-build"
#: Build arguments Docker passes to RUN without an ARG, and keeps out of history and cache keys.
PROXY_ARGS = frozenset(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)
_NOP = "/bin/sh -c #(nop) "
_HISTORY_TIME = "%Y-%m-%dT%H:%M:%SZ"


class BuildError(Exception):
    """A build that failed, located as ``FILE:LINE: STEP: cause``.

    ``exit_code`` and ``output`` (its last lines) are set when a RUN command failed.
    """

    def __init__(
        self,
        cause: str,
        *,
        path: str = "",
        line: int = 0,
        step: str = "",
        exit_code: int | None = None,
        output: Iterable[str] = (),
    ) -> None:
        super().__init__(cause)
        self.cause = cause
        self.path = path
        self.line = line
        self.step = step
        self.exit_code = exit_code
        self.output = list(output)

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}: " if self.path and self.line else (f"{self.path}: " if self.path else "")
        step = f"{self.step}: " if self.step else ""
        return f"{where}{step}{self.cause}"


def build(
    store: ImageStore,
    context_dir: str,
    *,
    containerfile: str | None = None,
    tags: Iterable[str] = (),
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    cgroup_parent: str = cgroups.PARENT,
    progress: Progress | None = None,
    no_cache: bool = False,
    pull: Callable[[str], Image] | None = None,
) -> Image:
    """Build the Containerfile (default: ``Containerfile``, else ``Dockerfile``, in the
    context) and tag the result with ``tags``; the image.

    ``target`` names the stage to build (default: the last); ``pull`` fetches a base
    image missing from the store (without it, that is an error); ``no_cache`` runs
    every step (and records the results for the next build).
    """
    path, shown = _containerfile_path(context_dir, containerfile)
    try:
        parsed = parser.parse_file(path)
    except ContainerfileError as exc:
        raise BuildError(exc.message, path=shown, line=exc.line) from None
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror}") from None
    builder = _Builder(
        store,
        context_dir,
        parsed,
        shown=shown,
        build_args=dict(build_args or {}),
        cgroup_parent=cgroup_parent,
        progress=progress,
        no_cache=no_cache,
        pull=pull,
    )
    return builder.run(target, list(tags))


def _containerfile_path(context_dir: str, given: str | None) -> tuple[str, str]:
    """(path to read, name shown in errors)."""
    if not os.path.isdir(context_dir):
        raise BuildError(f"build context {context_dir} is not a directory")
    if given is not None:
        return given, given
    for name in DEFAULT_FILES:
        candidate = os.path.join(context_dir, name)
        if os.path.isfile(candidate):
            return candidate, name
    raise BuildError(f"no Containerfile or Dockerfile in {context_dir} (name one with -f)")


# --- the state of a stage -----------------------------------------------------------


@dataclass
class _State:
    """A stage's image so far. ``chain`` identifies it for the cache: a hash over the
    base and every step's key and resulting layer. ``base_manifest`` is the base image's
    manifest while no step has changed anything."""

    settings: dict[str, Any]
    history: list[dict[str, Any]]
    layers: list[oci.Descriptor]
    diff_ids: list[str]
    chain: str
    author: str | None = None
    base_manifest: str | None = None
    args: dict[str, str] = field(default_factory=dict)  # the ARGs in scope that have a value
    cmd_set: bool = False
    stage: int = 0

    @classmethod
    def scratch(cls) -> _State:
        return cls(settings={}, history=[], layers=[], diff_ids=[], chain=cache.key("scratch"))

    @classmethod
    def of_image(cls, image: Image) -> _State:
        config = image.config
        return cls(
            settings=copy.deepcopy(config.get("config") or {}),
            history=copy.deepcopy(config.get("history") or []),
            layers=list(image.layers),
            diff_ids=list(image.diff_ids),
            chain=cache.key("image", image.manifest_digest),
            author=config.get("author"),
            base_manifest=image.manifest_digest,
        )

    def derived(self) -> _State:
        """A new stage built FROM this one (ARGs do not carry over)."""
        return _State(
            settings=copy.deepcopy(self.settings),
            history=copy.deepcopy(self.history),
            layers=list(self.layers),
            diff_ids=list(self.diff_ids),
            chain=cache.key("stage", self.chain),
            author=self.author,
            base_manifest=self.base_manifest,
        )

    def env(self) -> dict[str, str]:
        return dict(item.partition("=")[::2] for item in self.settings.get("Env") or [])

    def variables(self) -> dict[str, str]:
        """What instructions expand against: ENV over ARG."""
        return {**self.args, **self.env()}

    def set_env(self, pairs: list[tuple[str, str]]) -> None:
        env = self.env()
        env.update(pairs)
        self.settings["Env"] = [f"{key}={value}" for key, value in env.items()]

    def document(self, created: str) -> dict[str, Any]:
        """The image config for this state."""
        settings = {key: value for key, value in self.settings.items() if value is not None}
        document: dict[str, Any] = {
            **oci.host_platform(),
            "created": self.history[-1].get("created", created) if self.history else created,
            "config": settings,
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
            "history": self.history,
        }
        if self.author:
            document["author"] = self.author
        return document


@dataclass(frozen=True)
class _Copy:
    """A COPY or ADD, expanded: what the child needs to do it."""

    keyword: str
    patterns: list[str]
    destination: str  # absolute, normalised
    into_dir: bool
    sources: list[context.Source]  # from the context; empty with a source image
    source_state: _State | None
    source_name: str
    chown: str
    chmod: int | None


# --- the builder ------------------------------------------------------------------------


class _Builder:
    def __init__(
        self,
        store: ImageStore,
        context_dir: str,
        parsed: Containerfile,
        *,
        shown: str,
        build_args: dict[str, str],
        cgroup_parent: str,
        progress: Progress | None,
        no_cache: bool,
        pull: Callable[[str], Image] | None,
    ) -> None:
        self.store = store
        self.context_dir = os.path.realpath(context_dir)
        self.file = parsed
        self.shown = shown
        self.build_args = build_args
        self.cgroup_parent = cgroup_parent
        self.emit = progress
        self.no_cache = no_cache
        self.pull = pull
        cache_dir = os.path.join(store.directory, "build-cache")
        self.cache = cache.StepCache(cache_dir)
        self.hashes = cache.FileHashes(cache_dir, self.context_dir)
        self.results: dict[int, _State] = {}
        self.consumed: set[str] = set()
        self.global_args: dict[str, str] = {}
        self.global_declared: dict[str, str | None] = {}
        self.step = 0
        self.total = 0
        self._root: context.Root | None = None

    # --- output and errors ----------------------------------------------------

    def say(self, line: str) -> None:
        if self.emit is not None:
            self.emit(line)

    def error(self, instruction: Instruction, cause: str, **extra: Any) -> BuildError:
        return BuildError(cause, path=self.shown, line=instruction.line, step=_summary(instruction), **extra)

    def now(self) -> str:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
        seconds = int(epoch) if epoch.isdigit() else int(time.time())
        return time.strftime(_HISTORY_TIME, time.gmtime(seconds))

    # --- the whole build ----------------------------------------------------------

    def run(self, target: str | None, tags: list[str]) -> Image:
        self._global_args()
        stage = self._target(target)
        needed = self._needed(stage.index)
        self.total = sum(1 + len(self.file.stages[index].instructions) for index in needed)
        for index in needed:
            self._stage_result(index)
        state = self.results[stage.index]
        image = self._commit(state, tags)
        self.hashes.save()
        self._warn_unconsumed()
        return image

    def _global_args(self) -> None:
        platform = oci.host_platform()
        text = "/".join(filter(None, (platform["os"], platform["architecture"], platform.get("variant"))))
        for prefix in ("TARGET", "BUILD"):
            self.global_args.update(
                {
                    f"{prefix}PLATFORM": text,
                    f"{prefix}OS": platform["os"],
                    f"{prefix}ARCH": platform["architecture"],
                    f"{prefix}VARIANT": platform.get("variant", ""),
                }
            )
        self.global_declared.update(self.global_args)
        for instruction in self.file.global_args:
            try:
                definitions = parser.arg_definitions(instruction, self.global_args)
            except ContainerfileError as exc:
                raise self.error(instruction, exc.message) from None
            for name, default in definitions:
                value = self.build_args.get(name, default)
                self.consumed.add(name)
                self.global_declared[name] = value
                if value is not None:
                    self.global_args[name] = value

    def _target(self, target: str | None) -> Stage:
        if target is None:
            return self.file.stages[-1]
        found = self.file.stage(target)
        if found is None:
            names = ", ".join(stage.name or str(stage.index) for stage in self.file.stages)
            raise BuildError(f"target stage {target!r} not found (stages: {names})", path=self.shown)
        return found

    def _stage_ref(self, text: str, instruction: Instruction, variables: Mapping[str, str]) -> str:
        try:
            return parser.expand(text, variables, line=instruction.line, escape=instruction.escape)
        except ContainerfileError as exc:
            raise self.error(instruction, exc.message) from None

    def _earlier_stage(self, reference: str, index: int) -> Stage | None:
        found = self.file.stage(reference)
        return found if found is not None and found.index < index else None

    def _needed(self, index: int) -> list[int]:
        """The stages ``index`` depends on (FROM and COPY --from), itself included, in order."""
        needed: set[int] = set()
        pending = [index]
        while pending:
            current = pending.pop()
            if current in needed:
                continue
            needed.add(current)
            stage = self.file.stages[current]
            references = [self._stage_ref(stage.base, stage.from_instruction, self.global_args)]
            for instruction in stage.instructions:
                if instruction.keyword == "COPY" and "from" in instruction.flags:
                    with contextlib.suppress(BuildError):
                        references.append(self._stage_ref(instruction.flags["from"], instruction, self.global_args))
            pending += [found.index for ref in references if (found := self._earlier_stage(ref, current))]
        return sorted(needed)

    def _stage_result(self, index: int) -> _State:
        if index not in self.results:
            self.results[index] = self._run_stage(self.file.stages[index])
        return self.results[index]

    # --- one stage ---------------------------------------------------------------------

    def _announce(self, instruction: Instruction) -> None:
        self.step += 1
        self.total = max(self.total, self.step)
        self.say(f"STEP {self.step}/{self.total}: {instruction.original}")

    def _run_stage(self, stage: Stage) -> _State:
        source = stage.from_instruction
        self._announce(source)
        state = self._base(stage)
        state.stage = stage.index
        triggers = state.settings.pop("OnBuild", None) or []
        for text in triggers:
            self._dispatch(state, self._trigger(source, text))
        for instruction in stage.instructions:
            self._announce(instruction)
            self._dispatch(state, instruction)
        return state

    def _trigger(self, source: Instruction, text: str) -> Instruction:
        """An ONBUILD trigger of the base image, located at the FROM that runs it."""
        try:
            parsed = parser.parse(f"FROM scratch\n{text}", path=self.shown)
            instruction = parsed.stages[0].instructions[0]
        except (ContainerfileError, IndexError):
            raise self.error(source, f"the base image's ONBUILD trigger {text!r} does not parse") from None
        self.say(f"--> ONBUILD {text}")
        return dataclasses.replace(instruction, line=source.line)

    def _base(self, stage: Stage) -> _State:
        instruction = stage.from_instruction
        reference = self._stage_ref(stage.base, instruction, self.global_args)
        if stage.platform:
            self._check_platform(instruction, self._stage_ref(stage.platform, instruction, self.global_args))
        if not reference:
            raise self.error(instruction, f"FROM {stage.base} names no image (an unset build argument?)")
        if reference.lower() == "scratch":
            return _State.scratch()
        earlier = self._earlier_stage(reference, stage.index)
        if earlier is not None:
            return self._stage_result(earlier.index).derived()
        return _State.of_image(self._image(reference, instruction))

    def _check_platform(self, instruction: Instruction, text: str) -> None:
        try:
            wanted = oci.parse_platform(text)
        except oci.ManifestError as exc:
            raise self.error(instruction, str(exc)) from None
        host = oci.host_platform()
        same = wanted["os"] == host["os"] and wanted["architecture"] == host["architecture"]
        if not same or wanted.get("variant", host.get("variant")) != host.get("variant"):
            shown = "/".join(filter(None, (host["os"], host["architecture"], host.get("variant"))))
            raise self.error(instruction, f"--platform={text}: only this host's platform ({shown}) can be built")

    def _image(self, reference: str, instruction: Instruction) -> Image:
        try:
            digest = self.store.resolve(reference)
        except ImageError:
            if self.pull is None:
                raise self.error(instruction, f"image {reference} not found: pull it first") from None
            self.say(f"Pulling {reference}")
            try:
                return self.pull(reference)
            except Exception as exc:
                raise self.error(instruction, f"pulling {reference}: {exc}") from None
        try:
            return self.store.image_by_digest(digest)
        except ImageError as exc:
            raise self.error(instruction, str(exc)) from None

    # --- dispatch ------------------------------------------------------------------------

    def _dispatch(self, state: _State, instruction: Instruction) -> None:
        handler = getattr(self, "_do_" + instruction.keyword.lower())
        try:
            handler(state, instruction)
        except ContainerfileError as exc:
            raise BuildError(
                exc.message, path=self.shown, line=exc.line or instruction.line, step=_summary(instruction)
            ) from None
        except (context.SourceError, fileops.CopyError, workspace.StepFailed, ImageError) as exc:
            raise self.error(instruction, str(exc)) from None
        except ignore.IgnoreError as exc:
            raise self.error(instruction, f"the ignore file: {exc}") from None
        except OSError as exc:  # the store's disk, the context's files: say which step met it
            raise self.error(instruction, str(exc)) from None

    def _words(self, instruction: Instruction, variables: Mapping[str, str]) -> list[str]:
        """The instruction's arguments, each expanded (exec form: quotes are literal)."""
        escape = instruction.escape
        if instruction.json_form:
            raw = [_literal(word, escape) for word in instruction.args]
        else:
            raw = parser.words(instruction.text, escape=escape)
        return [parser.expand(word, variables, line=instruction.line, escape=escape) for word in raw]

    def _expand_text(self, instruction: Instruction, state: _State) -> str:
        return parser.expand(instruction.text, state.variables(), line=instruction.line, escape=instruction.escape)

    # --- the cache and history -----------------------------------------------------------

    def _step(
        self,
        state: _State,
        material: list[Any],
        created_by: str,
        execute: Callable[[], workspace.Layer | None] | None = None,
    ) -> None:
        """Look the step up in the cache, else ``execute`` it (None: a metadata step), and
        add its layer and history entry to ``state``."""
        step_key = cache.key(state.chain, material)
        found = None if self.no_cache else self._cached(step_key)
        if found is not None:
            layer, history = found
            self.say(f"--> Using cache {step_key}")
        else:
            layer = execute() if execute is not None else None
            history = {"created": self.now(), "created_by": created_by}
            if layer is None:
                history["empty_layer"] = True
            self.cache.put(
                step_key,
                {
                    "layer": layer.descriptor.to_json() if layer else None,
                    "diff_id": layer.diff_id if layer else None,
                    "history": history,
                },
            )
            if layer is not None:
                self.say(f"--> {layer.diff_id}")
        if layer is not None:
            state.layers.append(layer.descriptor)
            state.diff_ids.append(layer.diff_id)
        state.history.append(history)
        state.chain = cache.key(step_key, layer.diff_id if layer else None)
        state.base_manifest = None

    def _cached(self, step_key: str) -> tuple[workspace.Layer | None, dict[str, Any]] | None:
        entry = self.cache.get(step_key)
        if entry is None or not isinstance(entry.get("history"), dict):
            return None
        history: dict[str, Any] = entry["history"]
        if entry.get("layer") is None:
            return None, history
        try:
            descriptor = oci.Descriptor.from_json(entry["layer"])
            diff_id = str(entry["diff_id"])
            present = self.store.content.has(descriptor.digest)
        except (oci.ManifestError, BlobError, KeyError, TypeError, ValueError):
            return None
        return (workspace.Layer(descriptor, diff_id), history) if present else None

    def _meta(self, state: _State, keyword: str, shown: str, value: Any) -> None:
        """A metadata step: its history reads like Docker's ``#(nop)`` entries."""
        self._step(state, [keyword, value], f"{_NOP} {keyword} {shown}")

    # --- metadata instructions -------------------------------------------------------------

    def _do_env(self, state: _State, instruction: Instruction) -> None:
        pairs = parser.key_values(instruction, state.variables())
        state.set_env(pairs)
        self._meta(state, "ENV", " ".join(f"{key}={value}" for key, value in pairs), pairs)

    def _do_label(self, state: _State, instruction: Instruction) -> None:
        pairs = parser.key_values(instruction, state.variables())
        labels = dict(state.settings.get("Labels") or {})
        labels.update(pairs)
        state.settings["Labels"] = labels
        self._meta(state, "LABEL", " ".join(f"{key}={value}" for key, value in pairs), pairs)

    def _do_arg(self, state: _State, instruction: Instruction) -> None:
        for name, default in parser.arg_definitions(instruction, state.variables()):
            self.consumed.add(name)
            if name in self.build_args:
                value: str | None = self.build_args[name]
            elif default is not None:
                value = default
            else:
                value = self.global_declared.get(name)
            if value is not None:
                state.args[name] = value
            else:
                state.args.pop(name, None)

    def _command(self, state: _State, instruction: Instruction) -> list[str]:
        if instruction.json_form:
            return list(instruction.args)
        return [*(state.settings.get("Shell") or DEFAULT_SHELL), instruction.text]

    def _do_cmd(self, state: _State, instruction: Instruction) -> None:
        state.settings["Cmd"] = self._command(state, instruction)
        state.cmd_set = True
        self._meta(state, "CMD", json.dumps(state.settings["Cmd"]), state.settings["Cmd"])

    def _do_entrypoint(self, state: _State, instruction: Instruction) -> None:
        state.settings["Entrypoint"] = self._command(state, instruction)
        if not state.cmd_set:
            state.settings.pop("Cmd", None)  # a CMD from the base image was written for another entrypoint
        value = [state.settings["Entrypoint"], state.settings.get("Cmd")]
        self._meta(state, "ENTRYPOINT", json.dumps(state.settings["Entrypoint"]), value)

    def _do_user(self, state: _State, instruction: Instruction) -> None:
        user = self._expand_text(instruction, state)
        state.settings["User"] = user
        self._meta(state, "USER", user, user)

    def _do_expose(self, state: _State, instruction: Instruction) -> None:
        ports = dict(state.settings.get("ExposedPorts") or {})
        added: list[str] = []
        for word in self._words(instruction, state.variables()):
            added += _ports(word)
        ports.update({port: {} for port in added})
        state.settings["ExposedPorts"] = ports
        self._meta(state, "EXPOSE", " ".join(added), added)

    def _do_volume(self, state: _State, instruction: Instruction) -> None:
        paths = self._words(instruction, state.variables())
        if not paths or any(not path.strip() for path in paths):
            raise self.error(instruction, "VOLUME can not be an empty path")
        volumes = dict(state.settings.get("Volumes") or {})
        volumes.update({path: {} for path in paths})
        state.settings["Volumes"] = volumes
        self._meta(state, "VOLUME", json.dumps(paths), paths)

    def _do_healthcheck(self, state: _State, instruction: Instruction) -> None:
        check = parser.healthcheck(instruction)
        value: dict[str, Any] = {"Test": check.test}
        for key, number in (
            ("Interval", check.interval),
            ("Timeout", check.timeout),
            ("StartPeriod", check.start_period),
            ("StartInterval", check.start_interval),
            ("Retries", check.retries),
        ):
            if number:
                value[key] = number
        state.settings["Healthcheck"] = value
        self._meta(state, "HEALTHCHECK", json.dumps(value, sort_keys=True), value)

    def _do_stopsignal(self, state: _State, instruction: Instruction) -> None:
        text = self._expand_text(instruction, state)
        if not _valid_signal(text):
            raise self.error(instruction, f"invalid stop signal {text!r} (a name such as SIGTERM, or a number)")
        state.settings["StopSignal"] = text
        self._meta(state, "STOPSIGNAL", text, text)

    def _do_shell(self, state: _State, instruction: Instruction) -> None:
        state.settings["Shell"] = list(instruction.args)
        self._meta(state, "SHELL", json.dumps(instruction.args), instruction.args)

    def _do_onbuild(self, state: _State, instruction: Instruction) -> None:
        parser.onbuild_trigger(instruction)  # checks it, with its line
        trigger = instruction.text.strip()
        state.settings["OnBuild"] = [*(state.settings.get("OnBuild") or []), trigger]
        self._meta(state, "ONBUILD", trigger, trigger)

    def _do_maintainer(self, state: _State, instruction: Instruction) -> None:
        state.author = instruction.text
        self._meta(state, "MAINTAINER", instruction.text, instruction.text)

    # --- WORKDIR -----------------------------------------------------------------------

    def _do_workdir(self, state: _State, instruction: Instruction) -> None:
        path = self._expand_text(instruction, state)
        if not path:
            raise self.error(instruction, "WORKDIR needs a path")
        current = state.settings.get("WorkingDir") or "/"
        path = posixpath.normpath(posixpath.join(current, path))
        state.settings["WorkingDir"] = path
        user = state.settings.get("User") or ""
        self._step(state, ["WORKDIR", path], f"{_NOP} WORKDIR {path}", lambda: self._make_workdir(state, path, user))

    def _make_workdir(self, state: _State, path: str, user: str) -> workspace.Layer | None:
        def body(_output: int) -> dict[str, Any]:
            workspace.mount_overlay(scratch.merged, options)
            owner = _user_ids(scratch.merged, user) if user else (0, 0)
            fileops.make_workdir(scratch.merged, path, owner)
            return {}

        scratch = workspace.Scratch.create(self.store.directory)
        try:
            lowers = self._lowers(state)
            options = workspace.overlay_options(lowers, bottom=scratch.empty, upper=scratch.upper, work=scratch.work)
            workspace.in_namespace(body)
            if workspace.is_empty(scratch.upper):
                return None
            return self._layer(scratch)
        finally:
            scratch.remove()

    def _layer(self, scratch: workspace.Scratch) -> workspace.Layer:
        """The step's change as a layer blob; its upper directory becomes the snapshot."""
        layer = workspace.write_layer(self.store.content, scratch.upper)
        workspace.adopt(scratch.upper, self.store.snapshot_path(layer.diff_id))
        return layer

    def _lowers(self, state: _State) -> tuple[str, ...]:
        """The state's layers unpacked, topmost first (unpacked now where missing)."""
        pairs = zip(state.layers, state.diff_ids, strict=True)
        return tuple(reversed([self.store.snapshot(layer, diff_id) for layer, diff_id in pairs]))

    # --- RUN ----------------------------------------------------------------------------

    def _do_run(self, state: _State, instruction: Instruction) -> None:
        _check_run_flags(instruction, self)
        argv = self._command(state, instruction)
        args = {name: value for name, value in sorted(state.args.items()) if name not in PROXY_ARGS}
        prefix = f"|{len(args)} " + "".join(f"{name}={value} " for name, value in args.items()) if args else ""
        self._step(
            state,
            ["RUN", argv, sorted(args.items())],
            prefix + " ".join(argv),
            lambda: self._execute_run(state, instruction, argv),
        )

    def _run_environment(self, state: _State) -> list[str]:
        """ARGs in scope (and proxy build arguments), then the image's ENV over them."""
        proxies = {name: value for name, value in self.build_args.items() if name in PROXY_ARGS}
        env = state.env()
        merged = {**proxies, **state.args}
        return [f"{key}={value}" for key, value in merged.items() if key not in env] + list(
            state.settings.get("Env") or []
        )

    def _execute_run(self, state: _State, instruction: Instruction, argv: list[str]) -> workspace.Layer:
        """Run the command as a container on the image so far; its changes as a layer."""
        lines = workspace.Lines(self.emit)
        scratch = workspace.Scratch.create(self.store.directory)
        group = cgroups.new_cgroup(f"build-{uuid.uuid4().hex[:12]}", parent=self.cgroup_parent)
        try:
            lowers = self._lowers(state)
            body = self._run_body(state, argv, scratch, lowers, group)
            try:
                group.create()
            except (cgroups.CgroupError, OSError) as exc:
                raise self.error(instruction, f"cannot make the RUN's cgroup: {exc}") from None
            result = workspace.in_namespace(body, output=lines.feed)
            lines.close()
            code = int(result["exit"])
            if code != 0:
                message = result.get("message") or f"the command exited with code {code}"
                shown = "\n".join(lines.tail)
                cause = message + (f"; its last output:\n{shown}" if shown else " (no output)")
                raise self.error(instruction, cause, exit_code=code, output=lines.tail)
            workspace.drop_mount_points(scratch.upper, lowers)
            return self._layer(scratch)
        finally:
            _reap(group)
            scratch.remove()

    def _run_body(
        self,
        state: _State,
        argv: list[str],
        scratch: workspace.Scratch,
        lowers: tuple[str, ...],
        group: cgroups.Cgroup,
    ) -> Callable[[int], dict[str, Any]]:
        """What the RUN's namespace child does: mount, resolve the user, run the container."""
        options = workspace.overlay_options(lowers, bottom=scratch.empty, upper=scratch.upper, work=scratch.work)
        etc_dir = scratch.make_dir("etc")
        image_env = self._run_environment(state)
        user = state.settings.get("User") or None
        cwd = state.settings.get("WorkingDir") or "/"

        def body(output: int) -> dict[str, Any]:
            workspace.mount_overlay(scratch.merged, options)
            try:
                ids = process.resolve_user(scratch.merged, user)
            except process.ProcessError as exc:
                raise workspace.StepFailed(str(exc)) from None
            config = spawn.Config(
                rootfs=scratch.merged,
                argv=argv,
                env=process.environment(image_env=image_env, env={}, hostname=HOSTNAME, home=ids.home),
                hostname=HOSTNAME,
                cwd=cwd,
                uid=ids.uid,
                gid=ids.gid,
                groups=ids.groups,
                capabilities=sorted(process.DEFAULT_CAPABILITIES),
                no_new_privileges=False,  # as in docker build: set-id programs (sudo, su) work
                mounts=etcfiles.write(etc_dir, HOSTNAME),
            )
            stdin = os.open(os.devnull, os.O_RDONLY)
            try:
                return {"exit": spawn.run(config, cgroup=group, stdout=output, stderr=output, stdin=stdin)}
            except spawn.StartError as exc:
                return {"exit": exc.exit_code, "message": str(exc)}

        return body

    # --- COPY and ADD ----------------------------------------------------------------------

    def _do_copy(self, state: _State, instruction: Instruction) -> None:
        self._copy(state, instruction)

    def _do_add(self, state: _State, instruction: Instruction) -> None:
        if instruction.flags.get("checksum"):
            raise self.error(instruction, "ADD --checksum only applies to URLs, which builds cannot fetch")
        self._copy(state, instruction)

    def _context(self) -> context.Root:
        if self._root is None:
            rules = ignore.load(self.context_dir)
            self._root = context.Root(self.context_dir, confined=True, rules=rules, hasher=self.hashes.digest)
        return self._root

    def _copy(self, state: _State, instruction: Instruction) -> None:
        plan = self._plan_copy(state, instruction)
        if plan.source_state is None:
            listing = context.listing_key(plan.sources)
            origin: Any = ["context", listing]
            digest = cache.key(listing).removeprefix("sha256:")
            kind = "file" if len(plan.sources) == 1 and not plan.sources[0].is_dir else "dir"
            shown = f"{kind}:{digest}"
        else:
            origin = ["from", plan.source_state.chain, plan.patterns]
            shown = f"--from={plan.source_name} {' '.join(plan.patterns)}"
        material = [plan.keyword, origin, plan.destination, plan.into_dir, plan.chown, plan.chmod]
        created_by = f"{_NOP}{plan.keyword} {shown} in {plan.destination}"
        self._step(state, material, created_by, lambda: self._execute_copy(state, plan))

    def _plan_copy(self, state: _State, instruction: Instruction) -> _Copy:
        variables = state.variables()
        arguments = self._words(instruction, variables)
        patterns, destination = arguments[:-1], arguments[-1]
        if len(patterns) > 1 and not destination.endswith("/"):
            raise self.error(
                instruction,
                f"with more than one source the destination must be a directory ending in /: {destination}/",
            )
        source_state, source_name = None, ""
        if "from" in instruction.flags:
            if instruction.keyword == "ADD":
                raise self.error(instruction, "ADD takes no --from: use COPY --from")
            source_name = self._stage_ref(instruction.flags["from"], instruction, variables)
            source_state = self._copy_source(source_name, instruction, state.stage)
        sources: list[context.Source] = []
        if source_state is None:
            root = self._context()
            for pattern in patterns:
                if instruction.keyword == "ADD" and _is_url(pattern):
                    raise self.error(
                        instruction,
                        f"ADD {pattern}: builds have no network; download it into the build context and COPY it",
                    )
                sources += [
                    root.source(rel, shown=pattern, archives=instruction.keyword == "ADD")
                    for rel in root.match(pattern)
                ]
        workdir = state.settings.get("WorkingDir") or "/"
        into_dir = destination.endswith(("/", "/.")) or destination in (".", "..") or len(sources) > 1
        return _Copy(
            keyword=instruction.keyword,
            patterns=patterns,
            destination=posixpath.normpath(posixpath.join(workdir, destination)),
            into_dir=into_dir or len(patterns) > 1,
            sources=sources,
            source_state=source_state,
            source_name=source_name,
            chown=parser.expand(
                instruction.flags.get("chown", ""), variables, line=instruction.line, escape=instruction.escape
            ),
            chmod=_mode(instruction.flags.get("chmod", ""), instruction, self),
        )

    def _copy_source(self, reference: str, instruction: Instruction, current: int) -> _State:
        """The stage or image a ``COPY --from`` reads (an earlier stage, else an image)."""
        stage = self.file.stage(reference)
        if stage is None:
            return _State.of_image(self._image(reference, instruction))
        if stage.index >= current:
            raise self.error(instruction, f"--from={reference} names this stage or a later one")
        return self._stage_result(stage.index)

    def _execute_copy(self, state: _State, plan: _Copy) -> workspace.Layer:
        """Place the sources on the image so far; the change as a layer.

        A source image (``--from``) is mounted read-only next to the root, and its
        sources are matched there, inside the child.
        """
        scratch = workspace.Scratch.create(self.store.directory)

        def body(_output: int) -> dict[str, Any]:
            workspace.mount_overlay(scratch.merged, options)
            sources, into_dir = plan.sources, plan.into_dir
            if plan.source_state is not None:
                if source_lowers:
                    workspace.mount_overlay(source_dir, workspace.overlay_options(source_lowers, bottom=scratch.empty))
                root = context.Root(source_dir, confined=False, label=f"--from={plan.source_name}")
                sources = [root.source(rel, shown=p) for p in plan.patterns for rel in root.match(p)]
                into_dir = into_dir or len(sources) > 1
            owner = _user_ids(scratch.merged, plan.chown, same_gid=True) if plan.chown else None
            keep = plan.source_state is not None  # an image's files keep their owners, the context's do not
            writer = fileops.Writer(scratch.merged, fileops.Ownership(owner, keep=keep, mode=plan.chmod))
            for source in sources:
                writer.place(source, plan.destination, into_dir=into_dir)
            writer.finish()
            return {}

        try:
            options = workspace.overlay_options(
                self._lowers(state), bottom=scratch.empty, upper=scratch.upper, work=scratch.work
            )
            source_lowers = self._lowers(plan.source_state) if plan.source_state is not None else ()
            # an image without layers is the empty directory itself: overlayfs wants two lower layers
            source_dir = scratch.make_dir("source") if source_lowers else scratch.empty
            workspace.in_namespace(body)
            return self._layer(scratch)
        finally:
            scratch.remove()

    # --- the end -------------------------------------------------------------------------

    def _commit(self, state: _State, tags: list[str]) -> Image:
        if state.base_manifest is not None:  # no step changed the base image: it is the result
            image = self.store.image_by_digest(state.base_manifest)
            for tag in tags:
                self.store.tag(tag, image.manifest_digest)
            return self._done(image, tags)
        document = state.document(self.now())
        config_bytes = oci.canonical(document)
        config_digest = oci.sha256(config_bytes)
        manifest = oci.new_manifest(oci.Descriptor(oci.OCI_CONFIG, config_digest, len(config_bytes)), state.layers)
        manifest_digest = oci.sha256(manifest)
        if self.store.content.has(config_digest) and self.store.content.has(manifest_digest):
            image = self.store.image_by_digest(manifest_digest)  # an unchanged rebuild: nothing to write
            for tag in tags:
                self.store.tag(tag, manifest_digest)
        else:
            image = self.store.commit(document, state.layers, tags)
        return self._done(image, tags)

    def _done(self, image: Image, tags: list[str]) -> Image:
        for tag in tags:
            self.say(f"COMMIT {tag}")
        self.say(f"--> {image.id}")
        return image

    def _warn_unconsumed(self) -> None:
        unused = sorted(set(self.build_args) - self.consumed - PROXY_ARGS)
        if unused:
            self.say(f"WARNING: build arguments not consumed by any ARG: {', '.join(unused)}")


# --- helpers --------------------------------------------------------------------------------


def _summary(instruction: Instruction, width: int = 80) -> str:
    text = " ".join(instruction.original.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _literal(word: str, escape: str) -> str:
    """An exec-form word made safe for ``expand``: quotes and escapes taken literally."""
    return "".join(escape + character if character in ("'", '"', escape) else character for character in word)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "git@", "git://"))


def _ports(word: str) -> list[str]:
    """``80``, ``80/udp``, ``8000-8002/tcp`` → ``["80/tcp"]`` etc., as Docker expands them."""
    port, _, protocol = word.partition("/")
    protocol = protocol.lower() or "tcp"
    if protocol not in ("tcp", "udp", "sctp"):
        raise ContainerfileError("", 0, f"EXPOSE {word}: unknown protocol {protocol!r} (tcp, udp or sctp)")
    low, dash, high = port.partition("-")
    try:
        first, last = int(low), int(high if dash else low)
    except ValueError:
        raise ContainerfileError("", 0, f"EXPOSE {word}: invalid port") from None
    if not 0 < first <= last <= 65535:
        raise ContainerfileError("", 0, f"EXPOSE {word}: ports go from 1 to 65535")
    return [f"{number}/{protocol}" for number in range(first, last + 1)]


def _valid_signal(text: str) -> bool:
    if text.isdigit():
        return 0 < int(text) < 65
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    return name in signal.Signals.__members__ or name.startswith(("SIGRTMIN", "SIGRTMAX"))


def _mode(text: str, instruction: Instruction, builder: _Builder) -> int | None:
    if not text:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        raise builder.error(instruction, f"--chmod={text}: give an octal mode such as 755") from None
    if not 0 <= mode <= 0o7777:
        raise builder.error(instruction, f"--chmod={text}: modes go up to 7777")
    return mode


def _user_ids(root: str, spec: str, *, same_gid: bool = False) -> tuple[int, int]:
    """``user[:group]`` (names or numbers) as ids in the image's own passwd and group files.

    ``same_gid`` is COPY --chown's rule: without a group, the gid is the uid.
    """
    user, _, group = spec.partition(":")
    try:
        if group or not same_gid:
            found = process.resolve_user(root, spec)
            return found.uid, found.gid
        uid = process.resolve_user(root, user).uid
    except process.ProcessError as exc:
        raise workspace.StepFailed(str(exc)) from None
    return uid, uid


def _check_run_flags(instruction: Instruction, builder: _Builder) -> None:
    if instruction.flag_values("mount"):
        raise builder.error(instruction, "RUN --mount is not supported")
    network = instruction.flags.get("network", "default")
    if network not in ("default", "none"):
        raise builder.error(instruction, f"RUN --network={network}: builds run without a network (none)")
    if instruction.flags.get("security", "sandbox") != "sandbox":
        raise builder.error(instruction, "RUN --security=insecure is not supported")


def _reap(group: cgroups.Cgroup) -> None:
    """Kill whatever is left in a RUN's cgroup and remove the group."""
    for _ in range(500):
        if not group.exists():
            return
        with contextlib.suppress(cgroups.CgroupError, OSError):
            for pid in group.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        try:
            group.destroy()
            return
        except cgroups.CgroupError:
            time.sleep(0.01)
