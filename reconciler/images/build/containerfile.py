"""Containerfile (Dockerfile syntax) parsing: text in, stages of instructions out.

The rules are BuildKit's (``frontend/dockerfile/parser`` and ``instructions``), so a
file that builds with ``docker build`` means the same thing here:

* parser directives (``# escape=``, ``# syntax=``) only on the very first lines;
* a line ending in the escape character (trailing blanks allowed) continues on the
  next one; comment lines and empty lines inside a continuation are skipped;
* keywords are case-insensitive; ``--flags`` right after the keyword are split off
  and checked against what each instruction accepts;
* RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD, VOLUME and HEALTHCHECK CMD take either the
  exec form, a JSON array of strings, or the shell form: anything that does not parse
  as a JSON array (``CMD [a, b]``) is shell text, as in Docker.

Nothing here expands variables during parsing: ``ENV``, ``ARG`` and ``FROM`` values
depend on build arguments the builder knows, so the parser keeps the text as written
(quotes included) and the builder calls :func:`expand` (Docker's word processing:
quotes, escapes and ``$VAR`` together) on each word. What the parser does check is
that those words *would* expand, so an unterminated ``${`` is reported with its line
before any build step runs.

Heredocs (``RUN <<EOF``) are not supported and are rejected with an error naming them,
rather than being misread as instructions.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TypeVar

KEYWORDS = (
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)

# The instructions whose arguments Docker runs through variable substitution.
EXPANDS_VARIABLES = frozenset(
    {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)

# Those whose every argument word expands; ENV, LABEL, ARG and FROM check their own parts.
_WORDS_EXPAND = EXPANDS_VARIABLES - {"ENV", "LABEL", "ARG", "FROM"}

# Flag name -> kind, per instruction. "list" flags may repeat (RUN --mount); "bool"
# flags may be given bare (COPY --link). Any other instruction takes no flags.
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "string"},
    "COPY": {"from": "string", "chown": "string", "chmod": "string", "link": "bool"},
    "ADD": {"chown": "string", "chmod": "string", "checksum": "string", "link": "bool"},
    "RUN": {"mount": "list", "network": "string", "security": "string"},
    "HEALTHCHECK": {
        "interval": "string",
        "timeout": "string",
        "start-period": "string",
        "start-interval": "string",
        "retries": "string",
    },
}

_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*")
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*")
_HEREDOC = re.compile(r"\d*<<-?([^<]*)")
# Go's time.ParseDuration units; both the micro sign and the Greek mu spell microseconds.
_NANOSECONDS = {
    "ns": 1,
    "us": 10**3,
    "\u00b5s": 10**3,
    "\u03bcs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(" + "|".join(sorted(_NANOSECONDS, key=len, reverse=True)) + ")")
_MINIMUM_DURATION = 10**6  # Docker refuses healthcheck durations under 1ms

_T = TypeVar("_T")


class ContainerfileError(Exception):
    """A Containerfile that cannot be built, located as ``PATH:LINE: message``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        if self.path:
            return f"{self.path}:{self.line}: {self.message}"
        return f"line {self.line}: {self.message}" if self.line else self.message


class _Problem(Exception):
    """An error found below the point where the line number is known; the caller locates it."""


@dataclass(frozen=True)
class Instruction:
    """One instruction, continuations joined.

    ``args`` is the JSON list in exec form (``json_form``); otherwise it is the rest of
    the line after the flags as one string (``[]`` when there is none), to be split
    with :func:`words`. HEALTHCHECK is the exception: ``args[0]`` is its type (``NONE``
    or ``CMD``), followed by the command in either form; :func:`healthcheck` reads it.
    ``flags`` holds the last value of each flag; ``flag_items`` every flag in order, for
    the ones that repeat (:meth:`flag_values`). A bare boolean flag is stored as "true".
    """

    line: int
    keyword: str
    flags: dict[str, str]
    args: list[str]
    json_form: bool
    original: str
    flag_items: list[tuple[str, str]] = field(default_factory=list)
    escape: str = "\\"

    def flag_values(self, name: str) -> list[str]:
        """Every value given for ``--name``, in order (``RUN --mount`` may repeat)."""
        return [value for key, value in self.flag_items if key == name]

    @property
    def text(self) -> str:
        """The argument text of a shell-form instruction ("" when it has none)."""
        return self.args[0] if self.args and not self.json_form else ""


