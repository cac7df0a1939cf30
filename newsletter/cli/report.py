"""``newsletter report``: the edition report of a week's send, as HTML or JSON."""

from __future__ import annotations

import click

from .context import AppContext, pass_app, week_option


@click.command("report")
@week_option
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the report to this file (whole or not at all; default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["html", "json"]), default="html",
              show_default=True)
@pass_app
def report(app: AppContext, week: str | None, out: str | None, fmt: str) -> None:
    """What became of the week's send: the delivery funnel, bounces and complaints by
    domain, the list's growth, unsubscribes after each edition, on one page."""
    from ..files import atomic_write
    from ..report.gather import edition_report
    from ..report.render import to_html, to_json

    found = edition_report(app.config, week)
    text = to_json(found) if fmt == "json" else to_html(
        found, name=app.config.name, templates_dir=str(app.config.templates_dir))
    if out is None:
        click.echo(text, nl=False)
        return
    atomic_write(out, text.encode("utf-8"))
    click.echo(f"wrote {out}", err=True)
