"""Hearing back from providers and mailboxes: verified events, one log, their effects.

``events`` holds the one vocabulary (``EventKind``, ``Event``) and the errors; ``webhooks``
verifies and parses each provider's webhook; ``dsn``, ``arf`` and ``mailto`` read delivery
status notifications, complaint reports and mailto unsubscribe requests; ``mailbox`` polls an
IMAP folder for them. ``intake`` takes verified events in: ``matching`` puts each on its
subscriber and send, ``store`` keeps it once in the event log, ``effects`` changes the
subscriber through the audience package. ``report`` and ``listing`` read the log back;
``mailbox_job`` is one poll of the configured mailbox.
"""
