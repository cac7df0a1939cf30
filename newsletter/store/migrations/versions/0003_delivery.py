"""Delivery correctness: batch identity, cancelled sends (issue: exactly once in every path).

Revision ID: 0003_delivery
Revises: 0002_ledger
"""

revision = "0003_delivery"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
