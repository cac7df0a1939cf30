"""Unknown rows resolved by asking the provider, and the events that say it accepted a message.

``deliveries.reconciled``: how the provider answered for a row that was ``unknown``
(``accepted``: it had the message, the row is sent; ``not_accepted``: it had none, the row was
sent again), NULL for a row never asked about. ``status`` counts them.

``events.kind`` gains ``accepted``: SendGrid's ``processed`` and SES's ``Send`` events, from
which those providers' unknown rows are resolved. The CHECK constraint is rewritten (SQLite
rebuilds the table to do it).

Revision ID: 0009_reconciled
Revises: 0008_send_idempotent
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_reconciled"
down_revision = "0008_send_idempotent"
branch_labels = None
depends_on = None

# Spelled out, so this migration never changes when the code's vocabulary does.
OLD_KINDS = ("bounced", "deferred", "complained", "unsubscribed", "rejected", "delivered",
             "unknown")
NEW_KINDS = ("bounced", "deferred", "complained", "unsubscribed", "rejected", "delivered",
             "accepted", "unknown")


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN ({})".format(", ".join(f"'{k}'" for k in kinds))


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("reconciled", sa.String(16), nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint(op.f("ck_events_kind"), type_="check")
        batch.create_check_constraint("kind", _kinds(NEW_KINDS))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint(op.f("ck_events_kind"), type_="check")
        batch.create_check_constraint("kind", _kinds(OLD_KINDS))
    op.drop_column("deliveries", "reconciled")
