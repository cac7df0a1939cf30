"""``newsletter send --dry-run``: one .eml per active subscriber, all or nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..audience.lookup import iter_recipients
from ..config import Config
from ..edition.render import render_week
from ..providers.eml import eml_name
from ..store.db import connect
from .outgoing import prepare


@dataclass(frozen=True)
class DryRunResult:
    count: int
    out_dir: Path


def dry_run(config: Config, week: str | None, out: str | None) -> DryRunResult:
    """Files are written to a staging folder, then moved in once every message was built."""
    rendered = render_week(config, week)
    outgoing = prepare(config, rendered)
    out_dir = Path(out) if out else Path(config.outbox_dir) / rendered.week
    engine = connect(config.database_url)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.partial-"))
    try:
        count = 0
        for recipient in iter_recipients(engine, status="active"):
            message = outgoing.message(outgoing.personalize(recipient))
            (staging / eml_name(recipient)).write_bytes(message)
            count += 1
        out_dir.mkdir(exist_ok=True)
        # Stream the directory rather than keep a list of names: memory stays flat.
        with os.scandir(staging) as entries:
            for entry in entries:
                os.replace(entry.path, out_dir / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DryRunResult(count=count, out_dir=out_dir)
