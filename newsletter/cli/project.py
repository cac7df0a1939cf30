"""``newsletter init``, ``new`` and ``schema items``: a project of your own, and its weeks."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .context import AppContext, pass_app

DEFAULT_ITEMS = 5


@click.command()
@click.argument("directory", required=False, default=".",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None,
              help="The newsletter's name (default: the folder's name).")
@click.option("--no-templates", is_flag=True,
              help="Do not copy the templates: the package's defaults are used.")
def init(directory: Path, name: str | None, no_templates: bool) -> None:
    """Create a newsletter project in DIRECTORY (default: here); never overwrites anything."""
    from ..edition.content import current_week
    from ..project.init import create_project

    directory = directory.absolute()
    week = current_week("UTC")  # the new config's timezone
    create_project(directory, name or directory.name, week, templates=not no_templates)
    here = Path.cwd()
    shown = directory.relative_to(here) if directory.is_relative_to(here) else directory
    click.echo(f"created the newsletter project in {shown}")
    steps = [] if shown == Path(".") else [f"cd {shown}"]
    steps += [f"newsletter preview          # renders items/{week}/ into outbox/",
              "newsletter new              # next week's folder, to fill in"]
    click.echo("next:\n" + "\n".join(f"  {step}" for step in steps))


@click.command()
@click.option("--week", default=None, metavar="YYYY-Www",
              help="The week to write (default: the next scheduled send's week, or the "
                   "first after it with no folder).")
@click.option("--items", "count", type=click.IntRange(1, 99), default=None, metavar="N",
              help=f"Item stubs to write (default {DEFAULT_ITEMS}).")
@click.option("--from", "source", default=None, metavar="FILE.json",
              help="Write the week from JSON (`-`: standard input); see `newsletter schema "
                   "items`.")
@click.option("--force", is_flag=True,
              help="Replace the week's folder if it exists (never once the week was sent).")
@pass_app
def new(app: AppContext, week: str | None, count: int | None, source: str | None,
        force: bool) -> None:
    """Write a week's folder: numbered stubs to fill in, or a whole edition from JSON."""
    from ..project import weeks
    from ..project.week_folder import write_week

    if source is not None and count is not None:
        raise click.UsageError("--items goes without --from (the JSON has the items)")
    config = app.config
    data = _read_json(source) if source is not None else None
    sent = weeks.sent_checker(config)
    week = weeks.target_week(config, week, data.week if data else "", sent)
    if data is None:
        from ..project.stubs import stub_files

        files = stub_files(count or DEFAULT_ITEMS)
    else:
        from ..project.week_files import week_files

        files = week_files(data)
    folder = write_week(config.items_dir, week, files, force=force, sent=sent,
                        verify=data is not None)
    if data is None:
        click.echo(f"wrote {folder}: edition.md and {len(files) - 1} item stubs; fill them "
                   f"in, then `newsletter preview --week {week}`")
    else:
        click.echo(f"wrote {folder}: {len(files) - 1} items; see it with "
                   f"`newsletter preview --week {week}`")


def _read_json(source: str):
    from ..errors import ContentError
    from ..project.items_json import ItemsError, parse_items

    name = "<stdin>" if source == "-" else source
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise ContentError(f"cannot read {name}: {exc.strerror}") from None
    try:
        return parse_items(raw, name)
    except ItemsError as exc:
        for problem in exc.problems:
            click.echo(f"error: {name}: {problem}", err=True)
        click.echo(f"error: {name}: not a valid week ({len(exc.problems)} problem(s)); nothing "
                   "was written", err=True)
        sys.exit(1)


@click.group()
def schema() -> None:
    """Print the JSON Schemas of the data `newsletter` reads."""


@schema.command("items")
def schema_items() -> None:
    """The JSON Schema (draft 2020-12) of `newsletter new --from FILE.json`."""
    from ..project.items_json import schema_text

    click.echo(schema_text(), nl=False)


COMMANDS = (init, new, schema)
