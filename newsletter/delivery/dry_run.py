"""``newsletter send --dry-run``: one .eml per active subscriber, all or nothing.

The messages go to ``<outbox_dir>/dry-run/<week>/`` (or ``--out DIR``), never to the real
``eml`` send's ``<outbox_dir>/<week>/``. They are written to a staging folder beside it, which
then replaces the folder as a whole: an error leaves the previous run untouched, and a run
leaves no file of an earlier one. A folder is only replaced if a dry run wrote it (it holds
the ``MARKER`` file) or it is empty, so ``--out`` can never wipe anything else.

A subscriber whose stored address or name cannot make a message (a row from before today's
rules) is left out and reported, as the send fails that one recipient and goes on.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..audience.lookup import iter_recipients
from ..audience.model import SubscriberStatus
from ..config import Config
from ..edition.render import render_week
from ..errors import HeaderError, OutputError
from ..files import replace_folder, staging_folder, write_error
from ..message.outgoing import prepare
from ..providers.eml import eml_name
from ..store.db import connect

log = logging.getLogger("newsletter.dry_run")

MARKER = ".newsletter-dry-run"


@dataclass(frozen=True)
class DryRunResult:
    count: int
    out_dir: Path
    refused: list[str] = field(default_factory=list)  # why each left-out subscriber was


def default_folder(config: Config, week: str) -> Path:
    return Path(config.outbox_dir) / "dry-run" / week


def dry_run(config: Config, week: str | None, out: str | None) -> DryRunResult:
    rendered = render_week(config, week)
    outgoing = prepare(config, rendered, preview=True)
    out_dir = Path(out) if out else default_folder(config, rendered.week)
    _check_replaceable(out_dir)
    engine = connect(config.database_url)
    staging = staging_folder(out_dir)
    refused: list[str] = []
    try:
        count = 0
        for recipient in iter_recipients(engine, status=SubscriberStatus.ACTIVE):
            try:
                message = outgoing.message(outgoing.personalize(recipient))
            except HeaderError as exc:
                refused.append(str(exc))
                log.warning("not written: %s", exc)
                continue
            _write(staging / eml_name(recipient), message, out_dir)
            count += 1
        _write(staging / MARKER, f"{rendered.week} {rendered.content_hash}\n".encode(), out_dir)
        replace_folder(staging, out_dir)
    except OSError as exc:
        raise _folder_error(out_dir, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DryRunResult(count=count, out_dir=out_dir, refused=refused)


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file, not a folder")
    if out_dir.is_dir() and not (out_dir / MARKER).exists() and any(out_dir.iterdir()):
        raise OutputError(f"{out_dir} holds files a dry run did not write; a dry run replaces "
                          "its folder as a whole, so give it a new or empty one (--out DIR)")


def _write(path: Path, data: bytes, out_dir: Path) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _folder_error(out_dir, exc) from None


def _folder_error(out_dir: Path, exc: OSError) -> OutputError:
    error = write_error(out_dir, exc)
    return OutputError(f"{error}; nothing was written (the dry run writes all or nothing)")
