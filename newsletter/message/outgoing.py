"""The edition as a send hands it to a transport: sender, subject, content, personalization.

``prepare(config, rendered)`` makes the ``OutgoingEdition`` a send, the dry run, the test send,
the preview and the check use; it satisfies the interface ``model.Outgoing`` declares.
"""

from __future__ import annotations

from ..audience.recipient import Recipient
from ..config import Config
from ..edition.placeholders import FieldTemplate
from ..edition.render import RenderedEdition
from .mime import MessageBuilder
from .model import Personalized, Sender
from .personalize import Personalizer

TEST_PREFIX = "[TEST] "


class OutgoingEdition:
    def __init__(self, sender: Sender, subject: str, rendered: RenderedEdition,
                 personalizer: Personalizer):
        self.sender = sender
        self.subject = subject
        self.week = rendered.week
        self.content_hash = rendered.content_hash
        self.edition_key = f"{rendered.week}.{rendered.content_hash[:12]}"
        self.html: FieldTemplate = rendered.html
        self.text: FieldTemplate = rendered.text
        self._personalizer = personalizer
        self._builder = MessageBuilder(sender, subject, rendered.html, rendered.text)

    @property
    def list_id(self) -> str:
        return self._personalizer.list_id

    def personalize(self, recipient: Recipient) -> Personalized:
        return self._personalizer.personalize(recipient)

    def message(self, person: Personalized, *, dot_stuffed: bool = False) -> bytes:
        return self._builder.build(person, dot_stuffed=dot_stuffed)


def sender_of(config: Config) -> Sender:
    return Sender(config.from_address, config.from_name or config.name, config.reply_to)


def prepare(config: Config, rendered: RenderedEdition, *, test: bool = False,
            preview: bool = False) -> OutgoingEdition:
    """The edition ready to send; ``test`` prefixes the subject and varies Message-IDs;
    ``preview`` (the preview and the dry run) may sign links with the demo key."""
    subject = (TEST_PREFIX if test else "") + rendered.subject
    return OutgoingEdition(sender_of(config), subject, rendered,
                    Personalizer(config, rendered, test=test, preview=preview))
