"""Delivery: personalize the rendered edition per recipient, build messages, send through a
provider in batches, and record every recipient's outcome in the ledger."""
