"""The edition: a week's folder of Markdown -> ``Edition`` -> rendered once (``RenderedEdition``).

Knows nothing of subscribers: recipient fields stay open as placeholders, filled in later.
"""