@dataclass(frozen=True)
class Stage:
    """``FROM base [AS name]`` and the instructions up to the next FROM.

    ``base`` is as written: it may hold ``$VAR`` references to global ARGs, and it names
    an earlier stage when it equals (case-insensitively) that stage's name.
    """

    index: int
    name: str | None
    base: str
    platform: str | None
    instructions: list[Instruction]
    from_instruction: Instruction


@dataclass(frozen=True)
class Containerfile:
    global_args: list[Instruction]
    stages: list[Stage]

    def stage(self, reference: str) -> Stage | None:
        """The stage a ``COPY --from=`` or ``FROM`` names: its name (any case) or its index."""
        if reference.isdigit():
            index = int(reference)
            return self.stages[index] if index < len(self.stages) else None
        wanted = reference.lower()
        return next((stage for stage in self.stages if stage.name == wanted), None)


@dataclass(frozen=True)
class Healthcheck:
    """A HEALTHCHECK as the image config stores it: durations in nanoseconds, 0 = inherit."""

    test: list[str]  # ["NONE"], ["CMD", *argv] or ["CMD-SHELL", command]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


# ---------------------------------------------------------------------------- parsing


def parse_file(path: str) -> Containerfile:
    """Parse the Containerfile at ``path``; errors carry ``path`` and the line."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ContainerfileError(path, line, "not valid UTF-8") from None
    return parse(text, path=path)


def parse(text: str, *, path: str = "Containerfile") -> Containerfile:
    """Parse Containerfile text into its global ARGs and stages."""
    lines = [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]
    escape, first = _directives(lines, path)
    instructions = []
    for number, logical in _logical_lines(lines, first, escape):
        try:
            instructions.append(_instruction(logical, number, escape))
        except _Problem as problem:
            raise ContainerfileError(path, number, str(problem)) from None
    last_line = len(lines) - 1 if lines[-1] == "" and len(lines) > 1 else len(lines)
    return _assemble(instructions, path, last_line=last_line)


def _directives(lines: list[str], path: str) -> tuple[str, int]:
    """Read the parser directives at the top: the escape character and the first line after them."""
    escape = "\\"
    seen: set[str] = set()
    for index, line in enumerate(lines):
        match = _DIRECTIVE.fullmatch(line.lstrip())
        name = match.group(1).lower() if match else ""
        if name not in ("escape", "syntax"):
            return escape, index
        if name in seen:
            raise ContainerfileError(path, index + 1, f"only one {name} parser directive can be used")
        seen.add(name)
        if name == "escape":
            value = match.group(2) if match else ""
            if value not in ("\\", "`"):
                raise ContainerfileError(path, index + 1, f"invalid escape character {value!r}: use ` or \\")
            escape = value
    return escape, len(lines)


def _logical_lines(lines: list[str], first: int, escape: str) -> Iterator[tuple[int, str]]:
    """Yield (first line number, joined text) per instruction, skipping comments and blanks.

    Inside a continuation, comment lines and whitespace-only lines are dropped (Docker
    warns about the latter but builds); continuation lines keep their leading blanks.
    """
    continuation = re.compile(re.escape(escape) + r"[ \t]*\Z")
    index = first
    while index < len(lines):
        start = index + 1
        line = lines[index].lstrip()
        index += 1
        if not line or line.startswith("#"):
            continue
        joined, more = _trim_continuation(line, continuation)
        while more and index < len(lines):
            piece = lines[index]
            index += 1
            if piece.lstrip().startswith("#") or not piece.strip():
                continue
            text, more = _trim_continuation(piece, continuation)
            joined += text
        if joined.strip():
            yield start, joined


def _trim_continuation(line: str, continuation: re.Pattern[str]) -> tuple[str, bool]:
    match = continuation.search(line)
    return (line[: match.start()], True) if match else (line, False)


def _instruction(logical: str, line: int, escape: str) -> Instruction:
    """Parse one logical line: keyword, flags, arguments, then the keyword's own checks."""
    parts = _WHITESPACE.split(logical.strip(), maxsplit=1)
    head, rest = parts[0], (parts[1] if len(parts) > 1 else "")
    keyword = head.upper()
    if keyword not in KEYWORDS:
        raise _Problem(_unknown_instruction(head))
    flag_words, rest = _split_flags(rest)
    flags, flag_items = _parse_flags(keyword, flag_words)
    rest = rest.strip()
    if keyword == "HEALTHCHECK":
        args, json_form = _healthcheck_args(rest)
    elif keyword in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"):
        args, json_form = _maybe_json(rest)
    else:
        args, json_form = ([rest] if rest else []), False
    instruction = Instruction(line, keyword, flags, args, json_form, logical.strip(), flag_items, escape)
    _CHECKS[keyword](instruction)
    if keyword in _WORDS_EXPAND:
        _check_expansion(_argument_words(instruction), escape)
    return instruction


