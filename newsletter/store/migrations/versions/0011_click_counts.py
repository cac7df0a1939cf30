"""Click counts: per week, item and link of an edition, how often its counted link was
followed (``clicks``) and how often it was fetched by what is not a reader (``filtered``:
HEAD requests, prefetches, known link scanners, bursts).

One row per link, incremented in place: nothing about the reader is stored (no address, no
IP, no user agent, no cookie, no time of a click). ``url`` is where the link went, as its
signed token carried it.

Revision ID: 0011_click_counts
Revises: 0010_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_click_counts"
down_revision = "0010_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "click_counts",
        sa.Column("week", sa.String(8), nullable=False),
        sa.Column("item", sa.Integer, nullable=False),
        sa.Column("link", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("clicks", sa.Integer, nullable=False),
        sa.Column("filtered", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("week", "item", "link", name=op.f("pk_click_counts")),
    )


def downgrade() -> None:
    op.drop_table("click_counts")
