"""django-newsletter as its users run it: a Submission of one Message, submitted over SMTP.

Runs inside the virtualenv ``bench_peers.py`` makes for it (Django and django-newsletter
pinned there), in two steps so that only the sending is measured:

    python django_newsletter_send.py prepare --db peers.db --edition edition.json \
        --recipients list.tsv
    python django_newsletter_send.py send --db peers.db --port PORT

``prepare`` creates the schema, one newsletter, one message whose single article is the
edition's HTML, the subscriptions, and the submission. ``send`` calls
``Submission.submit()``, which renders and sends one message per subscriber through Django's
SMTP backend (a new connection for each message, as django-newsletter does).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import django
from django.conf import settings

urlpatterns: list = []  # ROOT_URLCONF: filled once Django is set up (reverse() needs it)


def configure(db: Path, port: int) -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-not-secret",
        ALLOWED_HOSTS=["*"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)}},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                        "django.contrib.sites", "django.contrib.messages", "sorl.thumbnail",
                        "newsletter"],
        SITE_ID=1,
        ROOT_URLCONF=__name__,
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True, "OPTIONS": {"context_processors": []}}],
        USE_TZ=True,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        DEFAULT_FROM_EMAIL="editors@fivethings.example.com",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        LOGGING_CONFIG=None,
        NEWSLETTER_THUMBNAIL="sorl-thumbnail",  # its image field; the edition has no images
        NEWSLETTER_USE_HTTPS=True,
    )
    sys.modules.setdefault(__name__, sys.modules["__main__"])
    django.setup()
    from django.urls import include, path

    urlpatterns.append(path("newsletter/", include("newsletter.urls")))


def prepare(edition: dict, recipients: Path) -> None:
    from django.contrib.sites.models import Site
    from django.core.management import call_command
    from newsletter.models import Article, Message, Newsletter, Submission, Subscription

    call_command("migrate", verbosity=0, interactive=False)
    site = Site.objects.get_current()
    newsletter = Newsletter.objects.create(
        title=edition["name"], slug="five-things", email=edition["from_address"],
        sender=edition["name"])
    newsletter.site.set([site])
    message = Message.objects.create(title=edition["subject"], slug="2026-w47",
                                     newsletter=newsletter)
    Article.objects.create(title=edition["subject"], text=edition["html_static"], post=message,
                           sortorder=1)
    with recipients.open(encoding="utf-8") as lines:
        rows = [line.rstrip("\n").split("\t") for line in lines]
    Subscription.objects.bulk_create([
        Subscription(newsletter=newsletter, name_field=name, email_field=email, subscribed=True)
        for _number, email, name in rows], batch_size=2000)
    Submission.from_message(message)


def send() -> None:
    from newsletter.models import Submission

    submission = Submission.objects.get()
    submission.submit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["prepare", "send"])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--edition", type=Path)
    parser.add_argument("--recipients", type=Path)
    args = parser.parse_args()
    configure(args.db, args.port)
    if args.step == "prepare":
        prepare(json.loads(args.edition.read_text(encoding="utf-8")), args.recipients)
    else:
        send()


if __name__ == "__main__":
    main()
