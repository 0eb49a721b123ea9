"""A pseudo-terminal between the user's terminal and a container (``run -t``, ``exec -it``).

The container gets the pty's slave as stdin, stdout and stderr and takes it as its
controlling terminal; a thread here copies the master to our stdout and, with
``-i``, our stdin to the master. Our own terminal goes into raw mode meanwhile, so
keys such as ^C reach the container's line discipline instead of killing us.
Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import termios
import threading
import tty
from collections.abc import Iterator

#: ^D: what a terminal sends as end of input when our stdin (a pipe) ends.
EOT = b"\x04"


def _copy_size(source: int, target: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _pump(master: int, interactive: bool) -> None:
    """Copy until the container side of the pty is closed (EIO on the master)."""
    sources = [master, 0] if interactive else [master]
    while True:
        ready, _, _ = select.select(sources, [], [])
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            _write_all(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                sources.remove(0)
                data = EOT
            with contextlib.suppress(OSError):
                _write_all(master, data)


@contextlib.contextmanager
def attached(*, interactive: bool) -> Iterator[int]:
    """Yield a pty slave to hand to the container; relay it until the block ends."""
    master, slave = os.openpty()
    stdin_is_tty = os.isatty(0)
    if stdin_is_tty:
        _copy_size(0, slave)
    saved = termios.tcgetattr(0) if interactive and stdin_is_tty else None
    if saved is not None:
        tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop what was typed ahead
    previous = signal.signal(signal.SIGWINCH, lambda *_: _copy_size(0, master)) if stdin_is_tty else None
    pump = threading.Thread(target=_pump, args=(master, interactive), daemon=True)
    pump.start()
    try:
        yield slave
    finally:
        os.close(slave)  # the last slave: the pump drains what is left, then sees EIO
        pump.join(timeout=5)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        os.close(master)
