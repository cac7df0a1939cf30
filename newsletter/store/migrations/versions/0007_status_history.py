"""The status history: one row per change of a subscriber's status, never updated.

``status_changes`` keeps who changed a status (the method: web, api, cli, webhook, mailbox,
import, send), from what to what, when, and why in a few words that never hold the address;
a change made by a request also keeps its IP and user agent, and a sign-up the wording the
person agreed to (the consent that waits there until it is confirmed). Rows erase with their
subscriber.

Every subscriber already on the list gets one row for the status it has, at the last time its
row knows of, with the method ``unknown``: no subscriber's history is empty.

Revision ID: 0007_status_history
Revises: 0006_brake
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_status_history"
down_revision = "0006_brake"
branch_labels = None
depends_on = None

INDEX = "ix_status_changes_subscriber_id_id"

# Spelled out here rather than imported, so this migration never changes when the code does.
BACKFILL = """
INSERT INTO status_changes (subscriber_id, at, from_status, to_status, method, detail)
SELECT id,
       CASE
           WHEN status IN ('unsubscribed', 'bounced', 'complained')
               THEN COALESCE(unsubscribed_at, updated_at)
           WHEN status = 'active' THEN COALESCE(confirmed_at, consented_at, created_at)
           ELSE COALESCE(consented_at, created_at)
       END,
       NULL, status, 'unknown', 'as it stood when the status history began'
FROM subscribers
ORDER BY id
"""


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "status_changes",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("at", timestamp, nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("ip", sa.Text, nullable=True),
        sa.Column("user_agent", sa.Text, nullable=True),
        sa.Column("consent_text", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_changes")),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
                                name=op.f("fk_status_changes_subscriber_id_subscribers")),
    )
    op.create_index(op.f(INDEX), "status_changes", ["subscriber_id", "id"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index(op.f(INDEX), table_name="status_changes")
    op.drop_table("status_changes")
