"""The canary and the brake: the ``paused`` send state, the canary slice, ``--force``.

- ``sends.forced``: the check's verdict a send went out past with ``--force``.
- ``sends.canary_size``, ``sends.canary_until``: the canary slice's size and the end of its
  wait; ``deliveries.canary`` marks the slice's rows (index: send, canary, status).
- ``sends.brake_since``: since when the brake judges (set by ``--resume-paused``).
- ``paused``, a state of sends.

Adding a value to the state's CHECK constraint on SQLite would otherwise mean rebuilding
``sends``, and dropping it, with foreign keys on, would cascade into every ledger table. A
CHECK constraint that only accepts more does not change what is stored, which is the case
SQLite documents for editing the schema text in place (``writable_schema``, with the schema
version bumped so every connection reloads it); that is what happens here, inside the
upgrade's one transaction, and the edit is verified.

Revision ID: 0006_brake
Revises: 0005_events
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0006_brake"
down_revision = "0005_events"
branch_labels = None
depends_on = None

# Spelled out here rather than imported, so this migration never changes when the code does.
OLD_SEND_STATUSES = ("sending", "done", "aborted", "cancelled")
SEND_STATUSES = (*OLD_SEND_STATUSES, "paused")
SEND_COLUMNS = ("forced", "canary_size", "canary_until", "brake_since")
INDEX = "ix_deliveries_send_id_canary_status"


def _check(values: tuple[str, ...]) -> str:
    return "status IN ({})".format(", ".join(f"'{v}'" for v in values))


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.add_column("sends", sa.Column("forced", sa.Text, nullable=True))
    op.add_column("sends", sa.Column("canary_size", sa.Integer, nullable=False,
                                     server_default="0"))
    op.add_column("sends", sa.Column("canary_until", timestamp, nullable=True))
    op.add_column("sends", sa.Column("brake_since", timestamp, nullable=True))
    op.add_column("deliveries", sa.Column("canary", sa.Boolean, nullable=False,
                                          server_default=sa.false()))
    op.create_index(op.f(INDEX), "deliveries", ["send_id", "canary", "status"])
    _set_send_check(OLD_SEND_STATUSES, SEND_STATUSES)


def downgrade() -> None:
    bind = op.get_bind()
    # The old states have no "paused": it was a send with work left, stopped on purpose.
    bind.execute(sa.text("UPDATE sends SET status = 'aborted' WHERE status = 'paused'"))
    _set_send_check(SEND_STATUSES, OLD_SEND_STATUSES)
    op.drop_index(op.f(INDEX), table_name="deliveries")
    op.drop_column("deliveries", "canary")
    for column in reversed(SEND_COLUMNS):
        op.drop_column("sends", column)


def _set_send_check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_sends_status"), "sends", type_="check")
        op.create_check_constraint(op.f("ck_sends_status"), "sends", _check(new))
        return
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'sends'").scalar_one()
    pattern = re.compile(r"(CONSTRAINT\s+\"?ck_sends_status\"?\s+CHECK\s*\()\s*"
                         + re.escape(_check(old)) + r"\s*\)")
    changed, found = pattern.subn(lambda m: m.group(1) + _check(new) + ")", sql)
    if found != 1:
        raise RuntimeError("sends: the status constraint is not the one this migration "
                           "expects; the database was changed by hand")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND "
                             "name = 'sends'", (changed,))
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    check = bind.exec_driver_sql("PRAGMA quick_check").scalar_one()
    if check != "ok":
        raise RuntimeError(f"sends: the schema edit left the database inconsistent: {check}")
