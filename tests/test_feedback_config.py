"""The feedback loop's config keys: lists, defaults, one-line errors, secrets kept out of sight."""

import pytest

from newsletter.config import load_config
from newsletter.errors import ConfigError
from newsletter.feedback.intake import Rules


def write(tmp_path, text):
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_refuse_every_webhook_and_poll_no_mailbox(tmp_path):
    config = load_config(write(tmp_path, ""), environ={})
    assert (config.sendgrid_webhook_public_key, config.mailgun_webhook_signing_key,
            config.resend_webhook_secret, config.postmark_webhook_auth,
            config.ses_sns_topic_arns) == ("", "", (), (), ())
    assert (config.imap_host, config.imap_port, config.imap_folder, config.imap_security,
            config.soft_bounce_limit) == ("", 0, "INBOX", "tls", 3)


def test_lists_from_the_file_or_comma_separated_from_the_environment(tmp_path):
    path = write(tmp_path, 'postmark_webhook_auth = ["old:pässwörd", "new:“pair”"]\n'
                           'ses_sns_topic_arns = ["arn:aws:sns:eu-west-1:123456789012:a"]\n')
    config = load_config(path, environ={
        "NEWSLETTER_RESEND_WEBHOOK_SECRET": "whsec_AAAA,whsec_BBBB",
        "NEWSLETTER_SOFT_BOUNCE_LIMIT": "5", "NEWSLETTER_SECRET_KEY": "k" * 32})
    assert config.postmark_webhook_auth == ("old:pässwörd", "new:“pair”")
    assert config.resend_webhook_secret == ("whsec_AAAA", "whsec_BBBB")
    assert config.ses_sns_topic_arns == ("arn:aws:sns:eu-west-1:123456789012:a",)
    assert Rules.from_config(config) == Rules(("k" * 32,), 5)


def test_webhook_and_mailbox_secrets_never_show(tmp_path):
    environ = {"NEWSLETTER_MAILGUN_WEBHOOK_SIGNING_KEY": "mg-signing-secret",
               "NEWSLETTER_RESEND_WEBHOOK_SECRET": "whsec_c2VjcmV0",
               "NEWSLETTER_POSTMARK_WEBHOOK_AUTH": "user:postmark-secret",
               "NEWSLETTER_IMAP_HOST": "imap.example.org",
               "NEWSLETTER_IMAP_USERNAME": "bounces", "NEWSLETTER_IMAP_PASSWORD": "imap-secret"}
    shown = str(load_config(write(tmp_path, ""), environ=environ).redacted())
    for secret in ("mg-signing-secret", "c2VjcmV0", "postmark-secret", "imap-secret"):
        assert secret not in shown
    assert "imap.example.org" in shown


@pytest.mark.parametrize(("environ", "key"), [
    ({"NEWSLETTER_IMAP_SECURITY": "ssl"}, "imap_security"),
    ({"NEWSLETTER_IMAP_PORT": "70000"}, "imap_port"),
    ({"NEWSLETTER_SOFT_BOUNCE_LIMIT": "0"}, "soft_bounce_limit"),
    ({"NEWSLETTER_POSTMARK_WEBHOOK_AUTH": "no-colon-pässwörd"}, "postmark_webhook_auth"),
    ({"NEWSLETTER_IMAP_HOST": "imap.example.org"}, "imap_username"),
])
def test_a_bad_value_is_one_line_naming_the_key_not_the_secret(tmp_path, environ, key):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ""), environ=environ)
    message = str(info.value)
    assert f"'{key}'" in message and "\n" not in message
    assert "pässwörd" not in message
