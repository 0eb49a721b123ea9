"""Parsers for the quantities people write in manifests.

Users write ``512m``, ``1.5`` cpus, ``30s`` or ``1h30m``; the models store one
canonical value for each (bytes as int, cpus as float, durations as float seconds),
so a diff between two manifests never reports ``512m`` against ``536870912``.
Only the standard library is used: these run on every manifest load.
"""

from __future__ import annotations

import math
import re

_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
    "p": 1024**5,
}
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])i?)?b?\s*$", re.IGNORECASE)


def parse_bytes(value: object) -> int:
    """Parse a size such as ``512m``, ``1.5GiB`` or ``1048576`` into bytes.

    Units are binary as in Docker (``m`` is MiB), case-insensitive, with an
    optional ``i``, ``b`` or ``ib`` suffix (``64Mi``, as ``format_bytes`` writes it).
    Fractions are allowed and truncated to whole bytes.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512m, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a size must be a finite number, got {value}")
        if value < 0:
            raise ValueError("a size cannot be negative")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 512m, got {type(value).__name__}")
    match = _BYTES_RE.match(value)
    if not match:
        raise ValueError(f"invalid size {value!r}: use a number with an optional unit b, k, m, g, t")
    number, unit = match.groups()
    # exact integer arithmetic (no float rounding, no `fractions` import on the hot path)
    factor = _BYTE_UNITS[(unit or "").lower()]
    whole, _, fraction = number.partition(".")
    return int(whole) * factor + (int(fraction) * factor // 10 ** len(fraction) if fraction else 0)


def format_bytes(value: int) -> str:
    """Render bytes the way users write them (``512Mi``), for plan output."""
    for unit, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d))+$")


def parse_duration(value: object) -> float:
    """Parse ``30s``, ``1h30m``, ``500ms`` or a bare number of seconds into seconds.

    The syntax is Go's (what Docker and Compose accept) plus ``d`` for days.
    The result is rounded to the microsecond so float noise never shows in a diff.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif _DURATION_RE.match(text):
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"invalid duration {value!r}: use a number of seconds or units such as 30s, 1h30m, 500ms")
    else:
        raise ValueError(f"expected a duration such as 30s, got {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number, got {seconds}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return round(seconds, 6)


def format_duration(seconds: float) -> str:
    """Render seconds compactly (``1h30m``, ``2.5s``), for plan output."""
    seconds = round(seconds, 6)  # the precision parse_duration keeps
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    whole = int(seconds)
    parts = []
    for unit, size in (("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    rest = seconds - (int(seconds) - whole)
    if rest:
        parts.append(f"{round(rest, 6):.6f}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)


_CPUS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m?)\s*$")


def parse_cpus(value: object) -> float:
    """Parse a CPU count: ``1.5``, ``"2"`` or Kubernetes millicores ``"500m"``.

    Rounded to nano-CPUs, Docker's own precision (``NanoCpus``).
    """
    if isinstance(value, bool):
        raise ValueError("expected a number of CPUs such as 1.5, got a boolean")
    if isinstance(value, int | float):
        cpus = float(value)
    elif isinstance(value, str):
        match = _CPUS_RE.match(value)
        if not match:
            raise ValueError(f"invalid cpus {value!r}: use a number such as 1.5 or millicores 500m")
        cpus = float(match.group(1)) / (1000 if match.group(2) else 1)
    else:
        raise ValueError(f"expected a number of CPUs, got {type(value).__name__}")
    if not math.isfinite(cpus):
        raise ValueError(f"cpus must be a finite number, got {cpus}")
    cpus = round(cpus, 9)
    if cpus <= 0:  # after rounding: Docker reads NanoCpus 0 as "no limit"
        raise ValueError("cpus must be greater than 0 (at least 0.000000001)")
    return cpus


def human_size(size: int, *, binary: bool = True) -> str:
    """A size for people, as docker shows them: ``1.5MiB`` (``docker stats``, powers of
    1024) or ``2.14MB`` (``docker images``, powers of 1000)."""
    step, units = (1024, ("B", "KiB", "MiB", "GiB", "TiB")) if binary else (1000, ("B", "kB", "MB", "GB", "TB"))
    value = float(size)
    for unit in units:
        if value < step or unit == units[-1]:
            if unit == "B":
                return f"{value:.0f}B"
            return f"{value:.1f}{unit}" if binary else f"{value:.3g}{unit}"
        value /= step
    raise AssertionError("unreachable")
