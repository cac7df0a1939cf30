"""The command line: ``newsletter ...``. Thin: parse, call the library, print."""

from .main import cli, main

__all__ = ["cli", "main"]
