"""``newsletter preview``: the rendered edition as a made-up reader would get it, as files."""

from __future__ import annotations

from pathlib import Path

from ..audience.recipient import Recipient
from ..config import Config
from ..edition.render import render_week
from ..errors import OutputError
from ..files import atomic_write
from ..message.outgoing import prepare

PREVIEW_RECIPIENT = Recipient(id=0, email="reader@example.com", name="Preview Reader")


def write_preview(config: Config, week: str | None, out: str | None) -> tuple[Path, Path]:
    """Write the HTML for an example reader, and the text part beside it (same name, .txt)."""
    html_path = Path(out) if out else None
    if html_path is not None and html_path.suffix.lower() == ".txt":
        raise OutputError(f"--out {out}: the text part is written beside the HTML as .txt, so "
                          "the HTML needs another name (e.g. preview.html)")
    rendered = render_week(config, week)
    outgoing = prepare(config, rendered, preview=True)
    person = outgoing.personalize(PREVIEW_RECIPIENT)
    html_path = html_path or Path(config.outbox_dir) / f"{rendered.week}.html"
    text_path = html_path.with_suffix(".txt")
    atomic_write(html_path, rendered.html.fill(person.html_values).encode("utf-8"))
    atomic_write(text_path, rendered.text.fill(person.values).encode("utf-8"))
    return html_path, text_path
