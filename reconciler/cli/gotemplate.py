"""A subset of Go's ``text/template``: what ``docker ps --format`` and ``docker inspect
--format`` scripts use, so the same strings work against ``reconcile``.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming and ``{{/* */}}``
comments; fields (``.A.B``) of JSON-like data (dicts, lists) or of a ``Fields``
object (the rows of ``ps``), with arguments for methods (``.Label "k"``); variables
(``$``, ``$x := …``); pipelines (``.Config | json``); parenthesized pipelines;
``if``/``else if``/``else``, ``range`` (with ``$i, $e :=``), ``with``; the functions
docker adds (``json``, ``split``, ``join``, ``title``, ``lower``, ``upper``, ``pad``,
``truncate``) and Go's builtins that scripts use (``index``, ``len``, ``print``,
``printf``, ``println``, ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``and``,
``or``, ``not``). Values print as Go's ``%v`` does (``[a b]``, ``map[k:v]``,
``<nil>``, ``<no value>`` for a missing map key).

Worked example::

    template = gotemplate.parse("{{.State.Status}} {{json .Config.Labels}}")
    template.execute({"State": {"Status": "running"}, "Config": {"Labels": {"a": "b"}}})
    # 'running {"a":"b"}'

Standard library only: ``reconcile ps`` imports it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any


class TemplateError(Exception):
    """A template that does not parse, or fails on the data it is given."""


class _Missing:
    """A map key that is not there: Go prints ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


class Fields:
    """Data whose fields are computed (a ``ps`` row): ``field`` answers one by name,
    calling it with ``args`` when it is a method (``.Label "k"``); ``as_json`` is what
    ``{{json .}}`` prints."""

    def field(self, name: str, args: list[Any]) -> Any:
        raise KeyError(name)

    def as_json(self) -> Any:
        return {}


# --- lexing -------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _unquote(text: str) -> str:
    out, index = [], 1
    while index < len(text) - 1:
        char = text[index]
        if char == "\\":
            index += 1
            escaped = text[index]
            if escaped in _ESCAPES:
                out.append(_ESCAPES[escaped])
            elif escaped in "xuU":
                size = {"x": 2, "u": 4, "U": 8}[escaped]
                out.append(chr(int(text[index + 1 : index + 1 + size], 16)))
                index += size
            else:
                raise TemplateError(f"unknown escape sequence: \\{escaped}")
        else:
            out.append(char)
        index += 1
    return "".join(out)


