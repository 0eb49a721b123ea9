"""Which files of a build context the builder leaves out: ``.containerignore`` / ``.dockerignore``.

The semantics are Docker's (``moby/patternmatcher`` and its ``ignorefile`` reader), so
an ignore file written for ``docker build`` sends the same files:

* one pattern a line; lines starting with ``#`` are comments; blanks are trimmed;
* patterns are cleaned like Go's ``filepath.Clean`` and a leading ``/`` is dropped
  (every pattern is relative to the context root);
* the syntax is Go's ``filepath.Match`` (``*`` and ``?`` never cross a ``/``,
  ``[a-z]`` / ``[^a-z]`` classes, ``\\`` escapes) plus ``**``, any number of
  directories, including none;
* a pattern matching a directory matches everything below it (``docs`` leaves out
  ``docs/a/b``), and ``!pattern`` re-includes; the last matching pattern wins.

A walker that finds an ignored directory may still have to descend into it, when an
exception could re-include something inside (``build`` then ``!build/keep``):
:meth:`IgnoreRules.may_contain_kept` answers that.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

FILENAMES = (".containerignore", ".dockerignore")  # the first one present is used


class IgnoreError(ValueError):
    """A malformed pattern, located by the line it came from."""

    def __init__(self, message: str, *, line: int, source: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.source = source

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.source else f"line {self.line}"
        return f"{where}: {self.message}"


class _BadPattern(Exception):
    pass


@dataclass(frozen=True)
class _Matcher:
    """One cleaned pattern compiled the way patternmatcher compiles it.

    Most patterns are plain names (``exact``); ``foo/**`` and ``**/foo`` get the
    string tests patternmatcher uses for them (``prefix``, ``suffix``), so even their
    quirks (``**foo`` matches ``a/xfoo``) stay the same; the rest are regular expressions.
    """

    text: str
    kind: str
    regex: re.Pattern[str] | None

    @classmethod
    def compile(cls, text: str) -> _Matcher:
        kind, expression = _translate(text)
        return cls(text, kind, re.compile(expression, re.DOTALL) if kind == "regexp" else None)

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None


def _translate(pattern: str) -> tuple[str, str]:
    """(kind, regular expression) for a cleaned pattern; raises _BadPattern like filepath.Match."""
    out: list[str] = []
    kind = "exact"
    position = 0
    while position < len(pattern):
        start = position
        character = pattern[position]
        position += 1
        if character == "*" and pattern.startswith("*", position):
            position += 1 + pattern.startswith("/", position + 1)
            at_end = position == len(pattern)
            if at_end and kind == "exact":
                kind = "prefix"
            else:
                out.append(".*" if at_end else "(?:.*/)?")
                kind = "regexp"
            if start == 0:
                kind = "suffix"
        elif character == "*":
            out.append("[^/]*")
            kind = "regexp"
        elif character == "?":
            out.append("[^/]")
            kind = "regexp"
        elif character == "\\":
            if position == len(pattern):
                raise _BadPattern("a trailing \\ escapes nothing")
            out.append(re.escape(pattern[position]))
            position += 1
            kind = "regexp"
        elif character == "[":
            expression, position = _character_class(pattern, position)
            out.append(expression)
            kind = "regexp"
        else:
            out.append(re.escape(character))
    return kind, "".join(out)


def _character_class(pattern: str, position: int) -> tuple[str, int]:
    """Translate ``[...]`` (``position`` is just after ``[``) with filepath.Match's rules.

    The class must be closed and non-empty; ``-`` and ``]`` only appear escaped or as
    a range's bounds' separator. Go accepts a reversed range and it matches nothing.
    """
    negated = pattern.startswith("^", position)
    position += negated
    items: list[str] = []
    count = 0
    while not (count and pattern.startswith("]", position)):
        low, position = _class_character(pattern, position)
        high = low
        if pattern.startswith("-", position):
            high, position = _class_character(pattern, position + 1)
        if low <= high:
            items.append(re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}")
        count += 1
    position += 1
    if not items:
        return ("." if negated else "(?!)"), position
    return "[" + ("^" if negated else "") + "".join(items) + "]", position


def _class_character(pattern: str, position: int) -> tuple[str, int]:
    """One character of a class, possibly escaped; the class must go on after it."""
    if position < len(pattern) and pattern[position] in "-]":
        raise _BadPattern(f"{pattern[position]!r} must be escaped in a character class")
    position += pattern.startswith("\\", position)
    if position + 1 >= len(pattern):
        raise _BadPattern("unterminated character class")
    return pattern[position], position + 1


def _clean(path: str) -> str:
    """Go's filepath.Clean for '/'-separated paths (unlike posixpath.normpath, '//a' is '/a')."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:
            parts.append("..")
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def normalize(line: str) -> str | None:
    """A line of an ignore file as the pattern it means, or None for comments and blanks.

    ``!`` is kept in front; the pattern after it is trimmed, cleaned and made relative.
    """
    if line.startswith("#"):
        return None
    pattern = line.strip()
    if not pattern:
        return None
    exclusion = pattern.startswith("!")
    if exclusion:
        pattern = pattern[1:].strip()
    if pattern:
        pattern = _clean(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
    return "!" + pattern if exclusion else pattern


@dataclass(frozen=True)
class _Rule:
    matcher: _Matcher
    exclusion: bool
    components: tuple[_Matcher | None, ...]  # per '/' part of the pattern; None stands for '**'


class IgnoreRules:
    """Ignore patterns, given as the lines of an ignore file (comments and blanks allowed)."""

    def __init__(self, patterns: list[str], *, source: str = "") -> None:
        self._rules: list[_Rule] = []
        for number, line in enumerate(patterns, start=1):
            pattern = normalize(line)
            if pattern is None:
                continue
            try:
                self._rules.append(_rule(pattern))
            except _BadPattern as error:
                raise IgnoreError(f"bad pattern {line.strip()!r}: {error}", line=number, source=source) from None
        self.patterns = [("!" if rule.exclusion else "") + rule.matcher.text for rule in self._rules]

    def __repr__(self) -> str:
        return f"IgnoreRules({self.patterns!r})"

    def ignored(self, relpath: str) -> bool:
        """Whether the file or directory at ``relpath`` (relative, '/'-separated) is left out.

        The context root itself is never ignored.
        """
        path = _clean(relpath).lstrip("/")
        if path in ("", "."):
            return False
        parts = path.split("/")
        parents = ["/".join(parts[: index + 1]) for index in range(len(parts) - 1)]
        matched = False
        for rule in self._rules:
            if rule.exclusion != matched:
                continue  # only an exception can change a match, only a pattern a non-match
            if rule.matcher.matches(path) or any(rule.matcher.matches(parent) for parent in parents):
                matched = not rule.exclusion
        return matched

    def may_contain_kept(self, reldir: str) -> bool:
        """Whether an exception (``!pattern``) could re-include something under ``reldir``.

        False means the walker can skip the whole (ignored) directory; True means it must
        descend and ask :meth:`ignored` about each entry. The answer errs towards True:
        it only looks at whether an exception's leading components can match ``reldir``.
        """
        path = _clean(reldir).lstrip("/")
        parts = [] if path in ("", ".") else path.split("/")
        return any(rule.exclusion and _could_reach(rule.components, parts) for rule in self._rules)


def _rule(pattern: str) -> _Rule:
    exclusion = pattern.startswith("!")
    text = pattern[1:] if exclusion else pattern
    if not text:
        raise _BadPattern('"!" alone excludes nothing')
    matcher = _Matcher.compile(text)
    components: tuple[_Matcher | None, ...] = ()
    if exclusion:
        try:
            components = tuple(None if part == "**" else _Matcher.compile(part) for part in text.split("/"))
        except _BadPattern:  # a '/' inside a class or escaped: treat it as '**', which can reach anything
            components = (None,)
    return _Rule(matcher, exclusion, components)


def _could_reach(components: tuple[_Matcher | None, ...], parts: list[str]) -> bool:
    """Could a pattern with these components match ``parts`` + something, or one of its ancestors?"""
    if not parts or not components:
        return True  # reached the directory with pattern left, or the pattern matched an ancestor
    head = components[0]
    if head is None:  # '**' takes none or more directories
        return _could_reach(components[1:], parts) or _could_reach(components, parts[1:])
    if "**" in head.text or "[^" in head.text:
        return True  # may span several directories: stay on the safe side
    return head.matches(parts[0]) and _could_reach(components[1:], parts[1:])


def load(context_dir: str) -> IgnoreRules:
    """The rules of ``.containerignore`` in ``context_dir``, else ``.dockerignore``, else none."""
    for name in FILENAMES:
        path = os.path.join(context_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            continue
        lines = [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]
        return IgnoreRules(lines, source=path)
    return IgnoreRules([])
