"""Write a week's folder under ``items_dir`` whole or not at all.

The files go into a staging folder beside the others; a complete edition (from JSON) is
loaded from there by the same reader every command uses before it is moved into place, so
what lands in ``items/<week>/`` always reads back as what was given. An existing folder is
replaced only when asked (``force``), and never once the week has a send in the ledger, in
any state: its folder is the record of what went out.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from ..edition.content import load_edition
from ..errors import ContentError, NewsletterError, OutputError
from ..files import make_folder, replace_folder, write_error


class WeekTaken(NewsletterError):
    """The week's folder may not be written: it exists, or the week was sent."""


def check_writable(folder: Path, week: str, *, force: bool, sent: Callable[[str], bool]
                   ) -> None:
    if sent(week):
        raise WeekTaken(f"{week} has been sent (its send is in the ledger): {folder} is the "
                        "record of what went out and is not replaced; write another week")
    if folder.exists() and not force:
        raise WeekTaken(f"{folder} exists; give --force to replace it (the whole folder), "
                        "or another --week")


def write_week(items_dir: Path, week: str, files: dict[str, str], *, force: bool,
               sent: Callable[[str], bool], verify: bool) -> Path:
    """Put ``files`` (name -> text) in ``items_dir/week``; ``verify`` loads them first."""
    items_dir = Path(items_dir)
    target = items_dir / week
    check_writable(target, week, force=force, sent=sent)
    staging_root = make_folder(items_dir) / f".new-{week}-{secrets.token_hex(4)}"
    try:
        staging = staging_root / week
        make_folder(staging)
        for name, text in files.items():
            _write(staging / name, text)
        if verify:
            _verify(staging_root, week, target)
        check_writable(target, week, force=force, sent=sent)  # again: time has passed
        try:
            if target.exists():
                replace_folder(staging, target)
            else:
                os.rename(staging, target)
        except OSError as exc:
            raise write_error(target, exc) from None
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    return target


def _write(path: Path, text: str) -> None:
    try:
        with open(path, "x", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    except OSError as exc:
        raise write_error(path, exc) from None


def _verify(staging_root: Path, week: str, target: Path) -> None:
    try:
        load_edition(staging_root, week)
    except NewsletterError as exc:
        # Named as the file it would have become; nothing was written there.
        message = str(exc).replace(str(staging_root / week), str(target))
        raise ContentError(f"{message} (nothing was written)") from None
    except OSError as exc:  # pragma: no cover - the staging folder vanished
        raise OutputError(f"cannot read back {target}: {exc.strerror}") from None
