"""The audience: addresses, the subscriber list and its consent records, CSV import and export,
signed tokens."""
