"""Each provider described once, by its module's ``INFO``: what config, a send, the webhooks
and the README read of it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.config import Config, key_fields, load_config
from newsletter.delivery.send import endpoint_of
from newsletter.errors import ConfigError
from newsletter.providers import REGISTRY
from tests.web_helpers import Clock, make_app, web_client, web_config

ROOT = Path(__file__).resolve().parent.parent
KEYS = {f.name for f in key_fields()}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_provider_module_describes_itself(name):
    info = REGISTRY[name]
    assert info.name == name and info.transport.name == name
    assert set(info.settings) <= KEYS, "every setting it reads is a config key"


def test_naming_the_providers_loads_none_of_them(tmp_path):
    """Validating a config checks the provider's name without importing any provider."""
    (tmp_path / "newsletter.toml").write_text('provider = "postmark"\n', encoding="utf-8")
    script = ("import sys; from newsletter.config import load_config; "
              f"load_config({str(tmp_path / 'newsletter.toml')!r}, environ={{}}); "
              "print(sorted(m for m in sys.modules if m.startswith('newsletter.providers.')))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()
    assert loaded == "['newsletter.providers.info']"


def test_an_unknown_provider_is_refused_naming_the_registered_ones(tmp_path):
    path = tmp_path / "newsletter.toml"
    path.write_text('provider = "brévo"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert "'provider'" in str(refused.value) and "'brévo'" in str(refused.value)
    assert all(name in str(refused.value) for name in REGISTRY)


# What a send records as its endpoint, and resumes only through: these are the values earlier
# releases stored, so they must not change spelling.
@pytest.mark.parametrize(("provider", "settings", "endpoint"), [
    ("postmark", {}, "https://api.postmarkapp.com"),
    ("sendgrid", {}, "https://api.sendgrid.com"),
    ("mailgun", {}, "https://api.mailgun.net"),
    ("resend", {}, "https://api.resend.com"),
    ("resend", {"provider_base_url": "http://127.0.0.1:8025/"}, "http://127.0.0.1:8025"),
    ("mailgun", {"provider_base_url": "https://api.eu.mailgun.net/"}, "https://api.eu.mailgun.net"),
    ("ses", {"aws_region": "eu-west-3"}, "https://email.eu-west-3.amazonaws.com"),
    ("ses", {"provider_base_url": "http://127.0.0.1:5000"}, "http://127.0.0.1:5000"),
    # SMTP and files do not read provider_base_url.
    ("smtp", {"smtp_host": "smtp.xn--bcher-kva.example", "smtp_port": 465,
              "provider_base_url": "https://ignored.example"},
     "smtp://smtp.xn--bcher-kva.example:465"),
])
def test_the_endpoint_a_send_records(provider, settings, endpoint):
    assert endpoint_of(dataclasses.replace(Config(), provider=provider, **settings)) == endpoint


def test_the_eml_endpoint_is_the_outbox_folder(tmp_path):
    outbox = tmp_path / "boîte d’envoi"
    config = dataclasses.replace(Config(), provider="eml", outbox_dir=outbox,
                                 provider_base_url="https://ignored.example")
    assert endpoint_of(config) == str(outbox.resolve())


def test_a_webhook_answers_for_every_provider_that_names_one(project, database_url):
    app = make_app(web_config(project, database_url), Clock())
    with web_client(app) as client:
        for name, info in REGISTRY.items():
            expected = 404 if info.webhook is None else 200
            assert client.head(f"/webhooks/{name}").status_code == expected, name


def test_the_readme_provider_table_lists_every_provider_with_its_batch():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Providers", 1)[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| (\d+) \|", table, re.M)
    assert sorted(rows) == sorted((name, str(info.transport.max_batch))
                                  for name, info in REGISTRY.items())
