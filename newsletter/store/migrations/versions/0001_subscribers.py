"""Subscribers with their consent record, and hashed suppressions for erased addresses.

Revision ID: 0001_subscribers
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_subscribers"
down_revision = None
branch_labels = None
depends_on = None

# Spelled out here rather than imported, so this migration never changes when the code does.
# op.f(): names are final as written, whatever naming convention is in force.
STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("consented_at", timestamp, nullable=True),
        sa.Column("confirmed_at", timestamp, nullable=True),
        sa.Column("unsubscribed_at", timestamp, nullable=True),
        sa.Column("unsubscribe_reason", sa.Text, nullable=True),
        sa.Column("attributes", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
        sa.UniqueConstraint("email_key", name=op.f("uq_subscribers_email_key")),
        sa.CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in STATUSES)),
            name=op.f("ck_subscribers_status"),
        ),
        # Ids are never reused on SQLite either: unsubscribe tokens carry them.
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_subscribers_status_id"), "subscribers", ["status", "id"])
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("email_hash", name=op.f("uq_suppressions_email_hash")),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_index(op.f("ix_subscribers_status_id"), table_name="subscribers")
    op.drop_table("subscribers")
