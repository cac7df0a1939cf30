"""Delivery: the ledger, the send loop and its uses. Each batch is claimed from the ledger,
personalized (``newsletter.message``), sent through a provider, and every recipient's outcome
recorded in the ledger."""
