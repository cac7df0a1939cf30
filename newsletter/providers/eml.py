"""The ``eml`` provider: each message is written to a folder as an .eml file.

Useful for staging and for the demo: everything the real providers do (batches, ledger,
resume) works the same, and the result can be opened in any mail client. Writing a file
again gives the same file, so it is safe to repeat. A subscriber whose stored address or name
cannot make a message is that recipient's permanent failure, with the reason; the batch goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..audience.recipient import Recipient
from ..errors import HeaderError
from ..files import atomic_write, safe_filename
from ..message.model import Outgoing, Personalized
from .base import Outcome, OutcomeKind, check_batch
from .info import ProviderInfo


def eml_name(recipient: Recipient) -> str:
    return f"{recipient.id:07d}-{safe_filename(recipient.email)}.eml"


class EmlTransport:
    name = "eml"
    max_batch = 1000
    idempotent = True

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)

    async def send_batch(self, outgoing: Outgoing, messages: Sequence[Personalized], *,
                         batch_key: str) -> list[Outcome]:
        check_batch(self, messages)
        results = []
        for person in messages:
            recipient = person.recipient
            path = self.out_dir / eml_name(recipient)
            try:
                message = outgoing.message(person)
            except HeaderError as exc:
                results.append(Outcome(recipient.id, OutcomeKind.FAILED, code="invalid",
                                       reason=str(exc)))
                continue
            atomic_write(path, message)
            results.append(Outcome(recipient.id, OutcomeKind.SENT, message_id=person.message_id,
                                   raw=str(path)))
        return results

    async def aclose(self) -> None:
        return None


INFO = ProviderInfo(
    name="eml", transport=EmlTransport, settings=("outbox_dir",),
    default_endpoint=lambda config: str(Path(config.outbox_dir).resolve()))
