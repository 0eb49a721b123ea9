"""What ``reconcile ps`` shows of a container summary, as docker's CLI shows it: the
columns (``CONTAINER ID  IMAGE  COMMAND  CREATED  STATUS  PORTS  NAMES``), the fields
of ``--format`` templates (``{{.ID}}``, ``{{.Status}}``, ``{{.Label "k"}}``, ...) with
their table headers, and the ``--filter`` keys.

Docker's daemon computes some of these (``Status``); here the CLI does, from the
summary's timestamps, so an agent and the in-process engine show the same. Standard
library only: ``ps`` is a hot path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.cli import gotemplate
from reconciler.engine.container_view import summary_id
from reconciler.engine.models.containers import ContainerSummary

#: docker ps's default table.
DEFAULT_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

#: The states ``--filter status=`` takes (Docker's; the engine has the first, third, sixth and seventh).
STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")

HEADERS = {
    "ID": "CONTAINER ID",
    "Names": "NAMES",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Label": "LABEL",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
}

FILTERS = ("name", "id", "label", "status", "ancestor", "exited", "network", "volume")


# --- how docker words things ------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """go-units' ``HumanDuration``: ``Less than a second``, ``5 seconds``, ``About a
    minute``, ``3 hours``, ``2 weeks``, ..."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = whole // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def status_text(row: Mapping[str, Any], now: float) -> str:
    """Docker's STATUS: ``Up 3 minutes``, ``Up 1 second (Paused)``, ``Exited (0) 2
    seconds ago``, ``Created``."""
    status = row["status"]
    if status in ("running", "paused"):
        started = row.get("started")
        text = f"Up {human_duration(now - started)}" if started else "Up"
        return f"{text} (Paused)" if status == "paused" else text
    if status == "exited":
        finished = row.get("finished")
        code = row.get("exit_code") or 0
        return f"Exited ({code}) {human_duration(now - finished)} ago" if finished else f"Exited ({code})"
    if status == "created":
        return "Created"
    return str(status).capitalize()


def _quote(text: str) -> str:
    """Go's ``strconv.Quote`` for what commands hold: backslash and quote escaped,
    control characters as escapes, the rest as it is."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the common case, without a loop over characters
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def ellipsis(text: str, width: int) -> str:
    """docker's ``formatter.Ellipsis``: cut to ``width`` characters, the last one ``…``."""
    return text if len(text) <= width else text[: width - 1] + "…"


def short_id(identifier: str, *, trunc: bool = True) -> str:
    """An ID's 12-digit short form (a name, which IDs were before, as it is)."""
    bare = identifier.removeprefix("sha256:")
    if trunc and len(bare) == 64 and all(c in "0123456789abcdef" for c in bare):
        return bare[:12]
    return identifier


def ports_text(row: Mapping[str, Any]) -> str:
    """``0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp``, consecutive ports merged into
    ranges (``0.0.0.0:8000-8001->80-81/tcp``) as docker does."""
    ports = sorted(
        row.get("ports") or [], key=lambda p: (p["host_ip"], p["protocol"], p["container_port"], p["host_port"])
    )
    groups: list[list[Any]] = []  # [host_ip, protocol, host_first, host_last, container_first, container_last]
    for port in ports:
        last = groups[-1] if groups else None
        if (
            last is not None
            and last[0] == port["host_ip"]
            and last[1] == port["protocol"]
            and last[3] + 1 == port["host_port"]
            and last[5] + 1 == port["container_port"]
        ):
            last[3], last[5] = port["host_port"], port["container_port"]
            continue
        groups.append(
            [
                port["host_ip"],
                port["protocol"],
                port["host_port"],
                port["host_port"],
                port["container_port"],
                port["container_port"],
            ]
        )

    def span(first: int, last: int) -> str:
        return str(first) if first == last else f"{first}-{last}"

    return ", ".join(f"{g[0]}:{span(g[2], g[3])}->{span(g[4], g[5])}/{g[1]}" for g in groups)