def _unknown_instruction(word: str) -> str:
    message = f'unknown instruction "{word}"'
    close = difflib.get_close_matches(word.upper(), KEYWORDS, n=1)
    return f"{message} (did you mean {close[0]}?)" if close else message


def _split_flags(rest: str) -> tuple[list[str], str]:
    """Split leading ``--name[=value]`` words off ``rest`` (BuildKit's extractBuilderFlags).

    Flag words may hold quotes and backslash escapes; a lone ``--`` ends the flags.
    """
    words: list[str] = []
    position = 0
    while True:
        while position < len(rest) and rest[position].isspace():
            position += 1
        if not rest.startswith("--", position):
            return words, rest[position:]
        word, position, quoted = _flag_word(rest, position)
        if word == "--":
            return words, rest[position:]
        if word or quoted:
            words.append(word)


def _flag_word(rest: str, position: int) -> tuple[str, int, bool]:
    characters: list[str] = []
    quote = ""
    quoted = False
    while position < len(rest):
        character = rest[position]
        position += 1
        if not quote and character.isspace():
            break
        if quote and character == quote:
            quote = ""
            continue
        if not quote and character in "'\"":
            quote, quoted = character, True
            continue
        if character == "\\":
            if position == len(rest):
                break
            character = rest[position]
            position += 1
        characters.append(character)
    return "".join(characters), position, quoted


