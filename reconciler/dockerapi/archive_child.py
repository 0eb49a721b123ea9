"""The child of ``archive``: runs chrooted in a container's root filesystem and reads
or writes a tar there. Standalone (standard library only, run with ``python -S -I``):
after ``chroot`` no module can be imported, and paths resolve inside the container,
so its symlinks cannot lead to the host's files.

    archive_child.py ROOT get PATH   -> one JSON line (the path's stat), then a tar of it
    archive_child.py ROOT stat PATH  -> the JSON line only
    archive_child.py ROOT put DIR    <- a tar on stdin, extracted into DIR

Exit 2: no such path; 3: not a directory (put); 1: anything else (stderr says what).
"""

import json
import os
import stat
import sys
import tarfile
import time

# Go's os.FileMode type bits, which the docker CLI reads from the stat header.
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27


def describe(path: str) -> dict[str, object]:
    info = os.lstat(path)
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISDIR(info.st_mode):
        mode |= GO_DIR
    link = ""
    if stat.S_ISLNK(info.st_mode):
        mode |= GO_SYMLINK
        link = os.readlink(path)
    name = os.path.basename(os.path.normpath(path)) or "/"
    mtime = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.st_mtime))
    return {"name": name, "size": info.st_size, "mode": mode, "mtime": mtime, "linkTarget": link}


def main() -> int:
    root, verb, path = sys.argv[1], sys.argv[2], sys.argv[3]
    os.chroot(root)
    os.chdir("/")
    path = "/" + path.lstrip("/")
    out = sys.stdout.buffer
    if verb in ("get", "stat"):
        try:
            described = describe(path)
        except FileNotFoundError:
            sys.stderr.write(f"Could not find the file {path} in container\n")
            return 2
        out.write(json.dumps(described).encode() + b"\n")
        out.flush()
        if verb == "get":
            with tarfile.open(fileobj=out, mode="w|") as archive:
                name = str(described["name"])
                archive.add(path, arcname=name if name != "/" else ".")
        return 0
    if verb == "put":
        if not os.path.exists(path):
            sys.stderr.write(f"Could not find the file {path} in container\n")
            return 2
        if not os.path.isdir(path):
            sys.stderr.write(f"extraction point is not a directory: {path}\n")
            return 3
        with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as archive:
            archive.extractall(path, numeric_owner=True, filter="tar")
        return 0
    sys.stderr.write(f"unknown verb {verb}\n")
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, tarfile.TarError) as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(1)
