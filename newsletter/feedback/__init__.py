"""Hearing back from providers and mailboxes: verified webhooks and mail reports as Events.

``events`` holds the one vocabulary (``EventKind``, ``Event``) and the errors; ``webhooks``
verifies and parses each provider's webhook; ``dsn``, ``arf`` and ``mailto`` read delivery
status notifications, complaint reports and mailto unsubscribe requests; ``mailbox`` polls an
IMAP folder for them. Everything here is parsing and verification: storing events and acting
on them belongs to the code that calls it.
"""
