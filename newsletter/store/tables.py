"""The database schema as SQLAlchemy Core tables.

These describe the *current* schema for queries. Changes to the schema are made by a new Alembic
migration in ``newsletter/store/migrations/versions/`` (which spells out its own DDL, so old
migrations never change when this file does); then this file is updated to match.
``tests/test_db.py`` checks that the migrated database and these tables agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from ..audience.model import STATUSES
from ..delivery.states import DELIVERY_STATUSES, SEND_STATUSES

# Stable constraint names, so later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class UTCDateTime(sa.TypeDecorator):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as naive
    UTC and given its ``tzinfo`` back on the way out. Naive datetimes are refused on the way in:
    they are always a bug here.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONType(sa.TypeDecorator):
    """JSON: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.

    Not ``JSON().with_variant(JSONB(), ...)``: that imports the PostgreSQL dialect on every
    start, which the SQLite CLI's cold start does not need.
    """

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

subscribers = sa.Table(
    "subscribers",
    metadata,
    # AUTOINCREMENT on SQLite: ids of removed rows are never handed out again, because signed
    # unsubscribe tokens carry the id.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # The address as the subscriber gave it (for display and sending) ...
    sa.Column("email", sa.String(320), nullable=False),
    # ... and its normalized, lower-cased form, which is what makes it unique.
    sa.Column("email_key", sa.String(320), nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    # Consent record (GDPR Art. 7, CAN-SPAM): where and when consent came, when it was
    # confirmed, and when and why it was withdrawn.
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("consented_at", UTCDateTime, nullable=True),
    sa.Column("confirmed_at", UTCDateTime, nullable=True),
    sa.Column("unsubscribed_at", UTCDateTime, nullable=True),
    sa.Column("unsubscribe_reason", sa.Text, nullable=True),
    sa.Column("attributes", JSONType(), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("email_key"),
    sa.CheckConstraint(
        "status IN ({})".format(", ".join(f"'{s}'" for s in STATUSES)), name="status"
    ),
    # Serves the send loop's keyset scan: WHERE status = 'active' AND id > ? ORDER BY id.
    sa.Index(None, "status", "id"),
    sqlite_autoincrement=True,
)

# Addresses erased on request: only a sha256 of the normalized address is kept, so that a later
# add or import can recognise the address without the list storing it.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email_hash", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("email_hash"),
)


# -- the delivery ledger --------------------------------------------------------------------


# One send per ISO week, remembering the hash of the content it started with.
sends = sa.Table(
    "sends",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("week", sa.String(8), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("abort_reason", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("week"),
    sa.CheckConstraint(
        "status IN ({})".format(", ".join(f"'{s}'" for s in SEND_STATUSES)), name="status"
    ),
)

# One row per (send, subscriber). No foreign key to subscribers: the row outlives an erased
# subscriber as a record that a message went out, and holds no personal data itself.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("subscriber_id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("claimed_by", sa.String(96), nullable=True),
    sa.Column("batch_key", sa.String(32), nullable=True),
    sa.Column("message_id", sa.Text, nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(
        "status IN ({})".format(", ".join(f"'{s}'" for s in DELIVERY_STATUSES)), name="status"
    ),
    # Serves claiming: WHERE send_id = ? AND status = 'pending' ORDER BY subscriber_id.
    sa.Index(None, "send_id", "status", "subscriber_id"),
)

# The processes sending right now, with a heartbeat: rows claimed by a worker that stopped
# beating are recovered as "unknown".
send_workers = sa.Table(
    "send_workers",
    metadata,
    sa.Column("id", sa.String(96), primary_key=True),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
)
