"""`make bench`'s table (bench/run_all.py) and the figures the scripts record
(bench/figures.py), on synthetic figures: no benchmark is run, nothing is timed."""

from __future__ import annotations

import json

import pytest

from bench import run_all
from bench.figures import ENV, figure, table_judges
from bench.run_all import FAIL, FAILED, MISS, OK, Row, judge, rows_of, table


@pytest.mark.parametrize(("value", "verdict"), [
    (2_500, OK), (2_000, OK),        # at or past the target
    (1_999, MISS), (1_400, MISS),    # short by up to 30 %, exactly 30 % included
    (1_399, FAIL), (0, FAIL),        # short by more
    (None, FAIL), (float("nan"), FAIL),
])
def test_a_higher_is_better_figure_is_judged_against_its_target(value, verdict):
    assert judge(value, 2_000, "higher") == verdict


@pytest.mark.parametrize(("value", "verdict"), [
    (0.0, OK), (150, OK),
    (151, MISS), (195, MISS),        # 195 us is exactly 30 % over 150 us
    (195.5, FAIL), (1e6, FAIL),
    (None, FAIL), (float("inf"), FAIL),
])
def test_a_lower_is_better_figure_is_judged_against_its_target(value, verdict):
    assert judge(value, 150, "lower") == verdict


@pytest.mark.parametrize("value", [0.7 * 0.01, 0.01 * 1.3])
def test_exactly_thirty_percent_stays_a_miss_in_floating_point(value):
    better = "higher" if value < 0.01 else "lower"
    assert judge(value, 0.01, better) == MISS


def test_a_figure_without_a_target_has_no_verdict_and_never_fails():
    rows = rows_of("bench_dkim", [{"name": "DKIM signature alone", "value": 512.5,
                                   "unit": "us/message", "target": None,
                                   "better": "lower"}], 0)
    assert rows[0].verdict == "" and rows[0].ratio is None
    assert not run_all.failing(rows)
    assert "1 figures: 1 without target -> ok" in table(rows)


def test_the_table_shows_each_figure_beside_its_target_with_the_ratio_and_verdict():
    rows = [
        Row("bench_import", "import of 100,000 rows", 4.2, "s", 10.0, "lower"),
        Row("bench_web", "sqlite: one-click unsubscribe POSTs", 450.0, "req/s", 500, "higher"),
        Row("bench_web", "postgresql: “José”’s archive on bücher.example", 650.0, "req/s",
            1_000, "higher"),
    ]
    lines = table(rows).splitlines()
    assert lines[0].split() == ["figure", "value", "unit", "target", "ratio", "verdict"]
    assert lines[2] == "bench_import"
    assert lines[3].split()[-6:] == ["4.20", "s", "<=", "10", "0.42", "ok"]
    assert lines[4] == "bench_web"
    assert lines[5].split()[-6:] == ["450", "req/s", ">=", "500", "0.90", "miss"]
    assert lines[6].split()[-6:] == ["650", "req/s", ">=", "1,000", "0.65", "FAIL"]
    assert "bücher.example" in lines[6]
    assert lines[-1] == "3 figures: 1 ok, 1 miss, 1 FAIL -> FAIL"
    assert run_all.failing(rows)


def test_misses_within_the_margin_do_not_fail_the_run():
    rows = [Row("bench_metrics", "/metrics warm scrape (median)", 12.0, "ms", 10.0, "lower"),
            Row("bench_metrics", "/metrics cold scrape", 900.0, "ms", 2_000.0, "lower")]
    assert not run_all.failing(rows)
    assert table(rows).splitlines()[-1] == "2 figures: 1 ok, 1 miss -> ok"


def test_a_script_that_failed_is_a_failed_row_after_the_figures_it_recorded():
    records = [{"name": "sqlite: webhook events, SendGrid and Mailgun at once",
                "value": 2_400.0, "unit": "events/s", "target": 2_000, "better": "higher"}]
    rows = rows_of("bench_webhooks", records, 1)
    assert [r.verdict for r in rows] == [OK, FAILED]
    assert run_all.failing(rows)
    text = table(rows)
    assert "failed (exit 1)" in text
    assert text.splitlines()[-1] == "1 figures: 1 ok; 1 script failed -> FAIL"


def test_figure_prints_the_scripts_line_and_records_nothing_when_run_alone(
        monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(ENV, raising=False)
    figure("import of 100,000 rows", 4.2, "s", target=10, better="lower",
           line="import:      4.20 s  target <= 10 s for 100,000 rows")
    assert capsys.readouterr().out == "import:      4.20 s  target <= 10 s for 100,000 rows\n"
    assert not table_judges()
    assert list(tmp_path.iterdir()) == []


def test_figure_appends_one_json_line_per_figure_when_collected(monkeypatch, tmp_path, capsys):
    path = tmp_path / "figures.jsonl"
    monkeypatch.setenv(ENV, str(path))
    figure("Zoë’s “sign-up” medians apart", 12.5, "%", target=25, better="lower")
    figure("/healthz with 1,500 idle connections", float("inf"), "s", target=2,
           better="lower")
    assert capsys.readouterr().out == ""  # no line given: the script printed its own
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records[0] == {"script": records[0]["script"], "name": "Zoë’s “sign-up” medians apart",
                          "value": 12.5, "unit": "%", "target": 25, "better": "lower"}
    assert records[1]["value"] is None  # never answered: no value, which the table fails
    assert [r.verdict for r in rows_of("bench_x", records, 0)] == [OK, FAIL]
    assert table_judges()


def test_figure_refuses_a_direction_or_target_that_cannot_be_judged():
    with pytest.raises(ValueError, match="better"):
        figure("x", 1.0, "s", better="faster")
    with pytest.raises(ValueError, match="positive"):
        figure("x", 1.0, "s", target=0)


def test_unreadable_figure_lines_are_counted_not_fatal(tmp_path):
    path = tmp_path / "figures.jsonl"
    path.write_text('{"name": "dry run of 10,000", "value": 812.0, "unit": "msg/s"}\n'
                    "not json\n[1, 2]\n", encoding="utf-8")
    records, bad = run_all.read_records(path)
    assert [r["name"] for r in records] == ["dry run of 10,000"] and bad == 2


def test_only_picks_scripts_in_the_make_bench_order_and_refuses_unknown_names(capsys):
    assert run_all.chosen(["bench_web.py", "personalize"]) == ["bench_personalize",
                                                               "bench_web"]
    assert run_all.chosen(None) == list(run_all.SCRIPTS)
    with pytest.raises(SystemExit, match="no benchmark bench_nope"):
        run_all.chosen(["nope"])
    assert run_all.main(["--list", "--only", "web", "dkim"]) == 0
    assert capsys.readouterr().out == "bench_web\nbench_dkim\n"