class _Token:
    """One token of an action. The tree's classes are plain ones with slots, not
    NamedTuples: building a NamedTuple class costs ``ps`` about a millisecond each."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind, self.text = kind, text


_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT = _IDENT_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")


def _name_end(text: str, position: int) -> int:
    """Where an identifier chain (``A.B.C``) starting at ``position`` ends."""
    while position < len(text) and text[position] in _IDENT:
        position += 1
    while position + 1 < len(text) and text[position] == "." and text[position + 1] in _IDENT_START:
        position += 1
        while position < len(text) and text[position] in _IDENT:
            position += 1
    return position


def _tokens(action: str) -> list[_Token]:
    """The tokens of one action. Scanned by hand: a regular expression for them cost
    every ``ps`` its compilation (about 2 ms) at import."""
    found: list[_Token] = []
    position, size = 0, len(action)
    while position < size:
        char = action[position]
        if char.isspace():
            position += 1
            continue
        start = position
        if char == '"':
            position += 1
            while position < size and action[position] != '"':
                position += 2 if action[position] == "\\" else 1
            if position >= size:
                raise TemplateError(f"unterminated quoted string in command: {action.strip()}")
            position += 1
            found.append(_Token("string", action[start:position]))
        elif char == "`":
            end = action.find("`", position + 1)
            if end < 0:
                raise TemplateError(f"unterminated raw quoted string in command: {action.strip()}")
            position = end + 1
            found.append(_Token("raw", action[start:position]))
        elif char in _DIGITS or (char == "-" and position + 1 < size and action[position + 1] in _DIGITS):
            position += 1
            while position < size and (action[position] in _DIGITS or action[position] == "."):
                position += 1
            found.append(_Token("number", action[start:position]))
        elif action.startswith(":=", position):
            position += 2
            found.append(_Token("declare", ":="))
        elif char == ".":
            if position + 1 < size and action[position + 1] in _IDENT_START:
                position = _name_end(action, position + 1)
            else:
                position += 1
            found.append(_Token("field", action[start:position]))
        elif char == "$":
            position = _name_end(action, position + 1)
            found.append(_Token("variable", action[start:position]))
        elif char in _IDENT_START:
            position = _name_end(action, position)
            found.append(_Token("word", action[start:position]))
        elif char in "|(),=":
            position += 1
            found.append(_Token("punct", char))
        else:
            raise TemplateError(f"unexpected {char!r} in command: {action.strip()}")
    return found


# --- the tree -------------------------------------------------------------------------


class _Operand:
    __slots__ = ("kind", "value")

    def __init__(self, kind: str, value: Any) -> None:
        self.kind = kind  # field, variable, function, literal, pipe
        self.value = value  # field: (names); variable: (name, names); function: name; literal; pipe: (_Pipe, names)


class _Pipe:
    __slots__ = ("commands", "declared")

    def __init__(self, declared: tuple[str, ...], commands: tuple[tuple[_Operand, ...], ...]) -> None:
        self.declared = declared  # $x := ... (range: $i, $e :=)
        self.commands = commands


class _Node:
    __slots__ = ("body", "kind", "otherwise", "pipe", "text")

    def __init__(
        self,
        kind: str,  # text, action, if, range, with
        text: str = "",
        *,
        pipe: _Pipe | None = None,
        body: tuple[_Node, ...] = (),
        otherwise: tuple[_Node, ...] = (),
    ) -> None:
        self.kind, self.text, self.pipe, self.body, self.otherwise = kind, text, pipe, body, otherwise


def _split_actions(source: str) -> list[tuple[str, str]]:
    """``source`` as ("text", …) and ("action", …) pieces, trim markers applied."""
    pieces: list[tuple[str, str]] = []
    position = 0
    while True:
        start = source.find("{{", position)
        if start < 0:
            pieces.append(("text", source[position:]))
            return pieces
        text = source[position:start]
        inner_start = start + 2
        if source.startswith("- ", inner_start) or source[inner_start : inner_start + 2] in ("-\t", "-\n", "-\r"):
            text = text.rstrip(" \t\r\n")
            inner_start += 1
        pieces.append(("text", text))
        if source[inner_start:].lstrip(" \t\r\n").startswith("/*"):
            close = source.find("*/", inner_start)
            if close < 0:
                raise TemplateError("unclosed comment")
            end = source.find("}}", close)
        else:
            end = _action_end(source, inner_start)
        if end < 0:
            raise TemplateError("unclosed action")
        inner = source[inner_start:end]
        position = end + 2
        if inner.endswith(" -") or inner[-2:] in ("\t-", "\n-", "\r-"):
            inner = inner[:-1]
            rest = source[position:]
            position += len(rest) - len(rest.lstrip(" \t\r\n"))
        if not inner.strip().startswith("/*"):
            pieces.append(("action", inner))


def _action_end(source: str, position: int) -> int:
    """Where the action from ``position`` ends: the first ``}}`` outside a quoted string."""
    quote = ""
    index = position
    while index < len(source):
        char = source[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 1
            elif char == quote:
                quote = ""
        elif char in '"`':
            quote = char
        elif source.startswith("}}", index):
            return index
        index += 1
    return -1


class _Parser:
    def __init__(self, source: str) -> None:
        self.pieces = _split_actions(source)
        self.index = 0

    def parse(self) -> tuple[_Node, ...]:
        nodes, stop = self._list()
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop}}}}}")
        return nodes

    def _list(self) -> tuple[tuple[_Node, ...], str | None]:
        """Nodes up to an ``end`` or ``else`` (returned as the stop word with its rest), or the end."""
        nodes: list[_Node] = []
        while self.index < len(self.pieces):
            kind, text = self.pieces[self.index]
            self.index += 1
            if kind == "text":
                if text:
                    nodes.append(_Node("text", text))
                continue
            words = text.split(None, 1)
            keyword = words[0] if words else ""
            rest = words[1] if len(words) > 1 else ""
            if keyword in ("end", "else"):
                return tuple(nodes), text.strip()
            if keyword in ("if", "range", "with"):
                nodes.append(self._block(keyword, rest))
            elif keyword in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"{{{{{keyword}}}}} is not supported")
            else:
                nodes.append(_Node("action", pipe=_pipe(text)))
        return tuple(nodes), None

    def _block(self, keyword: str, rest: str) -> _Node:
        pipe = _pipe(rest)
        if not pipe.commands:
            raise TemplateError(f"missing value for {keyword}")
        body, stop = self._list()
        if stop is None:
            raise TemplateError(f"unexpected EOF: {{{{{keyword}}}}} without {{{{end}}}}")
        otherwise: tuple[_Node, ...] = ()
        if stop != "end":
            after = stop[len("else") :].strip()
            if after.startswith(("if ", "with ")):  # else if …: a nested block sharing our end
                inner_keyword, inner_rest = after.split(None, 1)
                otherwise = (self._block(inner_keyword, inner_rest),)
            elif after:
                raise TemplateError(f"unexpected {after!r} after else")
            else:
                otherwise, stop = self._list()
                if stop != "end":
                    raise TemplateError(f"expected {{{{end}}}} after {{{{else}}}} of {keyword}")
        return _Node(keyword, pipe=pipe, body=body, otherwise=otherwise)


def _pipe(text: str) -> _Pipe:
    tokens = _tokens(text)
    declared: list[str] = []
    for index, token in enumerate(tokens):
        if token.kind == "declare":
            names = [t for t in tokens[:index] if t.text != ","]
            if not names or any(t.kind != "variable" or "." in t.text for t in names) or len(names) > 2:
                raise TemplateError(f"bad declaration in command: {text.strip()}")
            declared = [t.text for t in names]
            tokens = tokens[index + 1 :]
            break
    commands, position = _commands(tokens, 0, text)
    if position != len(tokens):
        raise TemplateError(f"unexpected {tokens[position].text!r} in command: {text.strip()}")
    return _Pipe(tuple(declared), commands)


def _commands(tokens: list[_Token], position: int, text: str) -> tuple[tuple[tuple[_Operand, ...], ...], int]:
    commands: list[tuple[_Operand, ...]] = []
    operands: list[_Operand] = []
    while position < len(tokens):
        token = tokens[position]
        if token.text == ")":
            break
        position += 1
        if token.text == "|":
            if not operands:
                raise TemplateError(f"missing command before | in: {text.strip()}")
            commands.append(tuple(operands))
            operands = []
        elif token.text == "(":
            inner, position = _commands(tokens, position, text)
            if position >= len(tokens) or tokens[position].text != ")":
                raise TemplateError(f"unclosed left paren in command: {text.strip()}")
            position += 1
            names: tuple[str, ...] = ()
            if position < len(tokens) and tokens[position].kind == "field" and tokens[position].text != ".":
                names = tuple(tokens[position].text.split(".")[1:])
                position += 1
            operands.append(_Operand("pipe", (_Pipe((), inner), names)))
        else:
            operands.append(_operand(token))
    if operands:
        commands.append(tuple(operands))
    elif commands:
        raise TemplateError(f"missing command after | in: {text.strip()}")
    return tuple(commands), position


def _operand(token: _Token) -> _Operand:
    if token.kind == "field":
        return _Operand("field", () if token.text == "." else tuple(token.text.split(".")[1:]))
    if token.kind == "variable":
        name, *names = token.text.split(".")
        return _Operand("variable", (name, tuple(names)))
    if token.kind == "string":
        return _Operand("literal", _unquote(token.text))
    if token.kind == "raw":
        return _Operand("literal", token.text[1:-1])
    if token.kind == "number":
        return _Operand("literal", float(token.text) if "." in token.text else int(token.text))
    if token.kind == "word":
        if token.text in ("true", "false"):
            return _Operand("literal", token.text == "true")
        if token.text == "nil":
            return _Operand("literal", None)
        if "." in token.text:
            raise TemplateError(f"bad identifier {token.text!r}")
        if token.text not in FUNCTIONS:
            raise TemplateError(f'function "{token.text}" not defined')
        return _Operand("function", token.text)
    raise TemplateError(f"unexpected {token.text!r}")


# --- values as Go prints them -------------------------------------------------------


def _go_float(number: float) -> str:
    """``%v`` of a float64: the shortest digits, exponent form past 1e+06 or under 1e-04."""
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "0"
    from decimal import Decimal  # rare: floats seldom reach a template; decimal costs an import

    sign, digits, exponent = Decimal(repr(number)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    exponent += len(digits) - len(text)
    point = len(text) + exponent  # digits before the decimal point
    power = point - 1
    prefix = "-" if sign else ""
    if power < -4 or power >= 6:  # shortest %g decides at precision 6
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def show(value: Any) -> str:
    """``value`` as Go's ``fmt`` prints it with ``%v``."""
    if isinstance(value, str):
        return value
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{show(k)}:{show(value[k])}" for k in sorted(value, key=str)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(show(item) for item in value) + "]"
    if isinstance(value, Fields):
        return show(value.as_json())
    return str(value)