def _created_at(timestamp: float) -> str:
    """Go's ``time.Time.String()`` in local time: ``2024-01-02 15:04:05 +0000 UTC``."""
    local = time.localtime(timestamp)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", local) + (local.tm_zone or "")


# --- the rows of --format ----------------------------------------------------------------


def _image(summary: ContainerSummary, trunc: bool, now: float = 0.0) -> str:
    image = summary["image"]
    return short_id(image, trunc=trunc) if image.startswith("sha256:") else image


def _command(summary: ContainerSummary, trunc: bool, now: float = 0.0) -> str:
    command = " ".join(summary["command"])
    return _quote(ellipsis(command, 20) if trunc else command)


def _mounts(summary: ContainerSummary, trunc: bool, now: float = 0.0) -> str:
    names = [text.partition(":")[0] for text in summary.get("mounts") or []]
    return ",".join(ellipsis(n, 15) if trunc else n for n in names)


def _volumes(summary: ContainerSummary) -> list[str]:
    """The volumes' names (a bind's source starts with ``/``, a volume's name never)."""
    return [name for name, _, _ in (t.partition(":") for t in summary.get("mounts") or []) if not name.startswith("/")]


#: The fields of a row: (summary, trunc, now) → text.
FIELDS: dict[str, Callable[[ContainerSummary, bool, float], str]] = {
    "ID": lambda s, trunc, now: short_id(summary_id(s), trunc=trunc),
    "Names": lambda s, trunc, now: s["name"],
    "Image": _image,
    "Command": _command,
    "CreatedAt": lambda s, trunc, now: _created_at(s["created"]),
    "RunningFor": lambda s, trunc, now: f"{human_duration(now - s['created'])} ago",
    "Ports": lambda s, trunc, now: ports_text(s),
    "State": lambda s, trunc, now: s["status"],
    "Status": lambda s, trunc, now: status_text(s, now),
    "Size": lambda s, trunc, now: "0B",
    "Labels": lambda s, trunc, now: ",".join(f"{k}={v}" for k, v in sorted((s.get("labels") or {}).items())),
    "Mounts": _mounts,
    "LocalVolumes": lambda s, trunc, now: str(len(_volumes(s))),
    "Networks": lambda s, trunc, now: ",".join(s.get("networks") or []),
}


class Row(gotemplate.Fields):
    """One container as ``--format`` templates see it (docker's ``ContainerContext``)."""

    def __init__(self, summary: ContainerSummary, *, trunc: bool = True, now: float | None = None) -> None:
        self.summary = summary
        self.trunc = trunc
        self.now = time.time() if now is None else now

    def field(self, name: str, args: list[Any]) -> Any:
        if name == "Label":
            if len(args) != 1:
                raise gotemplate.TemplateError("Label takes one argument: the label's key")
            return (self.summary.get("labels") or {}).get(str(args[0]), "")
        if args or name not in FIELDS:
            raise KeyError(name)
        return FIELDS[name](self.summary, self.trunc, self.now)

    def as_json(self) -> Any:
        return {key: FIELDS[key](self.summary, self.trunc, self.now) for key in sorted(FIELDS)}


class Headers(gotemplate.Fields):
    """The table's header line: each field answers its column's name."""

    def field(self, name: str, args: list[Any]) -> Any:
        if name not in HEADERS:
            raise KeyError(name)
        return HEADERS[name]

    def as_json(self) -> Any:
        return {}


def render(template_text: str, rows: Iterable[ContainerSummary], *, trunc: bool = True) -> str:
    """``rows`` through a ``--format`` string (``table …``, ``json``, or a template):
    the text to print, each row ending in a newline. Raises ``TemplateError``."""
    if template_text == "json":
        template_text = "{{json .}}"
    elif template_text == "table":
        template_text = DEFAULT_TABLE
    if template_text == DEFAULT_TABLE:
        return _default_table(rows, trunc=trunc)
    table, text = gotemplate.prepare(template_text)
    template = gotemplate.parse(text)
    now = time.time()
    lines = [template.execute(Row(row, trunc=trunc, now=now)) for row in rows]
    if not table:
        return "".join(line + "\n" for line in lines)
    header = template.execute(Headers())
    return gotemplate.tabwrite("".join(line + "\n" for line in [header, *lines]))


