"""``newsletter db upgrade``: apply schema migrations (also done automatically on first use)."""

from __future__ import annotations

import click


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_obj
def upgrade_command(app) -> None:
    """Apply pending schema migrations (also done automatically on first use)."""
    from ..store.db import safe_url, upgrade_database

    url = app.config.database_url
    before, after = upgrade_database(url)
    if before == after:
        click.echo(f"database {safe_url(url)} is up to date (revision {after})")
    else:
        click.echo(f"database {safe_url(url)} upgraded from {before or 'empty'} to {after}")
