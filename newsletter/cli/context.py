"""What every command gets: the config, loaded on first use, and the shared ``--week`` option.

A command that needs the project (everything but ``--help`` and ``--version``) stops with one
line when there is no config file to say where the project is: it would otherwise create
``./subscribers/newsletter.db`` in whatever folder it ran in. Environment-only configuration
(``NEWSLETTER_DATABASE_URL`` and friends, as in a container) is fine.
"""

from __future__ import annotations

import logging
import os

import click

log = logging.getLogger("newsletter.config")


class AppContext:
    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config = None

    @property
    def loaded(self) -> bool:
        """Whether the config has been loaded (without loading it)."""
        return self._config is not None

    @property
    def config(self):
        if self._config is None:
            from ..config import find_config_path, load_config
            from ..errors import ConfigError

            if find_config_path(self.config_path) is None and not os.environ.get(
                    "NEWSLETTER_DATABASE_URL"):
                raise ConfigError(f"no newsletter.toml in {os.getcwd()} (give one with "
                                  "--config PATH or NEWSLETTER_CONFIG)")
            self._config = load_config(self.config_path)
            for warning in self._config.warnings:
                log.warning(warning)
        return self._config


pass_app = click.make_pass_decorator(AppContext)


def week_option(f):
    return click.option(
        "--week", default=None, metavar="YYYY-Www", help="ISO week (default: the current week)."
    )(f)