def _default_table(rows: Iterable[ContainerSummary], *, trunc: bool) -> str:
    """The default table without the template engine: the same text as
    ``DEFAULT_TABLE`` rendered and tab-written, in a tenth of the time (``ps`` of 300
    containers is a hot path)."""
    now = time.time()
    lines = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for summary in rows:
        lines.append(
            [
                short_id(summary_id(summary), trunc=trunc),
                _image(summary, trunc),
                _command(summary, trunc),
                f"{human_duration(now - summary['created'])} ago",
                status_text(summary, now),
                ports_text(summary) if summary.get("ports") else "",
                summary["name"],
            ]
        )
    widths = [max(10, max(len(line[column]) for line in lines) + 3) for column in range(6)]
    return "".join(
        "".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + line[6] + "\n" for line in lines
    )


# --- filters -------------------------------------------------------------------------------


def parse_filters(texts: Iterable[str]) -> dict[str, list[str]]:
    """``--filter KEY=VALUE`` flags by key (values of one key are alternatives, keys
    must all match). Raises ``ValueError`` saying which one is wrong."""
    filters: dict[str, list[str]] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip().lower()
        if not sep:
            raise ValueError(f"bad format of filter (expected name=value): {text!r}")
        if key not in FILTERS:
            raise ValueError(f"invalid filter {key!r}: one of {', '.join(FILTERS)}")
        if key == "status" and value not in STATES:
            raise ValueError(f"invalid filter 'status={value}': one of {', '.join(STATES)}")
        if key == "exited" and not value.lstrip("-").isdigit():
            raise ValueError(f"invalid filter 'exited={value}': an exit code")
        if key == "name":
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid filter 'name={value}': {exc}") from None
        filters.setdefault(key, []).append(value)
    return filters


def _reference(name: str) -> str:
    """``busybox`` and ``docker.io/library/busybox:latest`` alike: ``busybox:latest``."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        name = name.removeprefix(prefix)
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in last else f"{name}:latest"


def _ancestor(row: ContainerSummary, value: str) -> bool:
    if _reference(row["image"]) == _reference(value):
        return True
    bare = value.removeprefix("sha256:")
    image_id = (row.get("image_id") or "").removeprefix("sha256:")
    return len(bare) >= 4 and all(c in "0123456789abcdef" for c in bare) and image_id.startswith(bare)


def _one(row: ContainerSummary, key: str, value: str) -> bool:
    if key == "name":
        return bool(re.search(value, row["name"]) or re.search(value, "/" + row["name"]))
    if key == "id":
        return summary_id(row).startswith(value) or row["name"] == value
    if key == "label":
        label, sep, wanted = value.partition("=")
        labels = row.get("labels") or {}
        return label in labels and (not sep or labels[label] == wanted)
    if key == "status":
        return row["status"] == value
    if key == "ancestor":
        return _ancestor(row, value)
    if key == "exited":
        return row["status"] == "exited" and row.get("exit_code") == int(value)
    if key == "network":
        return value in (row.get("networks") or [])
    if key == "volume":
        return any(value in text.split(":")[:2] for text in row.get("mounts") or [])
    return False


def matches(row: ContainerSummary, filters: Mapping[str, list[str]]) -> bool:
    """Every key must match; of one key's values any one, except ``label``, whose
    values must all match (docker's rules)."""
    return all(
        (all if key == "label" else any)(_one(row, key, value) for value in values) for key, values in filters.items()
    )


def needs_all(filters: Mapping[str, list[str]]) -> bool:
    """A status or exit filter looks at stopped containers too, as docker's does."""
    return "status" in filters or "exited" in filters
