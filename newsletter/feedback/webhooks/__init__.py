"""Provider webhooks: one module per provider, each with a pure ``verify`` and ``parse``.

``verify`` looks at the raw body bytes and the headers before anything is parsed and raises
``WebhookRejected`` (4xx) when the request is not provably the provider's; ``parse`` turns a
verified body into ``Event`` values. ``inbound.Inbound`` puts the two together for the web app.
SES is the exception to "pure": its certificate comes from a URL (``sns.Certificates``).
"""
