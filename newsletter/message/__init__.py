"""The message: one edition (or confirmation mail) made ready for its recipients.

What every message of a send shares and what a transport is given (``model.py``: the
``Sender``, one recipient's ``Personalized`` part, the ``Outgoing`` interface), the one place
that decides each recipient's values and list headers (``personalize.py``), header fields as
bytes (``headers.py``) and the message bytes (``mime.py``); ``outgoing.prepare`` puts them
together for a send. Below the providers and the delivery loop, above the audience and the
edition: it knows no ledger and no transport.
"""
