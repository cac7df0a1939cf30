"""What every command gets: the config, loaded on first use, and the shared ``--week`` option."""

from __future__ import annotations

import click


class AppContext:
    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config = None

    @property
    def config(self):
        if self._config is None:
            from ..config import load_config

            self._config = load_config(self.config_path)
        return self._config


pass_app = click.make_pass_decorator(AppContext)


def week_option(f):
    return click.option(
        "--week", default=None, metavar="YYYY-Www", help="ISO week (default: the current week)."
    )(f)
