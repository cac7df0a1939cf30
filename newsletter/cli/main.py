"""The ``newsletter`` command group: global options, one-line errors, the subcommands.

Heavy modules (Jinja2, MJML, SQLAlchemy) are imported inside the commands that use them, so
``newsletter subscribers count`` starts fast.
"""

from __future__ import annotations

import click

from ..errors import NewsletterError
from .context import AppContext
from .output import error_line


class _Group(click.Group):
    """A group that turns every NewsletterError into one line on stderr and exit status 1;
    so too an OSError (a full disk, a folder that cannot be written), naming the file."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            error_line(str(exc))
            ctx.exit(1)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            error_line(f"{where}{exc.strerror or exc}; nothing was changed by the step that "
                       "failed")
            ctx.exit(1)


@click.group(cls=_Group)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Path to newsletter.toml (default: $NEWSLETTER_CONFIG, then ./newsletter.toml).",
)
@click.option("--verbose", "-v", is_flag=True,
              help="Show informational and debug lines too (e.g. database migrations).")
@click.version_option(package_name="newsletter")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Deliver a weekly email newsletter kept in git."""
    from .output import setup_cli_output

    setup_cli_output(verbose)
    ctx.obj = AppContext(config_path)


def _register_subcommands() -> None:
    from .check import check
    from .db import db
    from .events import register as register_feedback
    from .project import COMMANDS as project_commands
    from .report import report
    from .send import preview, send, status
    from .subscribers import subscribers
    from .web import web
    from .worker import worker

    for command in (preview, send, status, report, subscribers, db, worker, web, check):
        cli.add_command(command)
    register_feedback(cli)
    for command in project_commands:
        cli.add_command(command)


_register_subcommands()


def main() -> None:
    cli.main(prog_name="newsletter")


if __name__ == "__main__":  # pragma: no cover
    main()  # click exits with the command's status
