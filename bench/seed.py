"""A million subscribers in seconds, for the benchmarks (not the import path, which
``bench_import`` measures).

One row goes in through SQLAlchemy (so every column has the form the application writes), then
the database copies it ``n - 1`` times in one ``INSERT ... SELECT`` over a generated series,
with its own address and name for each: a recursive CTE on SQLite, ``generate_series`` on
PostgreSQL.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from tests.process_helpers import seed_subscribers

_OWN = ("id", "email", "email_key", "name")  # what each copy has of its own


def seed_many(database_url: str, n: int) -> float:
    """Insert ``n`` active subscribers reader{i}@example.com, i = 0 .. n-1, into an empty
    database; returns the seconds it took."""
    from newsletter.store.db import connect, dispose_engines
    from newsletter.store.tables import subscribers

    start = time.perf_counter()
    seed_subscribers(database_url, 1)  # reader0, and the schema
    engine = connect(database_url)
    copied = [c.name for c in subscribers.columns if c.name not in _OWN]
    columns = ", ".join(("email", "email_key", "name", *copied))
    values = ", ".join(("'reader' || i || '@example.com'", "'reader' || i || '@example.com'",
                        "'Reader ' || i", *(f"t.{c}" for c in copied)))
    if engine.dialect.name == "sqlite":
        series = ("WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g "
                  "WHERE i < :last) ")
        source = "g"
    else:
        series, source = "", "generate_series(1, :last) AS g(i)"
    sql = (f"{series}INSERT INTO subscribers ({columns}) SELECT {values} "
           f"FROM {source} CROSS JOIN (SELECT * FROM subscribers WHERE email_key = "
           "'reader0@example.com') AS t")
    with engine.begin() as conn:
        conn.execute(sa.text(sql), {"last": n - 1})
        if engine.dialect.name != "sqlite":
            conn.execute(sa.text("ANALYZE subscribers"))
    dispose_engines()
    return time.perf_counter() - start