def _truth(value: Any) -> bool:
    """Go's truth: false, 0, nil, and empty strings, lists and maps are false."""
    if value is MISSING or value is None:
        return False
    if isinstance(value, Fields):
        return True
    return bool(value)


def _plain(value: Any) -> Any:
    """JSON-able: a ``Fields`` as its JSON, a missing value as null."""
    if isinstance(value, Fields):
        return value.as_json()
    if value is MISSING:
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --- functions ----------------------------------------------------------------------


def _json(value: Any) -> str:
    """docker's ``json``: compact, no HTML escaping, no trailing newline."""
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, list | tuple | str):
            if not isinstance(key, int) or not 0 <= key < len(value):
                raise TemplateError(f"error calling index: index out of range: {show(key)}")
            value = value[key]
        elif isinstance(value, Fields):
            value = value.field(str(key), [])
        else:
            raise TemplateError(f"error calling index: cannot index slice/array with type {type(value).__name__}")
    return value


def _len(value: Any) -> int:
    if isinstance(value, dict | list | tuple | str):
        return len(value)
    raise TemplateError(f"error calling len: len of type {type(value).__name__}")


def _print(*values: Any) -> str:
    """``fmt.Sprint``: spaces between operands when neither side is a string."""
    out = ""
    for index, value in enumerate(values):
        if index and not isinstance(value, str) and not isinstance(values[index - 1], str):
            out += " "
        out += show(value)
    return out


