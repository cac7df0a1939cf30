"""``log_format = "json"``: the formatter on its own, the config key, the web server's loggers
through the handler ``setup_logging`` installs, and a real ``newsletter send`` whose every
stderr line is a JSON object naming the week."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.cli.output import HANDLER_NAME, setup_logging
from newsletter.config import load_config
from newsletter.errors import ConfigError
from newsletter.logs import JsonFormatter, LogContext, about

ROOT = Path(__file__).resolve().parent.parent
WEEK = "2026-W47"
KEYS = {"time", "level", "logger", "message"}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def record(message: str, *args, level: int = logging.INFO, exc_info=None,
           **extra) -> logging.LogRecord:
    rec = logging.LogRecord("newsletter.send", level, __file__, 1, message, args, exc_info)
    rec.__dict__.update(extra)
    return rec


def formatted(rec: logging.LogRecord) -> str:
    LogContext().filter(rec)
    return JsonFormatter().format(rec)


# -- the formatter ------------------------------------------------------------------------

def test_a_record_is_one_object_with_time_level_logger_and_message():
    line = json.loads(formatted(record("%s: %d sent", WEEK, 3, level=logging.WARNING)))
    assert set(line) == KEYS
    assert TIME.match(line["time"]), line["time"]
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING", "newsletter.send", f"{WEEK}: 3 sent")


def test_newlines_quotes_and_curly_quotes_stay_on_one_readable_line():
    message = 'the editor’s "note"\nsecond line\r\nthird\u2028fourth'
    text = formatted(record(message))
    assert len(text.splitlines()) == 1 and "\n" not in text
    assert "editor’s" in text  # not \u2019: readable as it is
    assert json.loads(text)["message"] == message


def test_an_exception_is_its_traceback_in_exc():
    try:
        raise ValueError("bad “value”")
    except ValueError:
        rec = record("not sent", level=logging.ERROR, exc_info=sys.exc_info())
    text = formatted(rec)
    line = json.loads(text)
    assert len(text.splitlines()) == 1
    assert line["message"] == "not sent"
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad “value”" in line["exc"]


def test_week_and_send_come_from_the_context_or_the_call_and_only_when_set():
    assert "week" not in json.loads(formatted(record("idle")))
    with about(WEEK):
        assert {"week": WEEK}.items() <= json.loads(formatted(record("start"))).items()
        with about(WEEK, 7):
            line = json.loads(formatted(record("batch")))
            assert (line["week"], line["send"]) == (WEEK, 7)
        assert "send" not in json.loads(formatted(record("after")))
    line = json.loads(formatted(record("given", week="2026-W48", send=9)))
    assert (line["week"], line["send"]) == ("2026-W48", 9)
    assert not {"week", "send"} & set(json.loads(formatted(record("idle again"))))


# -- the config key -----------------------------------------------------------------------

def test_the_key_defaults_to_text_and_takes_json(tmp_path):
    path = tmp_path / "newsletter.toml"
    path.write_text("", encoding="utf-8")
    assert load_config(path, environ={}).log_format == "text"
    assert load_config(path, environ={"NEWSLETTER_LOG_FORMAT": "json"}).log_format == "json"
    path.write_text('log_format = "json"\n', encoding="utf-8")
    assert load_config(path, environ={}).log_format == "json"


@pytest.mark.parametrize(("text", "environ"), [
    ('log_format = "xml"\n', {}),
    ("", {"NEWSLETTER_LOG_FORMAT": "xml"}),
])
def test_another_format_is_a_one_line_error_naming_the_key(tmp_path, text, environ):
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ)
    message = str(caught.value)
    assert "log_format" in message and "'xml'" in message and "\n" not in message


# -- the handler the long-running commands install ---------------------------------------

@pytest.fixture
def root_restored():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_web_servers_lines_come_out_as_json(root_restored, capsys):
    setup_logging(log_format="json")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("newsletter.web.access").info("GET /unsubscribe/[token] 200 1.2ms")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(x["logger"], x["level"]) for x in lines] == [
        ("uvicorn.error", "INFO"), ("newsletter.web.access", "INFO"), ("uvicorn.error", "ERROR")]
    assert lines[0]["message"] == "Started server process [42]"
    assert "RuntimeError: boom" in lines[2]["exc"]
    assert all(set(x) >= KEYS for x in lines)


def test_text_stays_as_it_was(root_restored, capsys):
    setup_logging()
    with about(WEEK, 1):
        logging.getLogger("newsletter.send").info("%s: sent", WEEK)
    err = capsys.readouterr().err
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} INFO 2026-W47: sent\n", err), err
    [handler] = [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]
    assert not isinstance(handler.formatter, JsonFormatter)


# -- end to end ---------------------------------------------------------------------------

def newsletter(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``newsletter ARGS`` in a process of its own, importing this checkout's package."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("NEWSLETTER_") or k.startswith("NEWSLETTER_TEST")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                          environ.get("PYTHONPATH")]))
    environ.update(env)
    boot = "from newsletter.cli.main import cli; cli.main(prog_name='newsletter')"
    return subprocess.run([sys.executable, "-c", boot, *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, encoding="utf-8", timeout=120,
                          stdin=subprocess.DEVNULL)


def test_a_send_logs_json_lines_that_name_the_week(project):
    database_url = f"sqlite:///{project / 'subscribers' / 'jsonlog.db'}"
    env = {"NEWSLETTER_DATABASE_URL": database_url}
    imported = newsletter(["subscribers", "import", "subscribers/sample.csv"], project, **env)
    assert imported.returncode == 0, imported.stderr
    sent = newsletter(["send", "--week", WEEK], project, NEWSLETTER_LOG_FORMAT="json", **env)
    assert sent.returncode == 0, sent.stderr
    assert f"{WEEK}: " in sent.stdout and " sent" in sent.stdout  # the summary stays text
    lines = [json.loads(line) for line in sent.stderr.splitlines()]
    assert lines, "no log line"
    assert all(set(line) >= KEYS and TIME.match(line["time"]) for line in lines)
    progress = [line for line in lines if line["message"].startswith(f"{WEEK}: ")]
    assert progress and all(line["week"] == WEEK and isinstance(line["send"], int)
                            for line in progress)


def test_every_line_of_a_worker_run_names_its_week(project, root_restored, capsys):
    from newsletter.worker.job import Worker

    config = load_config(project / "newsletter.toml", environ={
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{project / 'subscribers' / 'worker.db'}",
        "NEWSLETTER_LOG_FORMAT": "json"})

    def send(config, week, options, *, stop_event):  # stands in for the send's own lines
        logging.getLogger("newsletter.send").info("%s: a batch", week)

    setup_logging(log_format=config.log_format)
    Worker(config, send=send).run_week(WEEK)
    logging.getLogger("newsletter.worker").info("between runs")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    lines = [x for x in lines if x["logger"].startswith("newsletter.")]  # not the migrations
    run, after = lines[:-1], lines[-1]
    assert [x["message"] for x in run] == [
        f"{WEEK}: sending", f"{WEEK}: a batch", f"{WEEK}: already sent; nothing to do"]
    assert all(x["week"] == WEEK for x in run)
    assert "week" not in after


def test_a_failed_command_ends_on_a_json_line_too(project):
    """A send that stops on an error says why in the same format as the rest of its lines."""
    database_url = f"sqlite:///{project / 'subscribers' / 'jsonerr.db'}"
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_LOG_FORMAT": "json"}
    failed = newsletter(["send", "--week", "2026-W01"], project, **env)  # no such week
    assert failed.returncode == 1
    *_, last = [json.loads(line) for line in failed.stderr.splitlines()]
    assert last["level"] == "ERROR" and "2026-W01" in last["message"]
    assert not last["message"].startswith("error:")

    text = newsletter(["send", "--week", "2026-W01"], project,
                      NEWSLETTER_DATABASE_URL=database_url)
    assert text.returncode == 1 and text.stderr.splitlines()[-1].startswith("error: ")
