"""The worker's recurring jobs: the confirmation outbox, the feedback mailbox, the alerts."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from newsletter.clock import utc_now
from newsletter.store.db import connect
from newsletter.worker import housekeeping
from newsletter.worker.job import Worker
from newsletter.worker.service import make_scheduler
from tests.web_helpers import (
    Clock,
    make_app,
    outbox_rows,
    read_eml,
    sign_up,
    web_client,
    web_config,
)


def test_the_worker_sends_the_confirmation_mails_the_web_app_queued(project, database_url):
    config = web_config(project, database_url)
    clock = Clock(utc_now() - timedelta(minutes=1))  # the sign-up happened a minute ago
    client = web_client(make_app(config, clock))  # no lifespan: the web app sends nothing
    sign_up(client, clock, "zoe@bücher.example", "Zoë Ångström")
    assert [r["status"] for r in outbox_rows(connect(database_url))] == ["pending"]

    assert housekeeping.drain_confirmations(config) == 1

    mails = list((project / "outbox").rglob("*.eml"))
    assert len(mails) == 1
    message = read_eml(mails[0])
    assert "Zoë Ångström" in str(message["To"])
    assert housekeeping.drain_confirmations(config) == 0, "sent once, not again"


def test_a_provider_that_is_down_leaves_the_mail_queued_for_a_retry(project, database_url,
                                                                     caplog):
    config = web_config(project, database_url, provider="postmark", provider_api_key="pm-key",
                        provider_base_url="http://127.0.0.1:9")  # nothing listens there
    clock = Clock(utc_now() - timedelta(minutes=1))
    sign_up(web_client(make_app(config, clock)), clock, "ada@example.com")
    caplog.set_level(logging.INFO, logger="newsletter.worker")

    assert housekeeping.drain_confirmations(config) == 0
    [mail] = outbox_rows(connect(database_url))
    assert (mail["status"], mail["attempts"]) == ("pending", 1)
    assert mail["next_attempt_at"] > utc_now(), "tried again later, not lost"
    assert "Traceback" not in caplog.text


def test_the_mailbox_and_the_alerts_are_jobs_only_when_configured(project, database_url):
    config = web_config(project, database_url)
    worker = Worker(config)
    names = {job.name for job in make_scheduler(worker).get_jobs()}
    assert names == {"weekly send", "heartbeat", "confirmation mails", "stall watch"}

    with_mailbox = dataclasses.replace(config, imap_host="imap.example.com",
                                       imap_username="bounces")
    names = {job.name for job in make_scheduler(Worker(with_mailbox)).get_jobs()}
    assert names == {"weekly send", "heartbeat", "confirmation mails", "stall watch",
                     "mailbox"}
    jobs = {job.name: job for job in make_scheduler(Worker(with_mailbox)).get_jobs()}
    assert jobs["mailbox"].executor == jobs["confirmation mails"].executor == "housekeeping"

    with_alerts = dataclasses.replace(config, alert_webhook_url="https://hooks.example.com/x")
    jobs = {job.name: job for job in make_scheduler(Worker(with_alerts)).get_jobs()}
    assert set(jobs) == {"weekly send", "heartbeat", "confirmation mails", "stall watch",
                         "alerts"}
    assert jobs["alerts"].executor == "housekeeping"


def test_a_mailbox_that_cannot_be_reached_is_one_line(project, database_url, caplog):
    config = dataclasses.replace(web_config(project, database_url), imap_host="127.0.0.1",
                                 imap_port=9, imap_username="bounces", imap_security="none")
    caplog.set_level(logging.INFO, logger="newsletter.worker")
    housekeeping.poll_mailbox(config)
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("mailbox: not read:")
    assert "Traceback" not in caplog.text
