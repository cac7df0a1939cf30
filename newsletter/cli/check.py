"""``newsletter check``: the preflight report on a week's edition, and the refresh of the
email-client data it holds the HTML against."""

from __future__ import annotations

import click

from .context import AppContext, pass_app, week_option


@click.command()
@week_option
@click.option("--dns", is_flag=True,
              help="Also look up the From domain's SPF, DKIM, DMARC and MX records.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="A report for people, or JSON for scripts.")
@click.option("--client-data", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="caniemail feature data to use (default: ./caniemail.json beside the "
                   "config if present, else the copy shipped with newsletter).")
@click.option("--refresh-client-data", is_flag=True,
              help="Download caniemail's current feature data (to --to) and exit.")
@click.option("--to", "dest", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="With --refresh-client-data: where to write (default: caniemail.json "
                   "beside the config, which check then reads).")
@click.option("--source", default=None, metavar="URL",
              help="With --refresh-client-data: a mirror of caniemail's data.json "
                   "(default: https://www.caniemail.com/api/data.json).")
@pass_app
def check(app: AppContext, week: str | None, dns: bool, fmt: str, client_data: str | None,
          refresh_client_data: bool, dest: str | None, source: str | None) -> None:
    """Check the week's edition before it goes out: size, links, images, email-client
    support, headers, spam score (SpamAssassin, if installed) and, with --dns, the sending
    domain. Exit status 1 if anything is an error; `newsletter send` runs the same checks."""
    if refresh_client_data:
        if week or dns or client_data:
            raise click.UsageError("--refresh-client-data goes with --to only")
        _refresh(app, dest, source)
        return
    if dest or source:
        raise click.UsageError("--to and --source go with --refresh-client-data")
    from pathlib import Path

    from ..preflight import to_json, to_text
    from ..preflight.project import check_week, check_week_hashed

    if dns or client_data:
        report = check_week(app.config, week, dns=dns,
                            client_data=Path(client_data) if client_data else None)
    else:  # as a send checks: the send that follows reuses the verdict
        from ..edition.content import resolve_week
        from ..preflight.verdicts import remember_check

        week = resolve_week(week, app.config.timezone)
        report, content_hash = check_week_hashed(app.config, week)
        remember_check(app.config, week, content_hash, report)
    click.echo(to_json(report) if fmt == "json" else to_text(report), nl=False)
    if not report.ok:
        click.get_current_context().exit(report.exit_code)


def _refresh(app: AppContext, dest: str | None, source: str | None) -> None:
    from pathlib import Path

    from ..preflight import caniemail
    from ..preflight.project import client_data_file

    path = Path(dest) if dest else client_data_file(app.config)
    catalog = caniemail.refresh(path, url=source or caniemail.SOURCE_URL)
    click.echo(f"wrote {path}: caniemail data of {catalog.updated}")
