"""What the tests that post signed webhooks through the web app share: one signer for each
provider whose scheme needs a key pair, every provider's webhook secret configured to match,
and the app that verifies with them, fetching SES's certificate in process (no network).
"""

from __future__ import annotations

from starlette.applications import Starlette

from tests import test_webhook_mailgun as mg
from tests import test_webhook_postmark as pm
from tests import test_webhook_resend as rs
from tests import test_webhook_sendgrid as sg
from tests import test_webhook_ses as ses
from tests.test_events_world import make_config, webhook_app

SG = sg.Signer()
SNS = ses.Signer()
# The config keys that make every provider's webhook verify what the signers above sign.
SECRETS = {
    "sendgrid_webhook_public_key": SG.public,
    "mailgun_webhook_signing_key": mg.KEY,
    "resend_webhook_secret": (rs.SECRET,),
    "postmark_webhook_auth": (pm.CREDENTIALS,),
    "ses_sns_topic_arns": (ses.TOPIC,),
}
# What SNS sends with every HTTP delivery (the route refuses a request without it).
SNS_NOTIFICATION = {"x-amz-sns-message-type": "Notification",
                    "content-type": "text/plain; charset=UTF-8"}


def sns_certificates() -> ses.Web:
    """An in-process stand-in for SNS's certificate URL, recording what was fetched."""
    return ses.Web({ses.CERT_URL: SNS.pem})


def signed_webhook_app(database_url: str, *, web: ses.Web | None = None,
                       **secrets) -> Starlette:
    """The web app with these webhook secrets (none: no provider configured), fetching
    certificates from ``web`` (a fresh ``sns_certificates()`` unless given)."""
    web = web or sns_certificates()
    return webhook_app(make_config(database_url, **secrets), transport=web.transport)
