"""Tools for trying configurations and for tests: the fake provider."""
