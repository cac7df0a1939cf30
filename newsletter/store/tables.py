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
from ..delivery.states import (
    CONFIRMATION_STATUSES,
    DELIVERY_STATUSES,
    OUTBOX_KINDS,
    SEND_STATUSES,
)
from ..feedback.events import EventKind

EVENT_KINDS = tuple(EventKind)

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


# The rest of a subscriber's consent record, for consent given or withdrawn through the web
# app (or a mailbox): from which address and browser, the sign-up form's wording, and how the
# unsubscribe came (one-click, page, mailto), so that a surge of unexplained unsubscribes can
# be looked into. One row per subscriber at most, erased with it.
consent_details = sa.Table(
    "consent_details",
    metadata,
    sa.Column("subscriber_id", sa.Integer,
              sa.ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("consent_ip", sa.Text, nullable=True),
    sa.Column("consent_user_agent", sa.Text, nullable=True),
    sa.Column("consent_text", sa.Text, nullable=True),
    sa.Column("unsubscribe_method", sa.String(16), nullable=True),
    sa.Column("unsubscribe_ip", sa.Text, nullable=True),
    sa.Column("unsubscribe_user_agent", sa.Text, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


# Every change of a subscriber's status, never updated (migration 0007; written only through
# ``audience.history``): by which method (web, api, cli, webhook, mailbox, import, send), from
# and to which status, when, and a short detail that never holds the address. A change a
# request made keeps its IP and user agent, a sign-up the wording agreed to: an unconfirmed
# sign-up's consent waits here, so the record on the subscriber row stays as it was until the
# person confirms. Rows erase with their subscriber.
status_changes = sa.Table(
    "status_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer,
              sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),  # NULL: the subscriber's first
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("ip", sa.Text, nullable=True),
    sa.Column("user_agent", sa.Text, nullable=True),
    sa.Column("consent_text", sa.Text, nullable=True),
    # Serves one subscriber's history in order, and the erasure's cascade.
    sa.Index(None, "subscriber_id", "id"),
)


# -- the confirmation outbox (double opt-in, and the reader's other mails) -------------------

# One row per mail to send about a reader's own subscription (``kind``), written in the
# transaction of the change it follows (a sign-up, a confirmation, a request on the manage
# page), so a mail is never lost between the change and the provider; rows erase with their
# subscriber. The rows of a subscriber are also the per-address cooldown's memory.
confirmations = sa.Table(
    "confirmations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer,
              sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("message_id", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    # Which mail (0013): the double opt-in, a welcome, an address change's link or notice, a
    # data download's link; the address it goes to when not the subscriber's own; when its
    # link was used (each works once).
    sa.Column("kind", sa.String(16), nullable=False, server_default="confirm"),
    sa.Column("address", sa.String(320), nullable=True),
    sa.Column("used_at", UTCDateTime, nullable=True),
    sa.CheckConstraint(
        "status IN ({})".format(", ".join(f"'{s}'" for s in CONFIRMATION_STATUSES)),
        name="status",
    ),
    sa.CheckConstraint(
        "kind IN ({})".format(", ".join(f"'{k}'" for k in OUTBOX_KINDS)), name="kind"
    ),
    # Serves the drain (WHERE status = 'pending' AND next_attempt_at <= ?) and the cooldown.
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "subscriber_id", "created_at"),
)


# -- the delivery ledger --------------------------------------------------------------------


# A send per ISO week, remembering the hash of the content it started with and the provider
# and endpoint it goes through (a resume elsewhere is refused). One live send per week: a
# cancelled one stays as a record beside the week's next.
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
    sa.Column("endpoint", sa.Text, nullable=True),
    # The canary and the brake (migration 0006): what `--force` sent past (the check's
    # verdict), the size of the canary slice, when its wait ends, and since when the brake
    # judges (set by `--resume-paused`; NULL: the whole send). A paused send's reason and
    # figures are in abort_reason.
    sa.Column("forced", sa.Text, nullable=True),
    sa.Column("canary_size", sa.Integer, nullable=False, server_default="0"),
    sa.Column("canary_until", UTCDateTime, nullable=True),
    sa.Column("brake_since", UTCDateTime, nullable=True),
    # Whether the send's provider repeats a request under its key without a double (0008):
    # what its unknown rows mean, read by `status` and the run's report.
    sa.Column("idempotent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.CheckConstraint(
        "status IN ({})".format(", ".join(f"'{s}'" for s in SEND_STATUSES)), name="status"
    ),
    # One live send per week: unique among the sends not cancelled. PostgreSQL has the same
    # predicate (migration 0003); ``postgresql_where`` is left out here because naming it
    # imports the PostgreSQL dialect on every start, which the SQLite CLI does not need.
    sa.Index("ux_sends_week_live", "week", unique=True,
             sqlite_where=sa.text("status != 'cancelled'")),
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
    # In the send's canary slice: sent first, then the send waits for bounces (0006).
    sa.Column("canary", sa.Boolean, nullable=False, server_default=sa.false()),
    # An unknown row the provider was asked about (0009): "accepted" (it had the message) or
    # "not_accepted" (it had none; the row went again); NULL: never asked.
    sa.Column("reconciled", sa.String(16), nullable=True),
    sa.CheckConstraint(
        "status IN ({})".format(", ".join(f"'{s}'" for s in DELIVERY_STATUSES)), name="status"
    ),
    # Serves claiming: WHERE send_id = ? AND status = 'pending' ORDER BY subscriber_id.
    sa.Index(None, "send_id", "status", "subscriber_id"),
    # Serves the canary phase: its rows still open, and claiming only them.
    sa.Index(None, "send_id", "canary", "status"),
)

# One row per request a send made, by its key: what an unknown batch's repeat must carry
# (``members``: each recipient's id, address, name and attributes as first sent, kept only
# while a repeat may still be needed) and when it was first sent (a provider remembers an
# idempotency key for a limited time). Claiming a repeat locks this row, so a key's rows are
# always taken together.
batches = sa.Table(
    "batches",
    metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("members", JSONType(), nullable=True),
    sa.Index(None, "send_id", "created_at"),
)

# The processes sending right now. Whether one is alive is asked of a lock the system
# releases when it dies (newsletter.delivery.senders), not of the heartbeat column.
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


# -- the feedback loop ----------------------------------------------------------------------

# Every event providers and the feedback mailbox report, in one vocabulary (feedback.events),
# each stored once per (provider, event_id). ``raw`` is the payload as JSON text (NUL and
# other control characters as JSON escapes, which PostgreSQL's JSONB and text would refuse).
# subscriber_id has no foreign key, like the ledger's; ``effect`` is NULL until the event's
# effect on the subscriber has been applied, so an interrupted request applies it on retry.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("provider_message_id", sa.Text, nullable=False),
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("meta", JSONType(), nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("subscriber_id", sa.Integer, nullable=True),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="SET NULL"),
              nullable=True),
    sa.Column("matched_by", sa.String(16), nullable=False),
    sa.Column("effect", sa.String(32), nullable=True),
    sa.Column("applied_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("provider", "event_id"),
    sa.CheckConstraint(
        "kind IN ({})".format(", ".join(f"'{k}'" for k in EVENT_KINDS)), name="kind"
    ),
    # Serves `status` and `events --week` (per send, per kind) and the soft-bounce streak.
    sa.Index(None, "send_id", "kind"),
    sa.Index(None, "subscriber_id", "occurred_at"),
)

