"""The delivery ledger: sends, one row per recipient of each, and the live sending processes.

Revision ID: 0002_ledger
Revises: 0001_subscribers
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_ledger"
down_revision = "0001_subscribers"
branch_labels = None
depends_on = None

SEND_STATUSES = ("sending", "done", "aborted")
DELIVERY_STATUSES = ("pending", "in_flight", "sent", "failed", "unknown", "skipped")


def _check(values: tuple[str, ...]) -> str:
    return "status IN ({})".format(", ".join(f"'{v}'" for v in values))


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "sends",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("week", sa.String(8), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("abort_reason", sa.Text, nullable=True),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.Column("finished_at", timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sends")),
        sa.UniqueConstraint("week", name=op.f("uq_sends_week")),
        sa.CheckConstraint(_check(SEND_STATUSES), name=op.f("ck_sends_status")),
    )
    op.create_table(
        "deliveries",
        sa.Column("send_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", timestamp, nullable=True),
        sa.Column("claimed_by", sa.String(96), nullable=True),
        sa.Column("batch_key", sa.String(32), nullable=True),
        sa.Column("message_id", sa.Text, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("send_id", "subscriber_id", name=op.f("pk_deliveries")),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"], ondelete="CASCADE",
                                name=op.f("fk_deliveries_send_id_sends")),
        sa.CheckConstraint(_check(DELIVERY_STATUSES), name=op.f("ck_deliveries_status")),
    )
    op.create_index(op.f("ix_deliveries_send_id_status_subscriber_id"), "deliveries",
                    ["send_id", "status", "subscriber_id"])
    op.create_table(
        "send_workers",
        sa.Column("id", sa.String(96), nullable=False),
        sa.Column("send_id", sa.Integer, nullable=False),
        sa.Column("hostname", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", timestamp, nullable=False),
        sa.Column("heartbeat_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_workers")),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"], ondelete="CASCADE",
                                name=op.f("fk_send_workers_send_id_sends")),
    )


def downgrade() -> None:
    op.drop_table("send_workers")
    op.drop_index(op.f("ix_deliveries_send_id_status_subscriber_id"), table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("sends")
