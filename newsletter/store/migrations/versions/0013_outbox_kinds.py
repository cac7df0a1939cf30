"""The confirmation outbox carries every mail about a reader's own subscription.

``confirmations.kind`` says which mail a row is: ``confirm`` (the double opt-in, what every
row was so far, and the default), ``welcome`` (after a confirmation), ``address_confirm`` (a
link that makes a new address the subscriber's), ``address_notice`` (to the old address, once
that happened) and ``data_link`` (a link to a one-time download of the person's data).
``address`` is the address a row mails when it is not the subscriber's own (the new one for
``address_confirm``, the old one for ``address_notice``). ``used_at``: when the link a row
mailed was used (an address confirmed, the data downloaded): each works once.

Revision ID: 0013_outbox_kinds
Revises: 0012_service_beats
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_outbox_kinds"
down_revision = "0012_service_beats"
branch_labels = None
depends_on = None

# Spelled out, so this migration never changes when the code's vocabulary does.
KINDS = ("confirm", "welcome", "address_confirm", "address_notice", "data_link")


def upgrade() -> None:
    with op.batch_alter_table("confirmations") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False,
                                   server_default="confirm"))
        batch.add_column(sa.Column("address", sa.String(320), nullable=True))
        batch.add_column(sa.Column("used_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(
            "kind", "kind IN ({})".format(", ".join(f"'{k}'" for k in KINDS)))


def downgrade() -> None:
    with op.batch_alter_table("confirmations") as batch:
        batch.drop_constraint(op.f("ck_confirmations_kind"), type_="check")
        batch.drop_column("used_at")
        batch.drop_column("address")
        batch.drop_column("kind")
