"""The web app: consent details of web sign-ups and unsubscribes, the confirmation outbox.

Revision ID: 0004_web
Revises: 0003_delivery
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_web"
down_revision = "0003_delivery"
branch_labels = None
depends_on = None

# Spelled out here rather than imported, so this migration never changes when the code does.
OUTBOX_STATUSES = ("pending", "sent", "failed", "cancelled")


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    # A table beside subscribers rather than new columns on it: existing rows stay exactly as
    # they are, and code that writes whole subscriber rows needs no change.
    op.create_table(
        "consent_details",
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("consent_ip", sa.Text, nullable=True),
        sa.Column("consent_user_agent", sa.Text, nullable=True),
        sa.Column("consent_text", sa.Text, nullable=True),
        sa.Column("unsubscribe_method", sa.String(16), nullable=True),
        sa.Column("unsubscribe_ip", sa.Text, nullable=True),
        sa.Column("unsubscribe_user_agent", sa.Text, nullable=True),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", name=op.f("pk_consent_details")),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
                                name=op.f("fk_consent_details_subscriber_id_subscribers")),
    )
    op.create_table(
        "confirmations",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", timestamp, nullable=False),
        sa.Column("claimed_until", timestamp, nullable=True),
        sa.Column("message_id", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.Column("sent_at", timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_confirmations")),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
                                name=op.f("fk_confirmations_subscriber_id_subscribers")),
        sa.CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in OUTBOX_STATUSES)),
            name=op.f("ck_confirmations_status"),
        ),
    )
    op.create_index(op.f("ix_confirmations_status_next_attempt_at"), "confirmations",
                    ["status", "next_attempt_at"])
    op.create_index(op.f("ix_confirmations_subscriber_id_created_at"), "confirmations",
                    ["subscriber_id", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_confirmations_subscriber_id_created_at"), table_name="confirmations")
    op.drop_index(op.f("ix_confirmations_status_next_attempt_at"), table_name="confirmations")
    op.drop_table("confirmations")
    op.drop_table("consent_details")