def _printf(pattern: str, *values: Any) -> str:
    """``fmt.Sprintf`` for the verbs scripts use: %s %v %d %q %f %x %t %%, widths, ``-``."""
    remaining = list(values)

    def one(match: re.Match[str]) -> str:
        flags, width, precision, verb = match.groups()
        if verb == "%":
            return "%"
        if not remaining:
            return f"%!{verb}(MISSING)"
        value = remaining.pop(0)
        if verb == "q":
            text = _json(show(value) if not isinstance(value, str) else value)
        elif verb == "d" and isinstance(value, int | float) and not isinstance(value, bool):
            text = str(int(value))
        elif verb in "feg" and isinstance(value, int | float) and not isinstance(value, bool):
            text = f"{value:.{precision or 6}{verb}}"
        elif verb in "xX" and isinstance(value, int) and not isinstance(value, bool):
            text = format(value, verb)
        elif verb in "xX" and isinstance(value, str):
            text = value.encode().hex() if verb == "x" else value.encode().hex().upper()
        else:
            text = show(value)
            if precision and verb == "s":
                text = text[: int(precision)]
        if width:
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width), "0" if "0" in flags else " ")
        return text

    text = re.sub(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])", one, pattern)
    if remaining:
        text += "%!(EXTRA " + ", ".join(show(v) for v in remaining) + ")"
    return text


