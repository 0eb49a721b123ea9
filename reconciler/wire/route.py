"""One route of the native API: how an engine operation travels over HTTP.

The server binds each route to the engine method named by ``op``; the client turns a
method call into the request the route describes; the OpenAPI document is written
from the same table. So a new operation is one ``Route`` and one engine method, and
server and client cannot drift apart.

Parameters: path placeholders (``{name}``) and ``query`` entries become keyword
arguments of the same name; a JSON body becomes the argument ``body[0]``, validated
against the model ``body[1]`` (``"containers.RunRequest"`` is
``reconciler.engine.models.containers.RunRequest``).

Kinds of route (how the answer travels):
- ``json``: one JSON document, the method's return value.
- ``lines``: the method returns an iterator; each item is one JSON line
  (``application/x-ndjson``), streamed as it comes (logs -f, events -f).
- ``progress``: the method takes ``progress=`` (a callable of one dict) and returns a
  result; the answer is JSON lines ``{"progress": {...}}`` … then one
  ``{"result": ...}`` or ``{"error": {"code", "message"}}`` line (pull, push, build).
- ``upgrade``: the connection is hijacked (``Connection: Upgrade``, ``Upgrade: tcp``,
  101) and carries framed stdio (``wire.framing``): attached run, exec.
- ``upload``: the request body is raw bytes (a tar or an archive) spooled by the
  server to a file whose path is passed as ``body[0]``; ``body[1]`` names the media
  type.
- ``download``: the method returns a path to a file the server streams back and then
  deletes (save).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Kind = Literal["json", "lines", "progress", "upgrade", "upload", "download"]
#: Query parameter types: how the text of ``?name=value`` becomes an argument.
QueryType = Literal["str", "int", "float", "bool", "list"]


class Route(NamedTuple):
    method: str
    path: str
    op: str  # "containers.stop": the group and the method of the engine
    kind: Kind = "json"
    query: tuple[tuple[str, QueryType], ...] = ()
    body: tuple[str, str] | None = None  # (argument, model or media type)
    result: str | None = None  # model name of the result, for the OpenAPI document
    status: int = 200
    summary: str = ""

    def placeholders(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


def parse_query(text: str, kind: QueryType) -> object:
    """A query value as the method wants it (the server's side of ``format_query``)."""
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no", ""):
            return False
        raise ValueError(f"not a boolean: {text!r}")
    return text


def format_query(value: object) -> list[str]:
    """The texts of one argument (a list is repeated: ``?name=a&name=b``)."""
    if isinstance(value, bool):
        return ["1" if value else "0"]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return [str(value)]
