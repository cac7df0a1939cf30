"""The ``newsletter`` command group: global options, one-line errors, the subcommands.

Heavy modules (Jinja2, MJML, SQLAlchemy) are imported inside the commands that use them, so
``newsletter subscribers count`` starts fast.
"""

from __future__ import annotations

import sys

import click

from ..errors import NewsletterError
from .context import AppContext


class _Group(click.Group):
    """A group that turns every NewsletterError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


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


def _register_subcommands() -> None:
    from .db import db
    from .send import preview, send, status
    from .subscribers import subscribers
    from .worker import worker

    for command in (preview, send, status, subscribers, db, worker):
        cli.add_command(command)


_register_subcommands()


def main() -> None:
    cli.main(prog_name="newsletter")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