def _compare(name: str, test: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(left: Any, right: Any) -> bool:
        try:
            return test(left, right)
        except TypeError:
            raise TemplateError(f"error calling {name}: incompatible types for comparison") from None

    return compare


def _eq(left: Any, *rights: Any) -> bool:
    if not rights:
        raise TemplateError("error calling eq: missing argument for comparison")
    return any(left == right for right in rights)


def _and(*values: Any) -> Any:
    for value in values:
        if not _truth(value):
            return value
    return values[-1]


def _or(*values: Any) -> Any:
    for value in values:
        if _truth(value):
            return value
    return values[-1]


def _join(items: Any, separator: str) -> str:
    if not isinstance(items, list | tuple):
        raise TemplateError(f"error calling join: wrong type for value; expected []string; got {type(items).__name__}")
    return separator.join(show(item) for item in items)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # docker's (cli/templates)
    "json": _json,
    "split": lambda text, separator: str(text).split(separator),
    "join": _join,
    "title": lambda text: str(text).title(),
    "lower": lambda text: str(text).lower(),
    "upper": lambda text: str(text).upper(),
    "pad": lambda text, left, right: " " * int(left) + show(text) + " " * int(right),
    "truncate": lambda text, length: show(text)[: int(length)],
    # Go's builtins
    "index": _index,
    "len": _len,
    "print": _print,
    "println": lambda *values: " ".join(show(v) for v in values) + "\n",
    "printf": _printf,
    "eq": _eq,
    "ne": _compare("ne", lambda left, right: left != right),
    "lt": _compare("lt", lambda left, right: left < right),
    "le": _compare("le", lambda left, right: left <= right),
    "gt": _compare("gt", lambda left, right: left > right),
    "ge": _compare("ge", lambda left, right: left >= right),
    "not": lambda value: not _truth(value),
    "and": _and,
    "or": _or,
}


# --- execution ------------------------------------------------------------------------


