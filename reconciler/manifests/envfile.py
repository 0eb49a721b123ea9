"""``KEY=VALUE`` env files, as ``docker run --env-file`` and Compose's ``env_file`` read them."""

from __future__ import annotations


class EnvFileError(Exception):
    pass


def read(path: str) -> dict[str, str]:
    """Blank lines and ``#`` comments are skipped, ``export`` is allowed, one pair of
    surrounding quotes is removed; a line without ``=`` is an error naming its line.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise EnvFileError(f"env file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"cannot read env file {path}: {exc}") from None
    env: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = text.removeprefix("export ").lstrip()
        key, eq, value = text.partition("=")
        key = key.strip()
        if not eq or not key or any(c.isspace() for c in key):
            raise EnvFileError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key] = value
    return env
