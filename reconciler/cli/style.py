"""ANSI colour for terminals, without importing rich on the fast path."""

from __future__ import annotations

import os
import sys
from typing import TextIO

_CODES = {"green": "32", "yellow": "33", "red": "31", "cyan": "36", "bold": "1", "dim": "2", "magenta": "35"}


class Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *names: str) -> str:
        if not self.enabled or not names:
            return text
        codes = ";".join(_CODES[n] for n in names)
        return f"\033[{codes}m{text}\033[0m"


def for_stream(stream: TextIO, mode: str = "auto") -> Style:
    """``auto`` colours a TTY unless NO_COLOR is set (https://no-color.org)."""
    if mode == "always":
        return Style(True)
    if mode == "never" or os.environ.get("NO_COLOR"):
        return Style(False)
    return Style(stream.isatty() and os.environ.get("TERM") != "dumb")


def stdout_style(mode: str) -> Style:
    return for_stream(sys.stdout, mode)
