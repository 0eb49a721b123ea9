"""YAML text → node trees with positions → plain Python data.

Why not ``YAML(typ="rt")``: the round-trip loader keeps positions but costs about
1 s per 1,000 small documents. Composing with ruamel's C parser keeps a start mark
on every node at a tenth of that, and our own node → data conversion is where
duplicate keys, merge keys, unsupported tags and alias bombs are caught. The node
tree is kept beside the data, so an error found later (by pydantic or a
cross-reference check) is located by walking the tree along the error's path: the
happy path pays nothing for positions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:  # the C parser; the pure-Python one is the same grammar, only slower
    from ruamel.yaml.cyaml import CBaseLoader as _BaseLoader
except ImportError:  # pragma: no cover - ruamel.yaml.clib missing
    from ruamel.yaml.loader import BaseLoader as _BaseLoader  # type: ignore[assignment]

#: Nodes constructed per document, counting alias re-use: stops "billion laughs".
MAX_NODES_PER_DOCUMENT = 100_000

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"

_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_MAYBE_TYPED = frozenset("-+.0123456789~nNtTfF<")
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = frozenset(("true", "True", "TRUE", "false", "False", "FALSE"))


def resolve_plain(value: str) -> str:
    """The tag of an untagged plain scalar under the YAML 1.2 core schema.

    ``no``, ``yes`` and ``on`` stay strings (YAML 1.1's surprises are gone), which is
    what ruamel.yaml does by default too; this is only faster, because the first
    character rules out most scalars (names, paths, images) without a regex.
    """
    if value and value[0] not in _MAYBE_TYPED:
        return _STR
    if value in _NULLS:
        return _NULL
    if value in _BOOLS:
        return _BOOL
    if value == "<<":
        return _MERGE
    if _INT_RE.match(value):
        return _INT
    if _FLOAT_RE.match(value):
        return _FLOAT
    return _STR


class _Loader(_BaseLoader):
    """ruamel's C parser and composer with a fast resolver.

    The parser asks ``resolve`` only for scalars without an explicit tag, so
    ``!!str 1`` stays a string; paths are never used for resolution here.
    """

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return resolve_plain(value) if implicit[0] else _STR
        return _SEQ if kind is SequenceNode else _MAP

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


@dataclass(frozen=True)
class YamlProblem(Exception):
    """A problem at a position of a YAML text; ``line``/``column`` are 1-based."""

    line: int
    column: int
    message: str


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) or a YamlProblem at the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise YamlProblem(line, column, f"not valid UTF-8: byte 0x{data[exc.start]:02x}") from None


_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)


def find_tabs(text: str) -> list[YamlProblem]:
    """Tabs in indentation: YAML forbids them, and the parser's own message is obscure."""
    if not _TAB_INDENT.search(text):  # the usual case, in one pass of the regex engine
        return []
    problems = []
    for number, line in enumerate(text.split("\n"), start=1):
        indent = len(line) - len(line.lstrip(" \t"))
        if "\t" in line[:indent] and line.strip() and not line.lstrip().startswith("#"):
            problems.append(
                YamlProblem(number, line.index("\t") + 1, "tab character in indentation: YAML indents with spaces")
            )
    return problems


def compose(text: str) -> list[Node]:
    """Every document of ``text`` as a node tree (empty documents are dropped)."""
    loader = _Loader(text)
    nodes = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None and not (isinstance(node, ScalarNode) and _tag(node) == _NULL):
                nodes.append(node)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or str(exc)
        if exc.context:
            message = f"{message} ({exc.context})"
        raise YamlProblem(mark.line + 1 if mark else 0, mark.column + 1 if mark else 0, message) from None
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose:
            dispose()
    return nodes


def _tag(node: Node) -> str:
    """The node's tag as a string, without the cost of ruamel's ``Node.tag`` property
    (which re-renders a Tag object on every access)."""
    try:
        ctag = node.ctag
        if ctag.handle is None:
            return ctag.suffix  # type: ignore[no-any-return]
    except AttributeError:  # pragma: no cover - a ruamel.yaml without Tag objects
        pass
    return str(node.tag)


class _Builder:
    """Node → data with the YAML 1.2 core schema, no Python-object tags.

    This runs on every node of every manifest, so plain strings (most scalars)
    take a short path; the node budget counts collections, which is where alias
    expansion multiplies work.
    """

    def __init__(self) -> None:
        self.count = 0
        self.active: set[int] = set()

    def build(self, node: Node) -> Any:
        if node.__class__ is ScalarNode:
            ctag = node.ctag
            if ctag.handle is None and ctag.suffix == _STR:  # most scalars: a plain string
                return node.value
            return _scalar(node, _tag(node))
        self.count += 1
        if self.count > MAX_NODES_PER_DOCUMENT:
            raise _problem(node, f"document expands to more than {MAX_NODES_PER_DOCUMENT} collections (alias bomb?)")
        if id(node) in self.active:
            raise _problem(node, "recursive alias: a node that contains itself")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if _tag(node) != _SEQ:
                    raise _problem(node, f"unsupported tag {node.tag}")
                return [self.build(item) for item in node.value]
            if isinstance(node, MappingNode):
                return self._mapping(node)
            if isinstance(node, ScalarNode):
                return _scalar(node, _tag(node))
            raise _problem(node, f"unsupported node {type(node).__name__}")
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode) -> dict[str, Any]:
        if _tag(node) != _MAP:
            raise _problem(node, f"unsupported tag {node.tag}")
        out: dict[str, Any] = {}
        merged: dict[str, Any] | None = None
        for key_node, value_node in node.value:
            key_tag = _tag(key_node)
            if key_tag == _MERGE:
                merged = {} if merged is None else merged
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise _problem(source, "a merge key (<<) takes a mapping or a list of mappings")
                    for k, v in self._mapping(source).items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, ScalarNode):
                raise _problem(key_node, "mapping keys must be plain scalars")
            key = key_node.value if key_tag == _STR else str(_scalar(key_node, key_tag))
            if key in out:
                first = next(k for k, _ in node.value if isinstance(k, ScalarNode) and k.value == key_node.value)
                raise _problem(key_node, f"duplicate key {key!r} (first defined at line {first.start_mark.line + 1})")
            out[key] = self.build(value_node)
        if merged:
            for k, v in merged.items():
                out.setdefault(k, v)
        return out