class Template:
    """A parsed template: ``execute(data)`` renders it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = _Parser(source).parse()

    def execute(self, data: Any) -> str:
        out: list[str] = []
        _Run(data).nodes(self.nodes, data, {"$": data}, out)
        return "".join(out)


def parse(source: str) -> Template:
    """``source`` parsed, or ``TemplateError`` saying why not."""
    return Template(source)


class _Run:
    def __init__(self, root: Any) -> None:
        self.root = root

    def nodes(self, nodes: Iterable[_Node], dot: Any, variables: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "action":
                assert node.pipe is not None
                value = self.pipe(node.pipe, dot, variables)
                if not node.pipe.declared:
                    out.append(show(value))
            elif node.kind in ("if", "with"):
                assert node.pipe is not None
                scope = dict(variables)
                value = self.pipe(node.pipe, dot, scope)
                if _truth(value):
                    self.nodes(node.body, value if node.kind == "with" else dot, scope, out)
                else:
                    self.nodes(node.otherwise, dot, scope, out)
            elif node.kind == "range":
                self.range(node, dot, variables, out)

    def range(self, node: _Node, dot: Any, variables: dict[str, Any], out: list[str]) -> None:
        assert node.pipe is not None
        plain = _Pipe((), node.pipe.commands)
        value = self.pipe(plain, dot, variables)
        if isinstance(value, dict):
            items: list[tuple[Any, Any]] = [(key, value[key]) for key in sorted(value, key=str)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {show(value)}")
        if not items:
            self.nodes(node.otherwise, dot, dict(variables), out)
            return
        declared = node.pipe.declared
        for key, element in items:
            scope = dict(variables)
            if len(declared) == 1:
                scope[declared[0]] = element
            elif len(declared) == 2:
                scope[declared[0]], scope[declared[1]] = key, element
            self.nodes(node.body, element, scope, out)

    def pipe(self, pipe: _Pipe, dot: Any, variables: dict[str, Any]) -> Any:
        value: Any = MISSING
        piped = False
        for command in pipe.commands:
            value = self.command(command, dot, variables, value if piped else MISSING, piped=piped)
            piped = True
        for name in pipe.declared:
            variables[name] = value
        return value

    def command(
        self, operands: tuple[_Operand, ...], dot: Any, variables: dict[str, Any], final: Any, *, piped: bool
    ) -> Any:
        first, rest = operands[0], operands[1:]
        args = [self.operand(o, dot, variables) for o in rest]
        if piped:
            args.append(final)
        if first.kind == "function":
            try:
                return FUNCTIONS[first.value](*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, AttributeError) as exc:
                raise TemplateError(f"error calling {first.value}: {exc}") from None
        if first.kind == "field" and first.value:
            return self.fields(dot, first.value, args)
        if first.kind == "variable" and first.value[1]:
            name, names = first.value
            return self.fields(self.variable(name, variables), names, args)
        if first.kind == "pipe" and first.value[1]:
            inner, names = first.value
            return self.fields(self.pipe(inner, dot, dict(variables)), names, args)
        if args:
            raise TemplateError(f"can't give argument to non-function {self.describe(first)}")
        return self.operand(first, dot, variables)

    def operand(self, operand: _Operand, dot: Any, variables: dict[str, Any]) -> Any:
        if operand.kind == "literal":
            return operand.value
        if operand.kind == "field":
            return self.fields(dot, operand.value, [])
        if operand.kind == "variable":
            name, names = operand.value
            return self.fields(self.variable(name, variables), names, [])
        if operand.kind == "pipe":
            inner, names = operand.value
            return self.fields(self.pipe(inner, dot, dict(variables)), names, [])
        raise TemplateError(f"function {operand.value} used as a value")  # a function needs to be called first

    @staticmethod
    def variable(name: str, variables: dict[str, Any]) -> Any:
        if name not in variables:
            raise TemplateError(f'undefined variable "{name}"')
        return variables[name]

    @staticmethod
    def fields(value: Any, names: tuple[str, ...], args: list[Any]) -> Any:
        """``value.A.B…``; the last one called with ``args`` (a method)."""
        for position, name in enumerate(names):
            last = position == len(names) - 1
            call_args = args if last else []
            if isinstance(value, Fields):
                try:
                    value = value.field(name, call_args)
                except KeyError:
                    raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}") from None
                continue
            if call_args:
                raise TemplateError(f"{name} is not a method but has arguments")
            if isinstance(value, dict):
                value = value.get(name, MISSING)
            elif value is None or value is MISSING:
                raise TemplateError(f"nil pointer evaluating interface {{}}.{name}")
            else:
                raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
        return value

    @staticmethod
    def describe(operand: _Operand) -> str:
        if operand.kind == "literal":
            return show(operand.value)
        return "." if operand.kind == "field" else str(operand.value)


# --- docker's formatter around a template ---------------------------------------------


def prepare(format_text: str) -> tuple[bool, str]:
    """docker's ``--format`` conventions: a ``table`` prefix (a header line, columns
    aligned), the literal ``\\t`` and ``\\n`` a shell passes turned into tab and newline,
    spaces around trimmed. Returns (table, template text)."""
    table = format_text.startswith("table")
    text = format_text[len("table") :] if table else format_text
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return table, text


def tabwrite(text: str, *, minwidth: int = 10, padding: int = 3) -> str:
    """Go's ``text/tabwriter`` as docker sets it up (``NewWriter(out, 10, 1, 3, ' ', 0)``):
    tab-terminated cells aligned in columns, a column block being the consecutive
    lines that have that cell; the text after a line's last tab is not aligned."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def write(first: int, last: int, widths: list[int]) -> None:
        for line in lines[first:last]:
            parts = []
            for column, cell in enumerate(line):
                if column < len(widths) and column < len(line) - 1:
                    parts.append(cell.ljust(widths[column]))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def layout(first: int, last: int, widths: list[int]) -> None:
        column = len(widths)
        start = first
        line = first
        while line < last:
            if column >= len(lines[line]) - 1:
                line += 1
                continue
            write(start, line, widths)
            start = line
            width = minwidth
            while line < last and column < len(lines[line]) - 1:
                width = max(width, len(lines[line][column]) + padding)
                line += 1
            layout(start, line, [*widths, width])
            start = line
        write(start, last, widths)

    layout(0, len(lines), [])
    return "\n".join(out)
