"""``newsletter web``: the app under uvicorn (one process), and the rules for starting it.

It refuses to start with the demo secret (anyone could forge unsubscribe and confirmation
links) or with a ``base_url`` that is not ``https://`` (links in mail would go out in clear
text, and RFC 8058 requires HTTPS); plain ``http://`` is accepted for ``localhost`` and
loopback addresses, for trying it out. SIGTERM or Ctrl-C stops it cleanly: requests in
flight finish, the confirmation sender stops between mails (an unsent one stays in the
outbox for the next start), then the process exits 0.

The protocol under the app is uvicorn's httptools one with deadlines for a request's head and
body and a bound on connections held at once (``web.protocol``), fitted to ``ulimit -n``.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..config import DEMO_SECRET, Config
from ..errors import ConfigError

if TYPE_CHECKING:
    from .protocol import Limits

log = logging.getLogger("newsletter.web")

SHUTDOWN_GRACE = 10  # seconds requests in flight get to finish after SIGTERM


def check_can_serve(config: Config) -> None:
    """Raise ConfigError naming the key when this config must not face the public."""
    config.require("base_url", "from_address")
    if not config.secret_key or config.secret_key == DEMO_SECRET:
        raise ConfigError(
            "config key 'secret_key' must be set (NEWSLETTER_SECRET_KEY) to run the web app: "
            "it signs every unsubscribe and confirmation link, and the demo key is public")
    parts = urlsplit(config.base_url)
    if parts.scheme != "https" and not _loopback(parts.hostname or ""):
        raise ConfigError(
            f"config key 'base_url' must start with https:// for the web app, got "
            f"{config.base_url!r} (plain http only for localhost)")


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: Config, host: str | None = None, port: int | None = None, *,
          limits: Limits | None = None) -> int:
    """Run until stopped; the exit status (0 after a clean stop). ``limits`` (the defaults
    unless given) is lowered to fit the descriptor limit."""
    import uvicorn

    from .app import create_app
    from .protocol import Limits, budget, protocol_class

    check_can_serve(config)
    app = create_app(config)
    host = host or config.web_host
    port = port or config.web_port
    limits, backlog = budget(limits or Limits())
    server = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, workers=1, lifespan="on",
        http=protocol_class(limits), backlog=backlog,
        log_config=None,         # our one-line format (cli.output.setup_logging)
        access_log=False,        # web.access_log logs each request, without its token
        proxy_headers=False,     # only trusted_proxies may set the client (web.security)
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    ))
    log.info("web: serving %s on http://%s:%d (at most %d connections held)",
             config.base_url, host, port, limits.max_connections)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again against the
    # handler it found: with this one in place, that ends the run here, as a clean exit 0,
    # instead of killing the process after the shutdown it just completed.
    previous = {sig: signal.signal(sig, _noted) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("web: stopped")
    return 0 if server.started else 1


def _noted(signum: int, frame) -> None:
    """The signal uvicorn raises again once it has shut down: nothing is left to do."""
