"""The command line. Thin: it parses, calls the library, prints.

Heavy modules (Jinja2, MJML, SQLAlchemy) are imported inside the commands that use them, so
``newsletter subscribers count`` starts fast.
"""

from __future__ import annotations

import sys

import click

from .errors import NewsletterError


class _Group(click.Group):
    """A group that turns every NewsletterError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


class AppContext:
    """What every command gets: the config, loaded on first use."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config = None

    @property
    def config(self):
        if self._config is None:
            from .config import load_config

            self._config = load_config(self.config_path)
        return self._config


pass_app = click.make_pass_decorator(AppContext)


@click.group(cls=_Group)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Path to newsletter.toml (default: $NEWSLETTER_CONFIG, then ./newsletter.toml).",
)
@click.version_option(package_name="newsletter")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Deliver a weekly email newsletter kept in git."""
    ctx.obj = AppContext(config_path)


def _week_option(f):
    return click.option(
        "--week", default=None, metavar="YYYY-Www", help="ISO week (default: the current week)."
    )(f)


@cli.command()
@_week_option
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the HTML (default: <outbox_dir>/<week>.html).")
@pass_app
def preview(app: AppContext, week: str | None, out: str | None) -> None:
    """Render the week's edition to an HTML file, with the text part beside it."""
    from .commands import preview_edition

    html_path, text_path = preview_edition(app.config, week, out)
    click.echo(f"wrote {html_path} and {text_path}")


@cli.command()
@_week_option
@click.option("--dry-run", is_flag=True, help="Write one .eml per recipient instead of sending.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="With --dry-run: the folder for the .eml files (default: <outbox_dir>/<week>).")
@click.option("--test", "test", is_flag=True,
              help="Send only to the --to addresses, subject prefixed [TEST]; records nothing.")
@click.option("--to", "to", multiple=True, metavar="EMAIL", help="With --test: a recipient.")
@pass_app
def send(app: AppContext, week: str | None, dry_run: bool, out: str | None, test: bool,
         to: tuple[str, ...]) -> None:
    """Send the week's edition to every active subscriber."""
    from . import commands

    if test:
        if not to:
            raise click.UsageError("--test needs at least one --to EMAIL")
        if dry_run:
            raise click.UsageError("--test and --dry-run do not go together")
        failed = 0
        for outcome in commands.test_send(app.config, week, to):
            detail = outcome.message_id if outcome.status == "sent" else outcome.reason
            click.echo(f"{outcome.status:<8} {outcome.email}  {detail}")
            failed += outcome.status != "sent"
        if failed:
            raise NewsletterError(f"{failed} test message(s) not sent")
        return
    if to:
        raise click.UsageError("--to goes with --test")
    if not dry_run:
        raise NewsletterError(
            "sending through a provider is not available yet; use --dry-run --out DIR"
        )
    result = commands.dry_run_send(app.config, week, out)
    click.echo(f"wrote {result.count} message(s) to {result.out_dir}")


def _register_subcommands() -> None:
    from .cli_subscribers import db, subscribers

    cli.add_command(subscribers)
    cli.add_command(db)


_register_subcommands()


def main() -> None:
    cli.main(prog_name="newsletter")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
