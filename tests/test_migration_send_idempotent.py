"""Whether a send's provider is idempotent is recorded with the send: migration 0008 takes it
for the sends already there from their provider's name; a new send records it; ``status``
reads it from the send, whatever today's configuration says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.delivery import ledger
from newsletter.devtools.fake_provider import FakeProvider
from newsletter.providers import transport_class
from newsletter.store import db
from newsletter.store.tables import deliveries
from tests.seeding import seed
from tests.sending import WEEK, make_config, send
from tests.test_migration_delivery import upgrade_to

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
PROVIDERS = ["resend", "postmark", "eml", "smtp", "ses"]


pytestmark = pytest.mark.usefixtures("engines_disposed")


def test_existing_sends_take_their_providers_idempotence(database_url):
    engine = db._engine(db.normalize_url(database_url))  # as the delivery migration test does
    upgrade_to(engine, "0007_status_history")
    with engine.begin() as conn:
        for n, provider in enumerate(PROVIDERS, 1):
            conn.execute(sa.text(
                "INSERT INTO sends (week, content_hash, subject, provider, status, total, "
                "created_at, updated_at) VALUES (:week, :h, 'José’s “notes”', :p, 'done', 0, "
                ":t, :t)"), {"week": f"2026-W{n:02d}", "h": "a" * 64, "p": provider, "t": NOW})
    upgrade_to(engine, "head")
    recorded = {send.provider: send.idempotent
                for n in range(1, len(PROVIDERS) + 1)
                for send in ledger.sends_of_week(engine, f"2026-W{n:02d}")}
    assert recorded == {p: transport_class(p).idempotent for p in PROVIDERS}
    assert recorded["resend"] and not recorded["postmark"]


@pytest.mark.parametrize("provider, unknowns_repeated", [("resend", True),
                                                       ("postmark", False)])
def test_a_new_send_records_it_and_status_reads_it_from_there(project, database_url,
                                                              provider, unknowns_repeated):
    """A resend send's unknowns are repeated by a resumed send: status suggests
    --retry-unknown for them only with a provider that does not repeat them."""
    seed(database_url, ["zoe@bücher.example", "rene@exemple.fr"])
    with FakeProvider() as fake:
        config = make_config(project, database_url, fake, provider=provider)
        assert send(config).counts == {"sent": 2}
    engine = db.connect(database_url)
    record = ledger.find_send(engine, WEEK)
    assert record.idempotent is unknowns_repeated
    with engine.begin() as conn:  # one row's answer lost, the send not finished
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == 1)
                     .values(status="unknown"))
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == 2)
                     .values(status="pending"))
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_PROVIDER": "eml"}
    out = CliRunner().invoke(cli, ["status", "--week", WEEK], env=env).output
    assert ("--retry-unknown" in out) is not unknowns_repeated, out
