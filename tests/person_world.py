"""A world in which one person has left traces everywhere the project writes: what the erasure
and the personal export tests share.

Zoë Ångström signs up on the web (consent record, status history, a confirmation mail in the
outbox) and confirms (a welcome mail queued, not yet sent); so does another reader, Åsa. Then a
dry run into the outbox and one into a folder of its own (``--out``), the week's send with the
eml provider, webhook events about Zoë (one matched to her message, one unmatched that names
her address), a Resend batch whose answer was lost (its members kept for a repeat) and a send
whose failure quotes her address. Her address has an internationalized domain and is written in
several forms.
"""

from __future__ import annotations

import base64
import email
import html
import json
from dataclasses import dataclass
from email import policy
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.delivery import ledger
from newsletter.delivery.confirmations import drain_outbox
from newsletter.delivery.dry_run import dry_run
from newsletter.store.tables import subscribers
from tests import ledger_helpers
from tests.sending import WEEK, send
from tests.web_helpers import (
    Clock,
    confirm_link,
    field,
    make_app,
    open_site,
    path_of,
    read_eml,
    sign_up,
    web_client,
)

NAME = "Zoë Ångström"
TYPED = "Zoe.Angstrom@EXÄMPLE.de"  # as she typed it into the form
KEY = "zoe.angstrom@exämple.de"
ASCII = "zoe.angstrom@xn--exmple-cua.de"  # what mail is sent to (IDNA 2008)
OTHER_NAME = "Åsa Öberg-Niémi"
OTHER = "asa@bücher.example"
CREDENTIALS = "postmark:pässwörd-“2026”"
# What must not be left anywhere: the address in every spelling, the name and its parts. The
# part before the @ alone is enough for the address (it is in every form of it).
NEEDLES = ("zoe.angstrom", "exämple", NAME, "Ångström", "Zoë Å")


@dataclass
class World:
    project: Path
    config: object
    engine: sa.Engine
    clock: Clock
    elsewhere: Path   # a dry run's --out folder outside the outbox
    person_id: int
    other_id: int
    sends: dict[str, int]  # week -> send id

    def post_webhook(self, payload: dict) -> None:
        client = web_client(make_app(self.config, self.clock, engine=self.engine))
        pair = base64.b64encode(CREDENTIALS.encode()).decode()
        answer = client.post("/webhooks/postmark", content=json.dumps(payload).encode(),
                             headers={"Authorization": f"Basic {pair}"})
        assert answer.status_code == 200, answer.text

    def subscribers_cli(self, *args: str):
        """`newsletter subscribers ...` as the operator runs it on this world's project (never
        a traceback, whatever it answers)."""
        env = {"NEWSLETTER_DATABASE_URL": self.config.database_url,
               "NEWSLETTER_OUTBOX_DIR": str(self.project / "outbox"),
               "NEWSLETTER_SECRET_KEY": "s" * 32}
        result = CliRunner().invoke(cli, ["subscribers", *args], env=env)
        assert "Traceback" not in result.output
        return result


def build(project: Path, database_url: str, tmp_path: Path) -> World:
    config, engine, clock, app = open_site(project, database_url,
                                           postmark_webhook_auth=CREDENTIALS,
                                           from_address="news@example.org")
    client = web_client(app, follow_redirects=False)
    for address, name in ((TYPED, NAME), (OTHER, OTHER_NAME)):
        assert sign_up(client, clock, address, name=name).status_code == 200
        clock.advance(seconds=5)
    assert drain_outbox(config, engine, clock=clock) == 2
    for mail in (project / "outbox" / "confirmations").glob("*.eml"):
        link = path_of(confirm_link(read_eml(mail)))
        page = client.get(link)
        clock.advance(minutes=1)
        done = client.post(link, data={"action": "confirm", "csrf": field(page.text, "csrf")})
        assert done.status_code == 200, done.text
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.select(subscribers.c.email_key, subscribers.c.id)).all())
    elsewhere = tmp_path / "elsewhere"
    dry_run(config, WEEK, None)
    dry_run(config, WEEK, str(elsewhere))
    assert send(config).counts == {"sent": 2}
    world = World(project, config, engine, clock, elsewhere, ids[KEY], ids[OTHER],
                  {WEEK: _send_id(engine, WEEK)})
    _webhooks(world)
    world.sends["2026-W48"] = _lost_resend_batch(world)
    world.sends["2026-W49"] = _quoted_failure(world)
    return world


def _send_id(engine: sa.Engine, week: str) -> int:
    return ledger.sends_of_week(engine, week)[-1].id


def message_id_of(world: World, subscriber_id: int) -> str:
    with world.engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT message_id FROM deliveries WHERE send_id = :s AND subscriber_id = :i"),
            {"s": world.sends[WEEK], "i": subscriber_id}).scalar_one()


