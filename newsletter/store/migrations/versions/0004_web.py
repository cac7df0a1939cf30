"""The web app: consent details of web sign-ups and unsubscribes, the confirmation outbox.

Revision ID: 0004_web
Revises: 0003_delivery
"""

revision = "0004_web"
down_revision = "0003_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