# Provider events name the message by the id the provider answered the send with: matching
# them looks the ledger up by it (feedback.matching).
sa.Index("ix_deliveries_message_id", deliveries.c.message_id)

# Mailgun's single-use webhook tokens (feedback.store.DatabaseReplayGuard), until they expire.
webhook_tokens = sa.Table(
    "webhook_tokens",
    metadata,
    sa.Column("provider", sa.String(16), primary_key=True),
    sa.Column("token", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index(None, "expires_at"),
)


# -- alerts to a chat webhook ---------------------------------------------------------------

# One row per message to ``alert_webhook_url`` (delivery.alerts writes them right after the
# change of a send they report; delivery.alert_outbox posts them, oldest first). A send says
# each thing once: (send_id, kind, detail) is unique, ``detail`` telling apart what may
# happen again (a stall: since when; a pause: since when the brake judged). The text never
# holds an address. next_attempt_at NULL: not to be posted again (sent, or dropped: why is in
# last_error).
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="SET NULL"),
              nullable=True),
    sa.Column("detail", sa.String(64), nullable=False),
    sa.Column("week", sa.String(8), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.UniqueConstraint("send_id", "kind", "detail"),
    # Serves the drain: the rows still to post, oldest first.
    sa.Index(None, "next_attempt_at"),
)


# -- the preflight check's verdicts ---------------------------------------------------------

# The report a check made, by the fingerprint of what it was made from (preflight.verdicts):
# an unchanged edition is not checked again by a resume or a second `send`. Rows older than
# a month are deleted as new ones come.
check_verdicts = sa.Table(
    "check_verdicts",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("week", sa.String(8), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),
    sa.Index(None, "checked_at"),
)


# -- the worker's own beats -----------------------------------------------------------------

# One row per name (delivery.beats): ``worker``, its heartbeat; ``mailbox``, its last poll of
# the feedback mailbox, ``ok`` or not, and then ``error`` (one line, no secret, no address).
service_beats = sa.Table(
    "service_beats",
    metadata,
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("beat_at", UTCDateTime, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
)


# -- click counts -------------------------------------------------------------------------

# How often each counted link of an edition was followed (``clicks``) and fetched by what is
# no reader (``filtered``: HEAD, prefetch, a known scanner, a burst), one row per link of an
# item of a week (clicks.store increments them). Nothing about a reader: no address, IP, user
# agent, cookie or time of a click. ``url``: where the link went, as its token carried it.
click_counts = sa.Table(
    "click_counts",
    metadata,
    sa.Column("week", sa.String(8), primary_key=True),
    sa.Column("item", sa.Integer, primary_key=True),
    sa.Column("link", sa.Integer, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("clicks", sa.Integer, nullable=False),
    sa.Column("filtered", sa.Integer, nullable=False),
)
