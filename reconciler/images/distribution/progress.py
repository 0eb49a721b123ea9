"""Progress bars for pulls and pushes, drawn with rich when the CLI wants them.

rich is imported only when ``rich_progress`` is entered, so the library costs
nothing to code that passes no callback (or its own).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from reconciler.images.distribution.config import ProgressCallback, ProgressEvent

_LABELS = {
    "exists": "already exists",
    "downloading": "downloading",
    "done": "complete",
    "unpacking": "unpacking",
    "unpacked": "unpacked",
    "mounted": "mounted",
    "uploading": "uploading",
}


@contextlib.contextmanager
def rich_progress(console: Any = None, *, transient: bool = False) -> Iterator[ProgressCallback]:
    """A callback drawing one bar per blob (``sha256:abcdef123456 downloading``)
    while the block runs; safe to call from the pull's worker threads."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=transient,
    )
    tasks: dict[str, TaskID] = {}
    lock = threading.Lock()

    def callback(event: ProgressEvent) -> None:
        label = f"{event.digest.removeprefix('sha256:')[:12]} {_LABELS.get(event.phase, event.phase)}"
        with lock:
            task = tasks.get(event.digest)
            if task is None:
                task = tasks[event.digest] = bars.add_task(label, total=event.total or None)
        bars.update(task, description=label, completed=event.done, total=event.total or None)

    with bars:
        yield callback
