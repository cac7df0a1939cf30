"""Migration 0004_web upgrades a list with subscribers in it, on both backends: every row kept,
and the web's sign-up, confirmation and unsubscribe work on the upgraded database."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from newsletter.audience import changes, signup
from newsletter.audience.addresses import parse_address
from newsletter.delivery.confirmations import request_confirmation
from newsletter.store import db


def migrate(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    with db.begin_write(engine) as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_the_web_upgrade_keeps_every_subscriber_and_works_at_once(database_url):
    engine = db._engine(db.normalize_url(database_url))
    migrate(engine, "0003_delivery")
    t = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO subscribers (id, email, email_key, name, status, source, attributes, "
            "consented_at, created_at, updated_at) "
            "VALUES (:id, :e, :k, :n, :s, 'import:list.csv', '{}', :t, :t, :t)"),
            [{"id": 1, "e": "Zoe@Bücher.example", "k": "zoe@bücher.example",
              "n": "Zoë “Zo” O’Brien", "s": "active", "t": t},
             {"id": 2, "e": "gone@example.com", "k": "gone@example.com", "n": None,
              "s": "unsubscribed", "t": t}])
    migrate(engine, "0004_web")
    with engine.connect() as conn:
        kept = conn.execute(sa.text(
            "SELECT id, email, name, status, source FROM subscribers ORDER BY id")).all()
        details = conn.execute(sa.text("SELECT count(*) FROM consent_details")).scalar()
        outbox = conn.execute(sa.text("SELECT count(*) FROM confirmations")).scalar()
    assert [tuple(r) for r in kept] == [
        (1, "Zoe@Bücher.example", "Zoë “Zo” O’Brien", "active", "import:list.csv"),
        (2, "gone@example.com", None, "unsubscribed", "import:list.csv")]
    assert details == 0 and outbox == 0
    migrate(engine, "head")  # the code of today writes the later tables too
    now = datetime.now(UTC)
    change = changes.unsubscribe(engine, 1, changes.UnsubscribeMethod.ONE_CLICK,
                                 changes.Consent("192.0.2.1", "Mail/1.0"), now)
    assert change == changes.Change("active", "unsubscribed")
    request_confirmation(engine, parse_address("gone@example.com"), None,
                         changes.Consent("192.0.2.2", "Browser/2"), now)
    assert signup.standing(engine, 2).status == "pending"
    migrate(engine, "0003_delivery", down=True)  # and back, without losing subscribers
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM subscribers")).scalar() == 2
        assert "confirmations" not in sa.inspect(conn).get_table_names()
    db.dispose_engines()
