"""Alerts: the outbox of messages to ``alert_webhook_url`` (a Slack-compatible webhook).

``alerts`` holds one row per message: a send started, finished, aborted, paused by the brake,
or stalled, with its text (the week, the subject, the figures; never an address), written
right after the change it reports and posted from there, at least once. ``(send_id, kind,
detail)`` is unique: a resumed send does not say "started" again, while ``detail`` (a
stall's last progress, a pause's brake period) lets what may happen again be said again.
``next_attempt_at`` NULL: not to be posted again (sent, or dropped with ``last_error``).

Revision ID: 0010_alerts
Revises: 0009_reconciled
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_alerts"
down_revision = "0009_reconciled"
branch_labels = None
depends_on = None

INDEX = "ix_alerts_next_attempt_at"


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("send_id", sa.Integer, nullable=True),
        sa.Column("detail", sa.String(64), nullable=False),
        sa.Column("week", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", timestamp, nullable=True),
        sa.Column("sent_at", timestamp, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"], ondelete="SET NULL",
                                name=op.f("fk_alerts_send_id_sends")),
        sa.UniqueConstraint("send_id", "kind", "detail",
                            name=op.f("uq_alerts_send_id_kind_detail")),
    )
    op.create_index(op.f(INDEX), "alerts", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index(op.f(INDEX), table_name="alerts")
    op.drop_table("alerts")
