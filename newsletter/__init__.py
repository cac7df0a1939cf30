"""Deliver a weekly email newsletter kept in git."""

__version__ = "0.1.0"
