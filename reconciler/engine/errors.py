"""Errors of the engine, one class per HTTP status the API answers with.

The engine raises them; the API turns them into ``{"code", "message"}`` bodies with
their status; the client turns such a body back into the same class, so a command
behaves the same whether the engine ran in-process or behind an agent. Standard
library only: the remote CLI imports this.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EngineError(Exception):
    """Something the engine refused or could not do. ``exit_code`` is what a CLI
    command exits with for it (125 for ``run``: Docker's "the engine failed")."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.exit_code is not None:
            body["exit_code"] = self.exit_code
        return body


class InvalidRequest(EngineError):
    """The request is malformed: wrong types, unknown fields, a bad value."""

    status = 400
    code = "invalid"


class NotFound(EngineError):
    status = 404
    code = "not_found"


class Conflict(EngineError):
    """The object exists, is in use, or is in the wrong state for this verb."""

    status = 409
    code = "conflict"


class TooLarge(EngineError):
    status = 413
    code = "too_large"


class StartFailed(EngineError):
    """The container's process could not be started: 126 not executable, 127 not
    found (Docker's codes), or the engine failed (125)."""

    status = 400
    code = "start_failed"


class Unavailable(EngineError):
    """A dependency is missing or busy (a registry unreachable, the root locked)."""

    status = 503
    code = "unavailable"


class Internal(EngineError):
    """A bug: the API answers 500 and logs the traceback."""


_BY_CODE: dict[str, type[EngineError]] = {
    cls.code: cls for cls in (InvalidRequest, NotFound, Conflict, TooLarge, StartFailed, Unavailable, Internal)
}


def from_wire(body: Any, *, status: int = 500) -> EngineError:
    """The error an API body describes (a client's view of an engine's raise)."""
    if not isinstance(body, dict):
        return Internal(f"HTTP {status}: {body!r}"[:500])
    cls = _BY_CODE.get(str(body.get("code")), Internal)
    exit_code = body.get("exit_code")
    return cls(str(body.get("message", f"HTTP {status}")), exit_code=exit_code if isinstance(exit_code, int) else None)
