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
        ('timezone = "Europe/' + "A" * 300 + '"\n', {}, "timezone"),
        ('schedule = "every monday"\n', {}, "schedule"),
        ('base_url = "example.com"\n', {}, "base_url"),
        ('from_address = "not an address"\n', {}, "from_address"),
        ('name = "Two\\nlines"\n', {}, "name"),
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


# --------------------------------------------------------------------------- where values come from


@pytest.mark.parametrize(("variable", "value"), [
    ("NEWSLETTER_TIMEZONE", "Mars/Olympus"),
    ("NEWSLETTER_PROVIDER", "pigeon"),
    ("NEWSLETTER_CONCURRENCY", "0"),
    ("NEWSLETTER_CONCURRENCY", "four"),
    ("NEWSLETTER_MAX_ERROR_RATE", "2"),
    ("NEWSLETTER_FROM_ADDRESS", "editors at example.com"),
    ("NEWSLETTER_BASE_URL", "fivethings.example"),
    ("NEWSLETTER_SMTP_SECURITY", "ssl"),
])
def test_a_bad_value_from_the_environment_names_the_variable(tmp_path, variable, value):
    path = write(tmp_path, 'timezone = "UTC"\nprovider = "eml"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={variable: value})
    key = variable.removeprefix("NEWSLETTER_").lower()
    assert f"'{key}'" in str(err.value) and variable in str(err.value)
    assert "newsletter.toml" not in str(err.value)


def test_a_bad_value_from_the_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"'timezone' .*\(.*newsletter\.toml\)"):
        load_config(write(tmp_path, 'timezone = "Mars/Olympus"\n'), environ={})


def test_an_unknown_newsletter_variable_is_a_warning_naming_the_closest_key(tmp_path):
    environ = {"NEWSLETTER_TIMEZOEN": "UTC", "NEWSLETTER_CONFIG": "x",
               "NEWSLETTER_TEST_POSTGRES_URL": "y", "OTHER": "z"}
    config = load_config(write(tmp_path, ""), environ=environ)
    assert config.warnings == (
        "environment variable NEWSLETTER_TIMEZOEN is not a config key, ignored; did you mean "
        "NEWSLETTER_TIMEZONE (config key 'timezone')?",)
    assert config.timezone == "UTC"


@pytest.mark.parametrize(("text", "environ", "key"), [
    ("retry_delay = inf\n", {}, "retry_delay"),
    ("rate_limit = nan\n", {}, "rate_limit"),
    ("", {"NEWSLETTER_RETRY_DELAY": "inf"}, "retry_delay"),
    ("", {"NEWSLETTER_MAX_ERROR_RATE": "NaN"}, "max_error_rate"),
    ("concurrency = inf\n", {}, "concurrency"),
    ("concurrency = 2.5\n", {}, "concurrency"),
    ("", {"NEWSLETTER_BATCH_SIZE": "9" * 5000}, "batch_size"),
])
def test_numbers_must_be_finite_and_whole_where_counted(tmp_path, text, environ, key):
    with pytest.raises(ConfigError, match=rf"config key '{key}' must be a (finite|whole) number"):
        load_config(write(tmp_path, text), environ=environ)


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("key", ["provider_api_key", "secret_key", "smtp_password",
                                 "aws_secret_access_key"])
@pytest.mark.parametrize("value", ["re_abc123 ", " re_abc123", "re_abc123\n"])
def test_white_space_around_a_secret_is_refused_without_showing_it(tmp_path, key, value):
    variable = f"NEWSLETTER_{key.upper()}"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""), environ={variable: value})
    message = str(err.value)
    assert f"'{key}'" in message and variable in message
    assert "re_abc" not in message and "\n" not in message


def test_an_api_key_is_one_word(tmp_path):
    with pytest.raises(ConfigError, match="'provider_api_key' contains white space") as err:
        load_config(write(tmp_path, ""), environ={"NEWSLETTER_PROVIDER_API_KEY": "re_a re_b"})
    assert "re_a" not in str(err.value)
    config = load_config(write(tmp_path, ""), environ={"NEWSLETTER_SMTP_PASSWORD": "a b c"})
    assert config.smtp_password == "a b c", "a password may have spaces inside"


def test_a_real_provider_needs_secret_key_to_sign_not_to_load(tmp_path):
    config = load_config(write(tmp_path, 'provider = "postmark"\n'), environ={})
    assert config.provider == "postmark"  # subscriber commands work without it
    with pytest.raises(ConfigError, match="'secret_key' must be set .*NEWSLETTER_SECRET_KEY"):
        _ = config.signing_key
    eml = load_config(write(tmp_path, ""), environ={})
    assert eml.signing_key  # the demo key: nothing can really be sent


def test_previous_secret_keys_are_a_list_and_hidden(tmp_path):
    path = write(tmp_path, 'secret_key_previous = ["old-one", "older"]\n')
    config = load_config(path, environ={"NEWSLETTER_SECRET_KEY": "current"})
    assert config.verification_keys == ("current", "old-one", "older")
    assert config.redacted()["secret_key_previous"] == "(set)"
    env = load_config(write(tmp_path, ""), environ={"NEWSLETTER_SECRET_KEY": "c",
                                                     "NEWSLETTER_SECRET_KEY_PREVIOUS": "a, b"})
    assert env.verification_keys == ("c", "a", "b")


# --------------------------------------------------------------------------- text and addresses


@pytest.mark.parametrize("char", ["\x0b", "\x00", "\u2028", "\t", "\r"])
@pytest.mark.parametrize("key", ["from_name", "name", "postal_address", "provider_stream"])
def test_no_control_character_in_any_text_value(tmp_path, key, char):
    variable = f"NEWSLETTER_{key.upper()}"
    with pytest.raises(ConfigError, match=rf"'{key}' must be one line .*\({variable}\)"):
        load_config(write(tmp_path, ""), environ={variable: f"Evil{char}Bcc: x@example.com"})


def test_sender_addresses_follow_the_subscriber_rules(tmp_path):
    config = load_config(write(tmp_path, 'from_address = "news@b\u00fccher.example"\n'),
                         environ={})
    assert config.sender_domain == "xn--bcher-kva.example"
    for value, fragment in [("Editors <e@example.com>", "bare address"),
                            ("jos\u00e9@example.com", "not an email address"),
                            ("e@example..com", "not an email address")]:
        with pytest.raises(ConfigError, match=fragment):
            load_config(write(tmp_path, f'reply_to = "{value}"\n'), environ={})


def test_an_empty_name_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="'name' must not be empty"):
        load_config(write(tmp_path, 'name = " "\n'), environ={})
