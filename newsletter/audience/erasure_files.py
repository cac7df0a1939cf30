"""The files half of an erasure: the files under the outbox folders that name the address.

This project writes its messages into folders as ``.eml`` files, one recipient each: a dry
run's ``<outbox_dir>/dry-run/<week>/``, the ``eml`` provider's ``<week>/`` and
``confirmations/``, a test send's ``test-<week>/``; a dry run given ``--out`` writes
elsewhere, and the caller names those folders too. Such a message is the person's as a whole,
so a message that names the address is deleted; so is any file whose name holds it. Any
other file that names it (a CSV export of the whole list, notes) holds other people's data
too: it is left alone and reported, for the operator to deal with. A database file is never
touched.

Every message written here names its recipient in the To header, in plain ASCII (the domain
in its IDNA form), so a file whose bytes do not hold the part before the @ is passed over; one
that does is checked as text, with HTML entities decoded, and as a message whose headers and
quoted-printable or base64 parts are decoded.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import html
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError
from .traces import Traces

MESSAGE_SUFFIX = ".eml"
MAX_OTHER = 16 * 1024 * 1024  # a larger file that is not a message is not read
_DATABASE_FILES = (b"SQLite format 3\x00",)
_DATABASE_SUFFIXES = ("-wal", "-shm", "-journal")


@dataclass
class Swept:
    deleted: int = 0
    left: list[Path] = field(default_factory=list)  # name the address, not deleted


def sweep(folders: Iterable[Path], traces: Traces) -> Swept:
    """Delete the messages under ``folders`` that name the address, and the files whose name
    holds it; list the other files that name it."""
    needle = re.compile(re.escape(traces.local.encode("utf-8")), re.IGNORECASE)
    swept = Swept()
    for path in _files(folders):
        if path.name.endswith(_DATABASE_SUFFIXES):
            continue
        if traces.mentions(path.name) or (path.suffix.lower() == MESSAGE_SUFFIX
                                          and _names(path, needle, traces)):
            swept.deleted += _delete(path)
        elif path.suffix.lower() != MESSAGE_SUFFIX and _names(path, needle, traces, MAX_OTHER):
            swept.left.append(path)
    return swept


def _files(folders: Iterable[Path]) -> Iterator[Path]:
    """Every regular file under the folders, once each; symbolic links are not followed."""
    seen: set[Path] = set()
    for folder in folders:
        if not Path(folder).is_dir():
            continue
        for root, _dirs, names in os.walk(folder):
            for name in names:
                path = Path(root, name)
                if path.is_symlink() or not path.is_file():
                    continue
                real = path.resolve()  # two folders given may overlap
                if real not in seen:
                    seen.add(real)
                    yield path


def _delete(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0  # a dry run replacing its folder meanwhile took it
    except OSError as exc:
        raise OutputError(f"cannot delete {path}: {exc.strerror}; the database part of the "
                          "erasure is done: make the file deletable and run the same "
                          "`subscribers remove` again") from None
    return 1


def _names(path: Path, needle: re.Pattern[bytes], traces: Traces,
           limit: int | None = None) -> bool:
    """Whether the file's content holds the address in any form."""
    try:
        if limit is not None and path.stat().st_size > limit:
            return False
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror}; the database part of the "
                          "erasure is done: make the file readable and run the same "
                          "`subscribers remove` again") from None
    if data.startswith(_DATABASE_FILES) or needle.search(data) is None:
        return False
    text = data.decode("utf-8", "replace")
    return any(traces.mentions(part) for part in (text, html.unescape(text),
                                                  *_message_texts(data)))


def _message_texts(data: bytes) -> Iterator[str]:
    """A message's headers and text parts, decoded (RFC 2047, quoted-printable, base64)."""
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
        for _name, value in message.items():
            yield str(value)
        for part in message.walk():
            if part.get_content_maintype() == "text":
                content = part.get_content()
                yield content
                yield html.unescape(content)
    except (LookupError, ValueError, email.errors.MessageError):
        return  # not a message, or a broken one: its text was checked as it is
