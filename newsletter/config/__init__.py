"""Configuration: ``newsletter.toml`` plus ``NEWSLETTER_<KEY>`` environment overrides.

The file is found at ``--config PATH``, else ``$NEWSLETTER_CONFIG``, else ``./newsletter.toml``.
Keys are flat. Relative paths (and a relative SQLite database path) resolve against the
config file's folder. Values are checked once, here; each error names the key at fault.
Secrets are never part of an error message or of ``Config.redacted()``.
"""

from .load import find_config_path, load_config
from .model import DEMO_SECRET, SECRET_KEYS, Config, key_fields
from .rules import DNS_NAME

__all__ = ["DEMO_SECRET", "DNS_NAME", "SECRET_KEYS", "Config", "find_config_path", "key_fields",
           "load_config"]
