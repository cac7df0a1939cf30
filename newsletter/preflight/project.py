"""Preflight inputs from this project: render the week and build one message for a made-up
reader, exactly as a send would.

This is the only module of the preflight package that imports the rest of ``newsletter``;
the rules themselves take plain values (see inputs.py).
"""

from __future__ import annotations

from ..audience.recipient import Recipient
from ..config import Config
from ..delivery.outgoing import prepare
from ..edition.render import render_week
from .inputs import CheckInputs, Settings

SAMPLE_READER = Recipient(id=0, email="reader@example.com", name="Sample Reader")


def settings_from(config: Config, *, dkim_selector: str = "") -> Settings:
    return Settings(
        base_url=config.base_url,
        from_address=config.from_address,
        reply_to=config.reply_to,
        postal_address=config.postal_address,
        unsubscribe_mailto=config.unsubscribe_mailto,
        dkim_selector=dkim_selector,
    )


def build_inputs(config: Config, week: str | None = None, *, dkim_selector: str = "",
                 reader: Recipient = SAMPLE_READER) -> CheckInputs:
    """The week's edition (default: the current week) as ``reader`` would get it."""
    rendered = render_week(config, week)
    outgoing = prepare(config, rendered)
    person = outgoing.personalize(reader)
    return CheckInputs(
        html=rendered.html.fill(person.html_values),
        text=rendered.text.fill(person.values),
        subject=outgoing.subject,
        preheader=rendered.preheader,
        message=outgoing.message(person),
        settings=settings_from(config, dkim_selector=dkim_selector),
        label=f"{rendered.week}: {rendered.subject}",
    )
