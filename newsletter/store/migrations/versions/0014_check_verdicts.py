"""Check verdicts: the preflight report a send passed, remembered by what it was made from.

``check_verdicts`` holds one row per fingerprint (``preflight.verdicts``: the edition's
content hash, the configuration the check reads, the check's own rules and data, and the
day); a send or resume of an unchanged edition reuses the verdict instead of checking it
again. ``report`` is the report as JSON (its findings; never an address but the made-up
sample reader's).

Revision ID: 0014_check_verdicts
Revises: 0013_outbox_kinds
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_check_verdicts"
down_revision = "0013_outbox_kinds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "check_verdicts",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("week", sa.String(8), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_check_verdicts")),
    )
    op.create_index(op.f("ix_check_verdicts_checked_at"), "check_verdicts", ["checked_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_check_verdicts_checked_at"), table_name="check_verdicts")
    op.drop_table("check_verdicts")
