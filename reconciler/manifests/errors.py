"""Validation errors that read like a compiler's: ``path:line:col: kind/name: field: message``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class ManifestError:
    """One problem in a manifests directory. ``line`` and ``column`` are 1-based; 0 means the whole file."""

    file: str
    line: int
    column: int
    obj: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        parts = [where]
        if self.obj:
            parts.append(self.obj)
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "object": self.obj,
            "field": self.field,
            "message": self.message,
        }


class InvalidManifests(Exception):
    """A manifests directory with at least one error; it is rejected as a whole."""

    def __init__(self, errors: list[ManifestError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def format_path(path: tuple[object, ...] | list[object]) -> str:
    """``("spec", "ports", 1, "host_port")`` → ``spec.ports[1].host_port``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
