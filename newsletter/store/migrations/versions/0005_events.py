"""The feedback loop: one event log of provider and mailbox events, webhook replay tokens.

Revision ID: 0005_events
Revises: 0004_web
"""

revision = "0005_events"
down_revision = "0004_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
