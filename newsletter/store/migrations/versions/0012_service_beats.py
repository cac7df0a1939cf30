"""Service beats: when the worker last beat, and when it last polled the feedback mailbox.

``service_beats`` holds one row per name (``worker``: the worker's heartbeat, upserted every
30 s; ``mailbox``: its last poll of the feedback mailbox, with ``ok`` and, after a failure,
``error``, one line without secrets or addresses). ``/metrics`` and ``status`` read it, so a
worker that died, or a mailbox that has not been read for hours, shows from anywhere.

Revision ID: 0012_service_beats
Revises: 0011_click_counts
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_service_beats"
down_revision = "0011_click_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_beats",
        sa.Column("name", sa.String(16), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_service_beats")),
    )


def downgrade() -> None:
    op.drop_table("service_beats")
