"""``newsletter web [--host H] [--port P]``: the public web app (``newsletter.web``)."""

from __future__ import annotations

import sys

import click

from .output import setup_logging


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: web_host).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on (default: web_port).")
@click.option("--verbose", "-v", is_flag=True, help="Log debug detail too.")
@click.pass_obj
def web(app, host: str | None, port: int | None, verbose: bool) -> None:
    """Serve unsubscribe, sign-up and confirmation, the archive and webhooks.

    Put it behind a TLS proxy (see the README) and set `trusted_proxies` to the proxy's
    address. SIGTERM or Ctrl-C stops it cleanly.
    """
    from ..store.db import connect
    from ..web.server import check_can_serve, serve

    config = app.config
    check_can_serve(config)  # a one-line error before anything starts
    connect(config.database_url)  # unreachable database: one line now; migrations run quietly
    setup_logging(verbose, config.log_format)
    status = serve(config, host, port)
    if status:
        sys.exit(status)
