"""Migration 0003_delivery upgrades a ledger with data in it, on both backends: every send,
delivery row and sender kept, an unknown batch still repeatable under its key."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from newsletter.store import db


def upgrade_to(engine: sa.Engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    with db.begin_write(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_the_ledger_upgrade_keeps_every_row(database_url):
    url = db.normalize_url(database_url)
    engine = db._engine(url)
    upgrade_to(engine, "0002_ledger")
    t = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO subscribers (id, email, email_key, name, status, source, attributes, "
            "created_at, updated_at) VALUES (:id, :e, :e, :n, 'active', 'cli', '{}', :t, :t)"),
            [{"id": i, "e": f"r{i}@bücher.example", "n": f"Zoë {i}", "t": t}
             for i in (1, 2, 3)])
        conn.execute(sa.text(
            "INSERT INTO sends (id, week, content_hash, subject, provider, status, total, "
            "created_at, updated_at) VALUES (7, '2026-W47', :h, 'Subject ’quoted’', 'resend', "
            "'sending', 3, :t, :t)"), {"h": "a" * 64, "t": t})
        conn.execute(sa.text(
            "INSERT INTO deliveries (send_id, subscriber_id, status, attempts, batch_key, "
            "message_id, updated_at) VALUES (7, :s, :st, 1, :k, :m, :t)"),
            [{"s": 1, "st": "sent", "k": "k1", "m": "re-1", "t": t},
             {"s": 2, "st": "unknown", "k": "k2", "m": None, "t": t},
             {"s": 3, "st": "unknown", "k": "k2", "m": None, "t": t}])
        conn.execute(sa.text(
            "INSERT INTO send_workers (id, send_id, hostname, pid, started_at, heartbeat_at) "
            "VALUES ('w', 7, 'h', 1, :t, :t)"), {"t": t})
    upgrade_to(engine, "0003_delivery")
    with engine.connect() as conn:
        deliveries = conn.execute(sa.text(
            "SELECT subscriber_id, status, batch_key, message_id FROM deliveries "
            "ORDER BY subscriber_id")).all()
        send = conn.execute(sa.text("SELECT week, status, subject, provider, endpoint "
                                    "FROM sends")).one()
        workers = conn.execute(sa.text("SELECT count(*) FROM send_workers")).scalar()
        batch = conn.execute(sa.text("SELECT key, send_id, members FROM batches")).one()
    assert [tuple(r) for r in deliveries] == [(1, "sent", "k1", "re-1"),
                                              (2, "unknown", "k2", None),
                                              (3, "unknown", "k2", None)]
    assert tuple(send) == ("2026-W47", "sending", "Subject ’quoted’", "resend", None)
    assert workers == 1
    assert batch.key == "k2" and batch.send_id == 7
    members = batch.members if isinstance(batch.members, list) else json.loads(batch.members)
    assert [m["id"] for m in members] == [2, 3] and members[1]["name"] == "Zoë 3"
    # The rest of the way, and the schema matches tables.py (tests/test_db.py checks that).
    upgrade_to(engine, "head")
    db.dispose_engines()
