"""The spam score: SpamAssassin's report parsed, findings from it, spamc first, then the command.

The report fixtures are real SpamAssassin 4.0 output. The last tests run the real spamd and
spamassassin; they are skipped when SpamAssassin is not installed, except in CI.
"""

import os
import queue
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from newsletter.preflight.spam import (
    SpamAssassin,
    SpamResult,
    SpamUnavailable,
    check_spam,
    parse_report,
    spam_findings,
)

DATA = Path(__file__).parent / "data" / "preflight"
GTUBE = Path("/usr/share/doc/spamassassin/examples/sample-spam.txt")
CLEAN = (
    "From: Bücher <redaktion@example.com>\r\nTo: jose@example.com\r\n"
    "Subject: =?utf-8?q?Jos=C3=A9=E2=80=99s_notes?=\r\nDate: Mon, 16 Nov 2026 08:00:00 +0000\r\n"
    "Message-ID: <2026-W47.1.c6ea0d9443@example.com>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "Hi José, here are this week’s notes on evaluation suites and small models.\r\n"
).encode()


def codes(findings):
    return [(f.severity.value, f.code) for f in findings]


def test_parse_spamc_report_with_a_four_digit_score():
    result = parse_report((DATA / "spamc-gtube.txt").read_text(encoding="utf-8"), "spamc")
    assert (result.score, result.threshold, result.tool) == (1000.0, 5.0, "spamc")
    assert [(h.name, h.points) for h in result.hits] == \
        [("NO_RECEIVED", -0.0), ("GTUBE", 1000.0), ("NO_RELAYS", -0.0)]
    assert result.hits[1].description == "BODY: Generic Test for Unsolicited Bulk Email"


def test_parse_the_report_after_the_message_and_join_wrapped_descriptions():
    output = (DATA / "spamassassin-low-contrast.txt").read_text(encoding="utf-8")
    result = parse_report(output)
    assert result.score == 0.7
    assert result.hits[-1].name == "HTML_FONT_LOW_CONTRAST"
    assert result.hits[-1].description == \
        "BODY: HTML font color similar or identical to background"


def test_output_without_a_report_is_refused():
    with pytest.raises(ValueError, match="no SpamAssassin report"):
        parse_report("0/0\n")


def result(score, *hits):
    return SpamResult(score, 5.0, tuple(hits), "spamc")


def test_a_positive_score_is_a_warning_with_each_rule_that_added_points():
    output = (DATA / "spamassassin-low-contrast.txt").read_text(encoding="utf-8")
    findings = spam_findings(parse_report(output))
    assert codes(findings) == [("warning", "spam.score"), ("warning", "spam.rule")]
    assert findings[0].message.startswith("SpamAssassin scores it 0.7 (5.0 is spam;")
    assert "NO_RECEIVED, NO_RELAYS, HTML_MESSAGE" in findings[0].message
    assert findings[1].message == ("HTML_FONT_LOW_CONTRAST (+0.7): BODY: HTML font color "
                                   "similar or identical to background")


def test_a_spam_score_is_an_error_and_zero_or_less_is_a_note():
    gtube = parse_report((DATA / "spamc-gtube.txt").read_text(encoding="utf-8"), "spamc")
    assert codes(spam_findings(gtube)) == [("error", "spam.score"), ("warning", "spam.rule")]
    [clean] = spam_findings(result(-0.0))
    assert clean.code == "spam.score" and clean.message.startswith("SpamAssassin scores it 0.0")


class FakeTools:
    """Stands in for shutil.which and subprocess.run; records each command."""

    def __init__(self, installed, answers):
        self.installed, self.answers, self.commands = installed, answers, []

    def which(self, name):
        return f"/usr/bin/{name}" if name in self.installed else None

    def run(self, args, **kwargs):
        self.commands.append(args)
        returncode, stdout = self.answers[Path(args[0]).name]
        return subprocess.CompletedProcess(args, returncode, stdout, b"")


REPORT = (DATA / "spamc-gtube.txt").read_bytes()


def test_spamc_is_used_when_spamd_answers():
    tools = FakeTools({"spamc", "spamassassin"}, {"spamc": (0, REPORT)})
    scorer = SpamAssassin(host="127.0.0.1", port=7830, which=tools.which, run=tools.run)
    assert scorer(CLEAN).tool == "spamc"
    [command] = tools.commands
    assert command[:7] == ["/usr/bin/spamc", "-R", "-x", "-d", "127.0.0.1", "-p", "7830"]


def test_without_spamd_the_spamassassin_command_runs_with_local_rules_only():
    tools = FakeTools({"spamc", "spamassassin"}, {"spamc": (69, b"0/0\n"),
                                                  "spamassassin": (0, REPORT)})
    scored = SpamAssassin(which=tools.which, run=tools.run)(CLEAN)
    assert scored.tool == "spamassassin" and scored.score == 1000.0
    assert tools.commands[1][:2] == ["/usr/bin/spamassassin", "-L"]


def test_neither_installed_is_a_note_not_an_error():
    tools = FakeTools(set(), {})
    findings = check_spam(CLEAN, SpamAssassin(which=tools.which, run=tools.run))
    assert codes(findings) == [("note", "spam.unavailable")]
    assert "apt-get install spamassassin" in findings[0].fix


def test_a_failing_spamassassin_is_a_warning():
    tools = FakeTools({"spamassassin"}, {"spamassassin": (2, b"")})
    findings = check_spam(CLEAN, SpamAssassin(which=tools.which, run=tools.run))
    assert codes(findings) == [("warning", "spam.failed")]
    assert "exited 2" in findings[0].message


def test_a_scorer_that_raises_unavailable_is_reported_as_such():
    def missing(message):
        raise SpamUnavailable("no spamc here")

    assert codes(check_spam(CLEAN, missing)) == [("note", "spam.unavailable")]


# -- the real SpamAssassin -------------------------------------------------------------------

def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is required in CI "
                        "(Debian: apt-get install spamassassin spamc spamd)")
        pytest.skip(f"{tool} is not installed")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def spamd():
    path = require("spamd")
    require("spamc")
    port = free_port()
    args = [path, "-L", "-x", "-i", "127.0.0.1", "-A", "127.0.0.1", "-p", str(port),
            "-m", "1", "--min-children=1", "--max-spare=1", "--syslog=stderr"]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr] + [lines.put(None)],
                     daemon=True).start()
    seen = []
    try:
        while True:  # until spamd says it is listening (or gives up)
            line = lines.get(timeout=120)
            if line is None:
                pytest.fail("spamd exited:\n" + "".join(seen))
            seen.append(line)
            if "server successfully spawned child" in line:
                break
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_real_spamd_scores_a_clean_message(spamd):
    scored = SpamAssassin(port=spamd)(CLEAN)
    assert scored.tool == "spamc"
    assert scored.score <= 0.0 and scored.threshold == 5.0
    assert "NO_RECEIVED" in [h.name for h in scored.hits]


def test_the_real_spamassassin_command_flags_gtube_when_no_spamd_answers():
    require("spamassassin")
    if not GTUBE.is_file():
        pytest.skip("SpamAssassin's sample-spam.txt is not installed")
    scored = SpamAssassin(port=free_port())(GTUBE.read_bytes())
    assert scored.tool == "spamassassin"
    assert scored.score >= 1000 and "GTUBE" in [h.name for h in scored.hits]
    assert codes(spam_findings(scored))[0] == ("error", "spam.score")
