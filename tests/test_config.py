from pathlib import Path

import pytest

from newsletter.config import load_config
from newsletter.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    config = load_config(write(tmp_path, 'name = "N"\n'), environ={})
    assert config.items_dir == tmp_path.resolve() / "items"
    assert config.database_url == f"sqlite:///{tmp_path.resolve()}/subscribers/newsletter.db"


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, 'name = "From file"\nbatch_size = 100\n')
    environ = {"NEWSLETTER_NAME": "From env", "NEWSLETTER_BATCH_SIZE": "7"}
    config = load_config(path, environ=environ)
    assert (config.name, config.batch_size) == ("From env", 7)


@pytest.mark.parametrize(
    ("text", "environ", "key"),
    [
        ('nmae = "typo"\n', {}, "nmae"),
        ('batch_size = "many"\n', {}, "batch_size"),
        ("", {"NEWSLETTER_RATE_LIMIT": "fast"}, "rate_limit"),
        ('provider = "pigeon"\n', {}, "provider"),
        ('timezone = "Mars/Olympus"\n', {}, "timezone"),
        ('schedule = "every monday"\n', {}, "schedule"),
        ('base_url = "example.com"\n', {}, "base_url"),
        ('from_address = "not an address"\n', {}, "from_address"),
        ('name = "Two\\nlines"\n', {}, "name"),
        ('provider = "postmark"\n', {}, "secret_key"),
        ("concurrency = 0\n", {}, "concurrency"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path, text, environ, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(write(tmp_path, text), environ=environ)


def test_invalid_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, 'name = "ok"\nbroken = \n')
    with pytest.raises(ConfigError, match=r"newsletter\.toml: invalid TOML.*line 2"):
        load_config(path, environ={})


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.toml"):
        load_config(tmp_path / "nope.toml", environ={})


def test_secrets_never_appear_in_errors_or_redacted_output(tmp_path):
    secret = "s3cr3t-value-xyz"
    bad = write(tmp_path, f'smtp_password = ["{secret}"]\n')
    with pytest.raises(ConfigError, match="smtp_password") as err:
        load_config(bad, environ={})
    assert secret not in str(err.value)
    path = write(tmp_path, 'provider = "postmark"\n')
    config = load_config(path, environ={"NEWSLETTER_SECRET_KEY": secret})
    assert secret not in repr(config.redacted())
    assert config.redacted()["secret_key"] == "(set)"


def test_required_keys_are_checked_by_the_commands_that_need_them(tmp_path):
    config = load_config(write(tmp_path, ""), environ={})
    with pytest.raises(ConfigError, match="missing config key 'base_url'.*NEWSLETTER_BASE_URL"):
        config.require("base_url")
