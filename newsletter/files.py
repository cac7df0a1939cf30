"""Files written whole or not at all: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


@contextmanager
def atomic_writer(path: str | os.PathLike, *, text: bool = False) -> Iterator[IO]:
    """A file opened for writing that replaces ``path`` only once it is complete and closed.

    Text files are UTF-8 with newlines written as given (CSV writes its own CRLF).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        options = {"encoding": "utf-8", "newline": ""} if text else {}
        with os.fdopen(fd, "w" if text else "wb", **options) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """``data`` as the whole of ``path``, its folder created if needed."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as fh:
        fh.write(data)


def safe_filename(text: str, limit: int = 80) -> str:
    """A file name made of portable characters only (no slashes, no dot-files)."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "message"
    return cleaned[:limit]
