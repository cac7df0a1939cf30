"""Whether a send's provider is idempotent, recorded with the send.

``sends.idempotent``: true when the provider the send is bound to repeats a request under its
idempotency key without delivering twice. It decides what the send's ``unknown`` rows mean (a
resumed send repeats them, or they wait for ``--retry-unknown``); the send row says it once,
so a report never has to work it out again from today's configuration.

Existing sends take it from their provider's name: the providers whose transport was
idempotent when this migration was written.

Revision ID: 0008_send_idempotent
Revises: 0007_status_history
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_send_idempotent"
down_revision = "0007_status_history"
branch_labels = None
depends_on = None

# Spelled out here rather than read from the providers, so this migration never changes when
# the code does: the transports whose ``idempotent`` attribute was true (Resend, by its
# idempotency keys; eml, whose repeat writes the same file again).
IDEMPOTENT_PROVIDERS = ("resend", "eml")


def upgrade() -> None:
    op.add_column("sends", sa.Column("idempotent", sa.Boolean, nullable=False,
                                     server_default=sa.false()))
    sends = sa.table("sends", sa.column("provider", sa.String),
                     sa.column("idempotent", sa.Boolean))
    op.execute(sends.update().where(sends.c.provider.in_(IDEMPOTENT_PROVIDERS))
               .values(idempotent=True))


def downgrade() -> None:
    op.drop_column("sends", "idempotent")