def _parse_flags(keyword: str, words: list[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    allowed = _FLAGS.get(keyword, {})
    flags: dict[str, str] = {}
    items: list[tuple[str, str]] = []
    for word in words:
        name, equals, value = word[2:].partition("=")
        kind = allowed.get(name)
        if kind is None:
            raise _Problem(_unknown_flag(keyword, name, allowed))
        if kind == "bool":
            value = value.lower() if equals else "true"
            if value not in ("true", "false"):
                raise _Problem(f"--{name} takes true or false, not {value!r}")
        elif not equals:
            raise _Problem(f"missing a value for --{name} (write --{name}=VALUE)")
        if name in flags and kind != "list":
            raise _Problem(f"--{name} given twice")
        flags[name] = value
        items.append((name, value))
    return flags, items


def _unknown_flag(keyword: str, name: str, allowed: Mapping[str, str]) -> str:
    if not allowed:
        return f"unknown flag --{name}: {keyword} takes no flags"
    close = difflib.get_close_matches(name, list(allowed), n=1)
    hint = f"did you mean --{close[0]}?" if close else "known: " + ", ".join(f"--{known}" for known in allowed)
    return f"unknown flag --{name} for {keyword} ({hint})"


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    """The exec form when ``rest`` is a JSON array of strings, else the shell form."""
    array = _json_array(rest)
    if array is not None:
        return array, True
    return ([rest] if rest else []), False


def _json_array(rest: str) -> list[str] | None:
    """Parse an exec-form array; None for shell text.

    Like Docker, text that is not valid JSON is shell form (``[ -f x ] && y``,
    ``[a, b]``). Unlike Docker, an array that is merely cut short (``["a", "b"``) is an
    error instead of being run by ``/bin/sh`` as a command named ``["a",``.
    """
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except json.JSONDecodeError as error:
        if error.pos >= len(rest) or error.msg.startswith("Unterminated string"):
            raise _Problem(f"unterminated JSON array: {rest}") from None
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Problem("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _healthcheck_args(rest: str) -> tuple[list[str], bool]:
    parts = _WHITESPACE.split(rest, maxsplit=1)
    kind = parts[0].upper()
    if not kind:
        return [], False
    command, json_form = _maybe_json(parts[1].strip() if len(parts) > 1 else "")
    return [kind, *command], json_form


# ---------------------------------------------------------------------------- per-instruction checks


def _require(instruction: Instruction, what: str = "at least one argument") -> None:
    if not instruction.args:
        raise _Problem(f"{instruction.keyword} requires {what}")


def _check_from(instruction: Instruction) -> None:
    _from_parts(instruction)


def _from_parts(instruction: Instruction) -> tuple[str, str | None]:
    """``FROM image [AS name]`` → (image, lower-cased name or None)."""
    parts = _WHITESPACE.split(instruction.text) if instruction.text else []
    if not parts:
        raise _Problem("FROM requires an image: FROM [--platform=PLATFORM] IMAGE [AS NAME]")
    _check_expansion([parts[0]], instruction.escape)
    if len(parts) == 1:
        return parts[0], None
    if parts[1].lower() != "as":
        raise _Problem(f'FROM takes an image and optionally "AS name", not {" ".join(parts[1:])!r}')
    if len(parts) == 2:
        raise _Problem("FROM ... AS requires a stage name")
    if len(parts) > 3:
        raise _Problem(f"FROM ... AS takes one stage name, not {' '.join(parts[2:])!r}")
    name = parts[2].lower()
    if not _STAGE_NAME.fullmatch(name):
        raise _Problem(f"invalid stage name {parts[2]!r}: it must start with a letter and hold only [a-z0-9-_.]")
    return parts[0], name


def _check_run(instruction: Instruction) -> None:
    _reject_heredoc(instruction)
    _require(instruction, "a command")


def _check_command(instruction: Instruction) -> None:
    """CMD and ENTRYPOINT: ``[]`` clears the inherited value, nothing at all is a mistake."""
    if not instruction.args and not instruction.json_form:
        raise _Problem(f"{instruction.keyword} requires a command (write {instruction.keyword} [] to clear it)")


def _check_shell(instruction: Instruction) -> None:
    if instruction.args and not instruction.json_form:
        raise _Problem('SHELL requires the exec (JSON) form, e.g. SHELL ["/bin/sh", "-c"]')
    _require(instruction)


def _check_copy(instruction: Instruction) -> None:
    _reject_heredoc(instruction)
    count = len(_argument_words(instruction))
    if count < 2:
        raise _Problem(f"{instruction.keyword} requires at least two arguments: one or more sources and a destination")


def _check_volume(instruction: Instruction) -> None:
    _require(instruction)
    if instruction.json_form and any(not item.strip() for item in instruction.args):
        raise _Problem("VOLUME can not be an empty string")


def _check_single(instruction: Instruction) -> None:
    """USER, WORKDIR, STOPSIGNAL, MAINTAINER: the whole rest of the line is the one argument."""
    _require(instruction, "exactly one argument")


def _check_key_values(instruction: Instruction) -> None:
    for key, value in _raw_pairs(instruction):
        _check_expansion([key, value], instruction.escape)


def _check_arg(instruction: Instruction) -> None:
    for name, default in _raw_args(instruction):
        _check_expansion([name] if default is None else [name, default], instruction.escape)


def _check_healthcheck(instruction: Instruction) -> None:
    _healthcheck(instruction)


def _check_onbuild(instruction: Instruction) -> None:
    _onbuild_trigger(instruction)


def _check_some(instruction: Instruction) -> None:
    _require(instruction)


_CHECKS: dict[str, Callable[[Instruction], None]] = {
    "ADD": _check_copy,
    "ARG": _check_arg,
    "CMD": _check_command,
    "COPY": _check_copy,
    "ENTRYPOINT": _check_command,
    "ENV": _check_key_values,
    "EXPOSE": _check_some,
    "FROM": _check_from,
    "HEALTHCHECK": _check_healthcheck,
    "LABEL": _check_key_values,
    "MAINTAINER": _check_single,
    "ONBUILD": _check_onbuild,
    "RUN": _check_run,
    "SHELL": _check_shell,
    "STOPSIGNAL": _check_single,
    "USER": _check_single,
    "VOLUME": _check_volume,
    "WORKDIR": _check_single,
}


def _argument_words(instruction: Instruction) -> list[str]:
    """The words of an instruction: the JSON list, or the shell text split as Docker splits it."""
    if instruction.json_form:
        return list(instruction.args)
    if instruction.keyword in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"):
        return list(instruction.args)
    return words(instruction.text, escape=instruction.escape)


def _reject_heredoc(instruction: Instruction) -> None:
    if instruction.json_form:
        return
    for word in words(instruction.text, escape=instruction.escape):
        match = _HEREDOC.fullmatch(word)
        if match and match.group(1).strip("'\""):
            raise _Problem(
                f"heredocs are not supported ({word} in {instruction.keyword}); "
                "put the content in a file of the build context and COPY it"
            )


class _Anything(Mapping[str, str]):
    """Every variable is set and non-empty: expanding against it only checks syntax."""

    def __getitem__(self, key: str) -> str:
        return "x"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _check_expansion(items: list[str], escape: str) -> None:
    for item in items:
        try:
            expand(item, _Anything(), escape=escape)
        except ContainerfileError as error:
            raise _Problem(error.message) from None


# ---------------------------------------------------------------------------- assembling stages


def _assemble(instructions: list[Instruction], path: str, *, last_line: int) -> Containerfile:
    if not instructions:
        raise ContainerfileError(path, last_line, "no instructions: a Containerfile needs at least a FROM")
    global_args: list[Instruction] = []
    groups: list[tuple[Instruction, list[Instruction]]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            groups.append((instruction, []))
        elif groups:
            groups[-1][1].append(instruction)
        elif instruction.keyword == "ARG":
            global_args.append(instruction)
        else:
            raise ContainerfileError(
                path, instruction.line, f"{instruction.keyword} before the first FROM (only ARG may come before it)"
            )
    if not groups:
        raise ContainerfileError(path, last_line, "no FROM instruction: a Containerfile needs at least one stage")
    return Containerfile(global_args, _stages(groups, path))


def _stages(groups: list[tuple[Instruction, list[Instruction]]], path: str) -> list[Stage]:
    stages: list[Stage] = []
    first_use: dict[str, int] = {}
    for index, (source, body) in enumerate(groups):
        base, name = _from_parts(source)  # already checked while parsing the line
        if name is not None:
            if name in first_use:
                raise ContainerfileError(
                    path, source.line, f"duplicate stage name {name!r} (first used on line {first_use[name]})"
                )
            first_use[name] = source.line
        stages.append(Stage(index, name, base, source.flags.get("platform") or None, body, source))
    return stages


# ---------------------------------------------------------------------------- helpers for the builder


def key_values(instruction: Instruction, variables: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The (key, value) pairs of an ENV or LABEL, expanded against ``variables``.

    Both forms are read: ``KEY=VALUE ...`` (quotes allowed) and the legacy
    ``ENV KEY the rest of the line``. Expansion removes quotes and escapes, so
    ``LABEL "a b"='$x'`` gives ``("a b", "$x")``.
    """
    if instruction.keyword not in ("ENV", "LABEL"):
        raise ValueError(f"key_values() reads ENV and LABEL, not {instruction.keyword}")
    values = variables if variables is not None else {}
    pairs = []
    for key, value in _located(instruction, _raw_pairs):
        name = expand(key, values, line=instruction.line, escape=instruction.escape)
        if not name:
            raise ContainerfileError("", instruction.line, f"{instruction.keyword} names can not be blank")
        pairs.append((name, expand(value, values, line=instruction.line, escape=instruction.escape)))
    return pairs


def arg_definitions(
    instruction: Instruction, variables: Mapping[str, str] | None = None
) -> list[tuple[str, str | None]]:
    """The (name, default or None) pairs an ARG declares, defaults expanded against ``variables``."""
    if instruction.keyword != "ARG":
        raise ValueError(f"arg_definitions() reads ARG, not {instruction.keyword}")
    values = variables if variables is not None else {}
    definitions: list[tuple[str, str | None]] = []
    line, escape = instruction.line, instruction.escape
    for name, default in _located(instruction, _raw_args):
        expanded = None if default is None else expand(default, values, line=line, escape=escape)
        definitions.append((expand(name, values, line=line, escape=escape), expanded))
    return definitions


def healthcheck(instruction: Instruction) -> Healthcheck:
    """The HEALTHCHECK as an image config records it (``NONE`` disables an inherited one)."""
    if instruction.keyword != "HEALTHCHECK":
        raise ValueError(f"healthcheck() reads HEALTHCHECK, not {instruction.keyword}")
    return _located(instruction, _healthcheck)


def onbuild_trigger(instruction: Instruction) -> Instruction:
    """The instruction an ONBUILD registers, parsed (it runs in builds FROM this image)."""
    if instruction.keyword != "ONBUILD":
        raise ValueError(f"onbuild_trigger() reads ONBUILD, not {instruction.keyword}")
    return _located(instruction, _onbuild_trigger)


def parse_duration(text: str) -> int:
    """A Go duration (``1m30s``, ``500ms``, ``1.5h``) in nanoseconds."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if body == "0":
        return 0
    total = Fraction(0)
    position = 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None:
            break
        total += Fraction(match.group(1)) * _NANOSECONDS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise ValueError(f"invalid duration {text!r} (examples: 30s, 1m30s, 500ms)")
    return sign * int(total)


def _located(instruction: Instruction, reader: Callable[[Instruction], _T]) -> _T:
    """Run a reader that raises _Problem, turning it into an error with the instruction's line."""
    try:
        return reader(instruction)
    except _Problem as problem:
        raise ContainerfileError("", instruction.line, str(problem)) from None


def _raw_pairs(instruction: Instruction) -> list[tuple[str, str]]:
    """ENV/LABEL pairs as written (quotes kept), following BuildKit's parseNameVal."""
    keyword = instruction.keyword
    found = words(instruction.text, escape=instruction.escape)
    if not found:
        raise _Problem(f"{keyword} requires at least one KEY=VALUE")
    if "=" not in found[0]:
        parts = _WHITESPACE.split(instruction.text, maxsplit=1)
        if len(parts) < 2:
            raise _Problem(f"{keyword} {parts[0]} has no value: write {keyword} {parts[0]}=VALUE")
        return [(parts[0], parts[1])]
    pairs = []
    for word in found:
        key, equals, value = word.partition("=")
        if not equals:
            raise _Problem(f"{keyword}: can't find = in {word!r}; the form is {keyword} KEY=VALUE ...")
        if not key:
            raise _Problem(f"{keyword} names can not be blank")
        pairs.append((key, value))
    return pairs


def _raw_args(instruction: Instruction) -> list[tuple[str, str | None]]:
    found = words(instruction.text, escape=instruction.escape)
    if not found:
        raise _Problem("ARG requires at least one NAME[=DEFAULT]")
    definitions: list[tuple[str, str | None]] = []
    for word in found:
        name, equals, default = word.partition("=")
        if not name:
            raise _Problem("ARG names can not be blank")
        definitions.append((name, default if equals else None))
    return definitions


def _healthcheck(instruction: Instruction) -> Healthcheck:
    if not instruction.args:
        raise _Problem("HEALTHCHECK requires NONE or CMD")
    kind, command = instruction.args[0], instruction.args[1:]
    if kind == "NONE":
        if command or instruction.flags:
            raise _Problem("HEALTHCHECK NONE takes no arguments or flags")
        return Healthcheck(test=["NONE"])
    if kind != "CMD":
        raise _Problem(f"unknown HEALTHCHECK type {kind!r} (try CMD, or NONE)")
    if not command:
        raise _Problem("missing command after HEALTHCHECK CMD")
    test = ["CMD", *command] if instruction.json_form else ["CMD-SHELL", command[0]]
    durations = {name: _healthcheck_duration(instruction, name) for name in _FLAGS["HEALTHCHECK"] if name != "retries"}
    return Healthcheck(
        test=test,
        interval=durations["interval"],
        timeout=durations["timeout"],
        start_period=durations["start-period"],
        start_interval=durations["start-interval"],
        retries=_healthcheck_retries(instruction),
    )


def _healthcheck_duration(instruction: Instruction, name: str) -> int:
    text = instruction.flags.get(name, "")
    if not text:
        return 0
    try:
        nanoseconds = parse_duration(text)
    except ValueError as error:
        raise _Problem(f"--{name}: {error}") from None
    if nanoseconds < _MINIMUM_DURATION:
        raise _Problem(f"--{name} can not be less than 1ms, got {text!r}")
    return nanoseconds


def _healthcheck_retries(instruction: Instruction) -> int:
    text = instruction.flags.get("retries", "")
    if not text:
        return 0
    try:
        retries = int(text, 10)
    except ValueError:
        raise _Problem(f"--retries takes a whole number, not {text!r}") from None
    if retries < 1:
        raise _Problem(f"--retries must be at least 1, not {retries}")
    return retries


def _onbuild_trigger(instruction: Instruction) -> Instruction:
    if not instruction.args:
        raise _Problem("ONBUILD requires an instruction to run later")
    trigger = _instruction(instruction.text, instruction.line, instruction.escape)
    if trigger.keyword == "ONBUILD":
        raise _Problem("chaining ONBUILD via ONBUILD ONBUILD isn't allowed")
    if trigger.keyword in ("FROM", "MAINTAINER"):
        raise _Problem(f"{trigger.keyword} isn't allowed as an ONBUILD trigger")
    return trigger


# ---------------------------------------------------------------------------- words and expansion


def words(text: str, *, escape: str = "\\") -> list[str]:
    """Split shell-form arguments on blanks outside quotes (BuildKit's parseWords).

    Quotes and escape characters stay in the words, so that :func:`expand` can later
    tell a literal ``'$x'`` from a variable: ``words('a "b c" d\\ e')`` is
    ``['a', '"b c"', 'd\\ e']``. An escape at the very end of the text is dropped.
    """
    found: list[str] = []
    current: list[str] = []
    quoted = False  # a quote makes even an empty word ('') count
    quote = ""
    position = 0
    while position < len(text):
        character = text[position]
        position += 1
        if not quote and character.isspace():
            if quoted or current:
                found.append("".join(current))
            current, quoted = [], False
            continue
        if character == escape and quote != "'":
            if position == len(text):
                quote = ""
                continue
            current.append(character)
            character = text[position]
            position += 1
        elif quote and character == quote:
            quote = ""
        elif not quote and character in "'\"":
            quote, quoted = character, True
        current.append(character)
    if quoted or current:
        found.append("".join(current))
    return found


def expand(word: str, variables: Mapping[str, str], *, path: str = "", line: int = 0, escape: str = "\\") -> str:
    """Docker's word processing: substitute variables, remove quotes and escapes.

    ``$VAR`` and ``${VAR}``; ``${VAR:-default}`` / ``${VAR-default}`` (when unset or
    empty / when unset), ``${VAR:+alt}`` / ``${VAR+alt}`` (the reverse),
    ``${VAR:?message}`` / ``${VAR?message}`` (an error). Unset variables become "".
    Single quotes keep everything literal; inside double quotes the escape character
    only escapes ``"``, ``$`` and itself. Malformed text raises ContainerfileError
    located at ``path:line``.
    """
    try:
        return _Expander(word, variables, escape).until("")
    except _Problem as problem:
        raise ContainerfileError(path, line, f"{problem} in {word!r}") from None


class _Expander:
    """A cursor over one word, after BuildKit's shell.Lex (without ${x#...} ${x%...} ${x/...})."""

    def __init__(self, text: str, variables: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.position = 0
        self.variables = variables
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def next(self) -> str:
        character = self.peek()
        self.position += 1 if character else 0
        return character

    def until(self, stop: str) -> str:
        """Process up to ``stop`` (consumed) or, when ``stop`` is "", to the end."""
        out: list[str] = []
        while self.peek():
            character = self.peek()
            if stop and character == stop:
                self.next()
                return "".join(out)
            if character == "$":
                out.append(self.dollar())
            elif character == "'":
                out.append(self.single_quoted())
            elif character == '"':
                out.append(self.double_quoted())
            else:
                self.next()
                if character == self.escape:
                    character = self.next()
                out.append(character)
        if stop:
            raise _Problem(f"missing {stop!r}")
        return "".join(out)

    def single_quoted(self) -> str:
        self.next()
        start = self.position
        end = self.text.find("'", start)
        if end < 0:
            raise _Problem("unterminated single quote")
        self.position = end + 1
        return self.text[start:end]

    def double_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            character = self.peek()
            if not character:
                raise _Problem("unterminated double quote")
            if character == '"':
                self.next()
                return "".join(out)
            if character == "$":
                out.append(self.dollar())
                continue
            self.next()
            if character == self.escape:
                following = self.peek()
                if not following:
                    continue  # a lone escape at the end is dropped (then the quote is unterminated)
                if following in ('"', "$", self.escape):
                    character = self.next()
            out.append(character)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.variables.get(name, "") if name else "$"
        self.next()
        if not self.peek():
            raise _Problem("missing '}'")
        if self.peek() in "{}:":
            raise _Problem("bad substitution")
        name = self.name()
        modifier = self.next()
        if modifier == "}":
            return self.variables.get(name, "")
        null_is_unset = modifier == ":"
        operator = self.next() if null_is_unset else modifier
        if operator not in ("-", "+", "?"):
            if not operator:
                raise _Problem("missing '}'")
            shown = modifier + operator if null_is_unset else modifier
            raise _Problem(f"unsupported modifier {shown!r} in ${{{name}...}} (supported: -, +, ? and :-, :+, :?)")
        argument = self.until("}")
        return self.substitute(name, operator, argument, null_is_unset=null_is_unset)

    def substitute(self, name: str, operator: str, argument: str, *, null_is_unset: bool) -> str:
        is_set = name in self.variables
        value = self.variables.get(name, "")
        missing = not is_set or (null_is_unset and value == "")
        if operator == "-":
            return argument if missing else value
        if operator == "+":
            return "" if missing else argument
        if missing:
            reason = "is not allowed to be empty" if is_set else "is not allowed to be unset"
            raise _Problem(f"{name}: {argument or reason}")
        return value

    def name(self) -> str:
        """A variable name: letters, digits and _, or a positional/special parameter."""
        start = self.position
        if self.peek().isdigit():
            while self.peek().isdigit():
                self.next()
            return self.text[start : self.position]
        if self.peek() and self.peek() in "@*#?-$!0":
            return self.next()
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start : self.position]