def _scalar(node: ScalarNode, tag: str) -> Any:
    value = node.value
    if tag == _STR:
        return value
    if tag == _INT:
        text = value.replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
            if text.lower().startswith(prefix):
                return sign * int(text[2:], base)
        return sign * int(text)
    if tag == _FLOAT:
        lowered = value.lower().replace("_", "")
        if lowered in (".inf", "+.inf"):
            return float("inf")
        if lowered == "-.inf":
            return float("-inf")
        if lowered == ".nan":
            return float("nan")
        return float(lowered)
    if tag == _BOOL:
        return value.lower() == "true"
    if tag == _NULL:
        return None
    if tag == _TIMESTAMP:
        return value
    raise _problem(node, f"unsupported tag {tag}")


def _problem(node: Node, message: str) -> YamlProblem:
    mark = node.start_mark
    return YamlProblem(mark.line + 1, mark.column + 1, message)


def to_data(node: Node) -> Any:
    """Plain Python data (dict, list, str, int, float, bool, None) of one document."""
    return _Builder().build(node)


_TYPE_TAG = re.compile(r"[\[\]]|^[A-Z]|^(str|int|float|bool|list|dict|none)$")


def locate(root: Node, loc: Sequence[object]) -> tuple[int, int, list[object]]:
    """The 1-based line and column for an error at ``loc``, and the path to print.

    ``loc`` may come from pydantic and hold union tags (``function-after[…]``,
    ``PortMapping``); elements that name no node are dropped, except a last element
    that looks like a field name (a missing or unknown field is reported under its
    own name, at its parent's or its key's position).
    """
    node: Node | None = root
    mark = root.start_mark
    path: list[object] = []
    for index, element in enumerate(loc):
        last = index == len(loc) - 1
        found, key_mark = child(node, element)
        if found is not None:
            path.append(element)
            node = found
            mark = key_mark if (last and key_mark is not None and isinstance(found, ScalarNode)) else found.start_mark
            if last and key_mark is not None and isinstance(found, MappingNode | SequenceNode):
                mark = key_mark
        elif last and not (isinstance(element, str) and _TYPE_TAG.search(element)):
            path.append(element)
            if key_mark is not None:
                mark = key_mark
    return mark.line + 1, mark.column + 1, path


def child(node: Node | None, element: object) -> tuple[Node | None, Any]:
    """The child of ``node`` at ``element`` and the mark of its key, if any."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == str(element):
                return value_node, key_node.start_mark
    elif isinstance(node, SequenceNode):
        if isinstance(element, int) and not isinstance(element, bool) and 0 <= element < len(node.value):
            return node.value[element], None
        if isinstance(element, str):
            for item in node.value:
                if isinstance(item, ScalarNode) and item.value == element:
                    return item, item.start_mark
    return None, None