# The payloads as Postmark documents them (delivery-webhook and bounce-webhook pages).
def delivered(message_id: str, recipient: str) -> dict:
    return {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
            "MessageID": message_id, "Recipient": recipient, "Tag": "",
            "DeliveredAt": "2026-11-23T08:31:02Z",
            "Details": f"smtp;250 2.0.0 OK: queued for {recipient}", "Metadata": {}}


def bounced(bounce_id: int, address: str, details: str) -> dict:
    return {"RecordType": "Bounce", "ID": bounce_id, "Type": "HardBounce", "TypeCode": 1,
            "ServerID": 23, "Name": "Hard bounce", "MessageStream": "outbound",
            "MessageID": f"9f1c2b7e-0000-4000-8000-{bounce_id:012d}",  # not one of ours
            "Description": "The server was unable to deliver your message.",
            "Details": details, "Email": address, "From": "news@example.org",
            "BouncedAt": "2026-11-23T08:35:00Z", "Inactive": True, "Subject": "Five Things"}


def _webhooks(world: World) -> None:
    world.post_webhook(delivered(message_id_of(world, world.person_id), ASCII))
    world.post_webhook(delivered(message_id_of(world, world.other_id), OTHER))
    world.post_webhook(bounced(1, ASCII.upper(), f"smtp;550 5.1.1 <{KEY}> ({NAME}): mailbox "
                                                 "unavailable"))


def _lost_resend_batch(world: World) -> int:
    """A Resend send whose one batch was accepted, its answer lost: members kept for a repeat."""
    record, _ = ledger.open_send(world.engine, "2026-W48", "c" * 64, "Five Things", "resend")
    worker = ledger_helpers.register_worker(world.engine, record.id)
    claim = ledger.claim(world.engine, record.id, worker, 10, keep_members=True)
    ledger.record(world.engine, record.id, worker, claim,
                  [ledger.Outcome(r.id, "unknown", reason="timeout") for r in claim.recipients],
                  max_attempts=5, retry_delay=0, repeats=ledger.Repeats(5))
    ledger_helpers.unregister_worker(world.engine, worker)
    return record.id


def _quoted_failure(world: World) -> int:
    """An SMTP send whose refusal quotes the address and name, as servers' answers do."""
    record, _ = ledger.open_send(world.engine, "2026-W49", "d" * 64, "Five Things", "smtp")
    worker = ledger_helpers.register_worker(world.engine, record.id)
    claim = ledger.claim(world.engine, record.id, worker, 10, keep_members=False)
    ledger.record(world.engine, record.id, worker, claim, [
        ledger.Outcome(world.person_id, "failed", code="550",
                       reason=f"550 5.7.1 <{ASCII}> “{NAME}”: relaying denied"),
        ledger.Outcome(world.other_id, "failed", code="550",
                       reason=f"550 5.7.1 <{OTHER}>: relaying denied"),
    ], max_attempts=5, retry_delay=0)
    ledger_helpers.unregister_worker(world.engine, worker)
    return record.id


# -- looking for traces ----------------------------------------------------------------------


def database_dump(database_url: str, engine: sa.Engine) -> str:
    """Every row of every table as text: SQLite's iterdump, PostgreSQL's row-to-text."""
    if engine.dialect.name == "sqlite":
        import sqlite3

        with sqlite3.connect(engine.url.database) as conn:
            return "\n".join(conn.iterdump())
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        return "\n".join(text for name in names for text in conn.execute(
            sa.text(f'SELECT CAST(t AS text) FROM "{name}" AS t')).scalars())


def spellings(text: str) -> list[str]:
    """A text as it may be read: as it is, JSON-unescaped, HTML-unescaped."""
    out = [text, html.unescape(text)]
    out.append(text.encode("latin-1", "backslashreplace").decode("unicode_escape", "replace"))
    return out


def found_in(text: str, needles=NEEDLES) -> list[str]:
    """The needles in any spelling of ``text``, case-insensitively."""
    folded = [s.casefold() for s in spellings(text)]
    return [n for n in needles if any(n.casefold() in s for s in folded)]


def file_texts(path: Path) -> list[str]:
    """A file's bytes as text, and, for a message, its decoded headers and parts."""
    data = path.read_bytes()
    texts = [data.decode("utf-8", "replace")]
    if path.suffix == ".eml":
        message = email.message_from_bytes(data, policy=policy.default)
        texts += [str(v) for _, v in message.items()]
        texts += [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
    return texts


def files_under(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders if folder.exists() for p in folder.rglob("*")
                  if p.is_file())


def addressed_to(path: Path, address: str) -> bool:
    """Whether a message file's To header is ``address``, in any case (read by the stdlib's
    parser)."""
    if path.suffix != ".eml":
        return False
    message = read_eml(path)
    return [a.addr_spec.lower() for a in message["To"].addresses] == [address.lower()]
