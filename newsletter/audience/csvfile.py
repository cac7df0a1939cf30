"""Reading and writing CSV files the way people actually produce them.

Reading accepts UTF-8 with or without a byte-order mark, a comma or a semicolon as the delimiter
(whichever the header line uses more of), blank lines anywhere, and reports every row with the
physical line it starts on. Every problem is a one-line ``SubscriberError`` naming the file.
Writing goes through ``files.atomic_writer``: a reader never sees half a file.

A cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a
tab or a CR: names come from a public form) is written with a ``'`` in front, the usual
neutralization, which spreadsheets show as text; reading takes that ``'`` off again, so an
export imports back exactly. (A cell that starts with ``'`` followed by such a cell gets one
more, so the rule undoes itself whatever the value.)
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import SubscriberError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(cell: str) -> str:
    """The cell as written to a CSV file: never a formula to a spreadsheet."""
    return "'" + cell if _needs_quote(cell) else cell


def restore(cell: str) -> str:
    """``neutralize`` undone."""
    return cell[1:] if cell.startswith("'") and _needs_quote(cell[1:]) else cell


def _needs_quote(cell: str) -> bool:
    stripped = cell.lstrip("'")
    return stripped.startswith(FORMULA_STARTS)


@dataclass(frozen=True)
class CsvRow:
    line: int
    cells: list[str]


@dataclass
class CsvData:
    path: Path
    columns: list[str]
    rows: list[CsvRow] = field(default_factory=list)
    header_line: int = 1


def read_csv(path: str | os.PathLike[str]) -> CsvData:
    """Read a whole CSV file with a header row; raise SubscriberError on anything unreadable."""
    path = Path(path)
    text = _decode(path, _read_bytes(path))
    if not text.strip():
        raise SubscriberError(f"{path} is empty; expected a header row such as 'email,name'")
    if "\x00" in text:
        # Databases refuse NUL in text (PostgreSQL outright); it also means "not a CSV file".
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SubscriberError(f"{path} contains a NUL byte on line {line}; is it really CSV text?")
    first_line = next(line for line in text.splitlines() if line.strip())
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    # strict: an unterminated quote is an error, not a field that swallows the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    data: CsvData | None = None
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if data is None:
                data = CsvData(path, _header(path, line, cells), header_line=line)
            else:
                data.rows.append(CsvRow(line, [restore(cell) for cell in cells]))
    except csv.Error as exc:
        raise SubscriberError(f"{path}, line {start}: not valid CSV: {exc}") from None
    if data is None:  # lines of empty cells only, such as ",,"
        raise SubscriberError(f"{path} has no header row, only empty cells; expected a header "
                              "row such as 'email,name'")
    return data


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SubscriberError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise SubscriberError(f"{path} is a folder, not a CSV file") from None
    except OSError as exc:
        raise SubscriberError(f"cannot read {path}: {exc.strerror}") from None


def _decode(path: Path, raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SubscriberError(f"{path} is UTF-16 text; save it as UTF-8 (CSV UTF-8) and retry")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start]
        raise SubscriberError(
            f"{path} is not UTF-8 text (byte 0x{byte:02X} on line {line}); save it as UTF-8"
        ) from None


def _header(path: Path, line: int, cells: list[str]) -> list[str]:
    names = [cell.strip() for cell in cells]
    # Spreadsheets often leave trailing empty header cells; those columns are ignored.
    while names and not names[-1]:
        names.pop()
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if not name:
            raise SubscriberError(f"{path}, line {line}: header column {number} has no name")
        if name.lower() in seen:
            raise SubscriberError(f"{path}, line {line}: duplicate column {name!r} in the header")
        seen[name.lower()] = number
    return names


def write_rows(fh: IO[str], columns: list[str], rows: Iterable[list[str]]) -> int:
    """Write a header and the rows; return how many rows were written."""
    # CRLF, as RFC 4180 says: with "\n" alone the csv module would not quote a bare "\r".
    writer = csv.writer(fh, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([neutralize(cell) for cell in row])
        count += 1
    return count
