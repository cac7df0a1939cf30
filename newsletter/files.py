"""Files written whole or not at all: a temporary file in the same folder, then a rename; and
folders replaced whole (``replace_folder``).

Everything written has one mode: read-write for the owner and readable by others, as the
umask allows (0644 under the usual 022), like any file a command line tool creates. A failure
to write is an OutputError naming the file and the reason (a full disk, a missing folder).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import OutputError

FILE_MODE = 0o666    # before the umask
FOLDER_MODE = 0o777  # before the umask
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


@contextmanager
def atomic_writer(path: str | os.PathLike, *, text: bool = False) -> Iterator[IO]:
    """A file opened for writing that replaces ``path`` only once it is complete and closed.

    Text files are UTF-8 with newlines written as given (CSV writes its own CRLF).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # os.open with a mode (not mkstemp's fixed 0600): the umask decides, as for any file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        options = {"encoding": "utf-8", "newline": ""} if text else {}
        with os.fdopen(fd, "w" if text else "wb", **options) as fh:
            yield fh
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """``data`` as the whole of ``path``, its folder created if needed."""
    make_folder(Path(path).parent)
    with atomic_writer(path) as fh:
        fh.write(data)


def make_folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    try:
        path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from None
    return path


def staging_folder(target: Path) -> Path:
    """A new empty folder beside ``target``, to fill and then ``replace_folder`` with."""
    make_folder(target.parent)
    staging = target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")
    try:
        staging.mkdir(mode=FOLDER_MODE)
    except OSError as exc:
        raise write_error(staging, exc) from None
    return staging


def replace_folder(staging: Path, target: Path) -> None:
    """Put ``staging`` where ``target`` is, replacing the old folder as a whole: no file of an
    earlier run is left beside the new ones. Two renames; the old folder is removed last."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_error(path: Path, exc: OSError) -> OutputError:
    """One line naming the file and what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason += "; free some space (or write elsewhere) and run this again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += "; this user may not write there"
    return OutputError(f"cannot write {path}: {reason}")


def safe_filename(text: str, limit: int = 80) -> str:
    """A file name made of portable characters only (no slashes, no dot-files)."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "message"
    return cleaned[:limit]
