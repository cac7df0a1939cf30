"""The feedback loop: one event log of provider and mailbox events, webhook replay tokens.

Revision ID: 0005_events
Revises: 0004_web
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_events"
down_revision = "0004_web"
branch_labels = None
depends_on = None

# Spelled out here rather than imported, so this migration never changes when the code does.
KINDS = ("bounced", "deferred", "complained", "unsubscribed", "rejected", "delivered", "unknown")


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("provider_message_id", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("meta", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        # JSON text, not JSONB: PostgreSQL's JSONB and text refuse NUL, JSON text escapes it.
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("occurred_at", timestamp, nullable=False),
        sa.Column("received_at", timestamp, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=True),
        sa.Column("send_id", sa.Integer, nullable=True),
        sa.Column("matched_by", sa.String(16), nullable=False),
        sa.Column("effect", sa.String(32), nullable=True),
        sa.Column("applied_at", timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("provider", "event_id", name=op.f("uq_events_provider_event_id")),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"], ondelete="SET NULL",
                                name=op.f("fk_events_send_id_sends")),
        sa.CheckConstraint("kind IN ({})".format(", ".join(f"'{k}'" for k in KINDS)),
                           name=op.f("ck_events_kind")),
    )
    op.create_index(op.f("ix_events_send_id_kind"), "events", ["send_id", "kind"])
    op.create_index(op.f("ix_events_subscriber_id_occurred_at"), "events",
                    ["subscriber_id", "occurred_at"])
    op.create_table(
        "webhook_tokens",
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("token", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("expires_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("provider", "token", name=op.f("pk_webhook_tokens")),
    )
    op.create_index(op.f("ix_webhook_tokens_expires_at"), "webhook_tokens", ["expires_at"])
    # Events name their message by the id the provider answered the send with.
    op.create_index(op.f("ix_deliveries_message_id"), "deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_deliveries_message_id"), table_name="deliveries")
    op.drop_index(op.f("ix_webhook_tokens_expires_at"), table_name="webhook_tokens")
    op.drop_table("webhook_tokens")
    op.drop_index(op.f("ix_events_subscriber_id_occurred_at"), table_name="events")
    op.drop_index(op.f("ix_events_send_id_kind"), table_name="events")
    op.drop_table("events")
