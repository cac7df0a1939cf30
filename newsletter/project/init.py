"""``newsletter init``: a new newsletter project in a folder, ready for ``newsletter preview``.

It writes ``newsletter.toml`` (every key, commented), this week's folder with a sample
edition, ``templates/`` (a copy of the package's, to customize; or none, to keep the
defaults), ``subscribers/`` and a ``.gitignore`` for what must stay out of git. Nothing that
exists is ever overwritten: the project is assembled in a staging folder and moved into
place only when complete, and a name that is taken stops it before anything is written.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from ..edition.templates import package_templates
from ..errors import NewsletterError
from ..files import make_folder, write_error
from ..text import has_control
from .config_file import render_config
from .sample import SAMPLE
from .week_files import week_files

GITIGNORE = """\
# Local state of `newsletter`, kept out of git.
/outbox/
subscribers/*.db
subscribers/*.db-*
# Subscriber lists are personal data: import them, do not commit them.
subscribers/*.csv
# Secrets (NEWSLETTER_SECRET_KEY, provider keys) go in .env or the environment.
.env
"""

SUBSCRIBERS_README = """\
# subscribers/

The SQLite database (`newsletter.db`) lives here, and this is a good place for the CSV files
you import with `newsletter subscribers import FILE.csv`. Both hold personal data, so
`.gitignore` keeps them out of git.
"""


# A reserved domain (RFC 2606): previews and dry runs work at once, and no provider sends
# from it, so a real send stops until it is replaced.
PLACEHOLDER_SENDER = "editors@example.com"


class ProjectExists(NewsletterError):
    pass


def project_files(name: str, week: str, *, templates: bool) -> dict[str, str | Path]:
    """Relative path -> text (or a package file to copy) for a new project."""
    files: dict[str, str | Path] = {
        "newsletter.toml": render_config({"name": name, "from_address": PLACEHOLDER_SENDER}),
        ".gitignore": GITIGNORE,
        "subscribers/README.md": SUBSCRIBERS_README,
    }
    for file_name, text in week_files(SAMPLE).items():
        files[f"items/{week}/{file_name}"] = text
    if templates:
        root = package_templates()
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[f"templates/{path.relative_to(root).as_posix()}"] = path
    return files


def check_name(name: str) -> str:
    name = name.strip()
    if not name or has_control(name):
        raise NewsletterError(f"--name {name!r}: the newsletter's name must be one line of "
                              "text, not empty")
    return name


def create_project(directory: Path, name: str, week: str, *, templates: bool = True
                   ) -> list[str]:
    """Write a new project into ``directory`` (created if needed); the top-level names made."""
    directory = Path(directory).absolute()
    if directory.exists() and not directory.is_dir():
        raise ProjectExists(f"{directory} is a file; give a folder to create the project in")
    files = project_files(check_name(name), week, templates=templates)
    tops = sorted({rel.split("/", 1)[0] for rel in files})
    taken = [directory / top for top in tops if os.path.lexists(directory / top)]
    if taken:
        raise ProjectExists(f"{taken[0]} exists; init never overwrites anything (init into "
                            "a new or empty folder)")
    make_folder(directory.parent)
    staging = directory.parent / f".{directory.name}.init-{secrets.token_hex(4)}"
    try:
        _fill(staging, files)
        _move_in(staging, directory, tops)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tops


def _fill(staging: Path, files: dict[str, str | Path]) -> None:
    for rel, content in files.items():
        path = staging / rel
        make_folder(path.parent)
        try:
            if isinstance(content, Path):
                shutil.copyfile(content, path)
            else:
                path.write_text(content, encoding="utf-8", newline="\n")
        except OSError as exc:
            raise write_error(path, exc) from None


def _move_in(staging: Path, directory: Path, tops: list[str]) -> None:
    """Into a new folder: one rename. Into an existing one: a rename per top-level name,
    undone if one fails, so the folder ends as it was or complete."""
    if not directory.exists():
        try:
            os.rename(staging, directory)
        except OSError as exc:
            raise write_error(directory, exc) from None
        return
    moved: list[str] = []
    try:
        for top in tops:
            if os.path.lexists(directory / top):
                raise ProjectExists(f"{directory / top} appeared while init ran; nothing "
                                    "was written")
            os.rename(staging / top, directory / top)
            moved.append(top)
    except (OSError, ProjectExists) as exc:
        for top in reversed(moved):
            os.rename(directory / top, staging / top)
        if isinstance(exc, OSError):
            raise write_error(directory / top, exc) from None
        raise
