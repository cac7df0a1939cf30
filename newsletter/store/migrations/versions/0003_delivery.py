"""Delivery correctness: batch identity, sends bound to their endpoint, cancelled sends.

- ``batches``: one row per request key, with the recipients it carried while a repeat may be
  needed, and when it was first sent.
- ``sends.endpoint``: where the send goes (a resume elsewhere is refused).
- ``cancelled``, a state of sends and of delivery rows; one *live* send per week (a partial
  unique index instead of ``UNIQUE (week)``), so a week can be sent anew after a cancel.

SQLite cannot change a constraint in place, so there the three ledger tables are rebuilt:
copied aside, dropped children first (with foreign keys on, dropping a parent would cascade
into its children), created anew and filled again, all in the upgrade's one transaction.

Revision ID: 0003_delivery
Revises: 0002_ledger
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_delivery"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None

# Spelled out here rather than imported, so this migration never changes when the code does.
OLD_SEND_STATUSES = ("sending", "done", "aborted")
OLD_DELIVERY_STATUSES = ("pending", "in_flight", "sent", "failed", "unknown", "skipped")
SEND_STATUSES = (*OLD_SEND_STATUSES, "cancelled")
DELIVERY_STATUSES = (*OLD_DELIVERY_STATUSES, "cancelled")
LIVE = "status != 'cancelled'"

SENDS_COLUMNS = ("id", "week", "content_hash", "subject", "provider", "status", "total",
                 "abort_reason", "created_at", "updated_at", "finished_at")
DELIVERIES_COLUMNS = ("send_id", "subscriber_id", "status", "attempts", "next_attempt_at",
                      "claimed_by", "batch_key", "message_id", "error_code", "error",
                      "updated_at")
WORKERS_COLUMNS = ("id", "send_id", "hostname", "pid", "started_at", "heartbeat_at")


def _check(values: tuple[str, ...]) -> str:
    return "status IN ({})".format(", ".join(f"'{v}'" for v in values))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(new=True)
    else:
        op.add_column("sends", sa.Column("endpoint", sa.Text, nullable=True))
        op.drop_constraint(op.f("uq_sends_week"), "sends", type_="unique")
        op.create_index(op.f("ux_sends_week_live"), "sends", ["week"], unique=True,
                        postgresql_where=sa.text(LIVE))
        _replace_checks(SEND_STATUSES, DELIVERY_STATUSES)
    op.create_table(
        "batches",
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("send_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("members", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_batches")),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"], ondelete="CASCADE",
                                name=op.f("fk_batches_send_id_sends")),
    )
    op.create_index(op.f("ix_batches_send_id_created_at"), "batches", ["send_id", "created_at"])
    _record_unknown_batches()


def downgrade() -> None:
    bind = op.get_bind()
    twice = bind.execute(sa.text("SELECT week FROM sends GROUP BY week HAVING count(*) > 1")
                         ).first()
    if twice is not None:
        raise RuntimeError(f"cannot downgrade: {twice.week} has more than one send")
    # The old states have no "cancelled": a cancelled row was never sent, like a skipped one.
    bind.execute(sa.text("UPDATE deliveries SET status = 'skipped' WHERE status = 'cancelled'"))
    bind.execute(sa.text("UPDATE sends SET status = 'aborted' WHERE status = 'cancelled'"))
    op.drop_index(op.f("ix_batches_send_id_created_at"), table_name="batches")
    op.drop_table("batches")
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite(new=False)
    else:
        _replace_checks(OLD_SEND_STATUSES, OLD_DELIVERY_STATUSES)
        op.drop_index(op.f("ux_sends_week_live"), table_name="sends")
        op.create_unique_constraint(op.f("uq_sends_week"), "sends", ["week"])
        op.drop_column("sends", "endpoint")


def _replace_checks(send_statuses: tuple[str, ...], delivery_statuses: tuple[str, ...]) -> None:
    for table, statuses in (("sends", send_statuses), ("deliveries", delivery_statuses)):
        op.drop_constraint(op.f(f"ck_{table}_status"), table, type_="check")
        op.create_check_constraint(op.f(f"ck_{table}_status"), table, _check(statuses))


# -- SQLite: rebuild the ledger tables --------------------------------------------------------

def _rebuild_sqlite(*, new: bool) -> None:
    tables = (("sends", SENDS_COLUMNS), ("deliveries", DELIVERIES_COLUMNS),
              ("send_workers", WORKERS_COLUMNS))
    for name, _ in tables:
        op.execute(f"CREATE TABLE _old_{name} AS SELECT * FROM {name}")
    for name, _ in reversed(tables):  # children first: nothing cascades
        op.drop_table(name)
    _create_sends(new)
    _create_deliveries(new)
    _create_workers()
    for name, columns in tables:  # a new endpoint starts empty; an old table has none
        listed = ", ".join(columns)
        op.execute(f"INSERT INTO {name} ({listed}) SELECT {listed} FROM _old_{name}")
        op.execute(f"DROP TABLE _old_{name}")


def _create_sends(new: bool) -> None:
    timestamp = sa.DateTime(timezone=True)
    statuses = SEND_STATUSES if new else OLD_SEND_STATUSES
    constraints = [sa.PrimaryKeyConstraint("id", name=op.f("pk_sends")),
                   sa.CheckConstraint(_check(statuses), name=op.f("ck_sends_status"))]
    extra = [sa.Column("endpoint", sa.Text, nullable=True)] if new else []
    if not new:
        constraints.append(sa.UniqueConstraint("week", name=op.f("uq_sends_week")))
    op.create_table(
        "sends",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("week", sa.String(8), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("abort_reason", sa.Text, nullable=True),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.Column("finished_at", timestamp, nullable=True),
        *extra,
        *constraints,
    )
    if new:
        op.create_index(op.f("ux_sends_week_live"), "sends", ["week"], unique=True,
                        sqlite_where=sa.text(LIVE))


def _create_deliveries(new: bool) -> None:
    timestamp = sa.DateTime(timezone=True)
    statuses = DELIVERY_STATUSES if new else OLD_DELIVERY_STATUSES
    op.create_table(
        "deliveries",
        sa.Column("send_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", timestamp, nullable=True),
        sa.Column("claimed_by", sa.String(96), nullable=True),
        sa.Column("batch_key", sa.String(32), nullable=True),
        sa.Column("message_id", sa.Text, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("send_id", "subscriber_id", name=op.f("pk_deliveries")),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"], ondelete="CASCADE",
                                name=op.f("fk_deliveries_send_id_sends")),
        sa.CheckConstraint(_check(statuses), name=op.f("ck_deliveries_status")),
    )
    op.create_index(op.f("ix_deliveries_send_id_status_subscriber_id"), "deliveries",
                    ["send_id", "status", "subscriber_id"])


def _create_workers() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "send_workers",
        sa.Column("id", sa.String(96), nullable=False),
        sa.Column("send_id", sa.Integer, nullable=False),
        sa.Column("hostname", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", timestamp, nullable=False),
        sa.Column("heartbeat_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_workers")),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"], ondelete="CASCADE",
                                name=op.f("fk_send_workers_send_id_sends")),
    )


# -- unknown batches of sends in progress stay repeatable -------------------------------------

def _record_unknown_batches() -> None:
    """A batch left unknown before this version is repeated with its members as the list has
    them now (the most there is to go on); one with a member since erased cannot be repeated
    as it was, so it stays a plain unknown."""
    bind = op.get_bind()
    found = bind.execute(sa.text(
        "SELECT d.send_id, d.batch_key, d.subscriber_id, d.updated_at, s.id AS present, "
        "s.email, s.name, s.attributes FROM deliveries d "
        "LEFT JOIN subscribers s ON s.id = d.subscriber_id "
        "WHERE d.status = 'unknown' AND d.batch_key IS NOT NULL "
        "ORDER BY d.batch_key, d.subscriber_id")).all()
    batches: dict[str, dict] = {}
    for row in found:
        batch = batches.setdefault(row.batch_key, {"send_id": row.send_id, "members": [],
                                                   "created_at": row.updated_at})
        batch["created_at"] = min(batch["created_at"], row.updated_at)
        if row.present is None:
            batch["members"] = None
        elif batch["members"] is not None:
            attributes = row.attributes
            if isinstance(attributes, str):
                attributes = json.loads(attributes)
            batch["members"].append({"id": row.subscriber_id, "email": row.email,
                                     "name": row.name or "", "attributes": attributes or {}})
    table = sa.table("batches", sa.column("key"), sa.column("send_id"),
                     sa.column("created_at"), sa.column("members", sa.JSON(none_as_null=True)))
    for key, batch in batches.items():
        bind.execute(table.insert().values(key=key, send_id=batch["send_id"],
                                           created_at=batch["created_at"],
                                           members=batch["members"]))
