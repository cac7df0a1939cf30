"""The monitoring profile's files, checked without Docker (test-compose starts Prometheus for
real, but not Grafana, which has no Debian package to build a local image from).

The Grafana dashboard is well formed and every PromQL expression in it names only series that
``GET /metrics`` really exports (read from the app's own ``Metrics`` registry, every family
filled) or that Prometheus makes itself (``up``), with labels those series carry; the
provisioning points Grafana at the profile's Prometheus and at the dashboard's folder; the
scrape configuration reads the bearer token from the file the entry point writes, never from
the repository; and docker-compose.yml keeps both services behind the profile, on loopback.
"""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from newsletter.delivery.beats import Beat
from newsletter.delivery.states import DeliveryStatus, SendStatus
from newsletter.delivery.totals import Totals
from newsletter.feedback.events import EventKind
from newsletter.web import metrics as metrics_module
from newsletter.web.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "newsletter.json"
DATASOURCES = DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DOCKER / "grafana" / "provisioning" / "dashboards" / "newsletter.yml"
PROMETHEUS = DOCKER / "prometheus" / "prometheus.yml"
ENTRYPOINT = DOCKER / "prometheus" / "entrypoint.sh"

# Series Prometheus adds to every target itself, and the labels it attaches.
PROMETHEUS_OWN = {"up": set()}
TARGET_LABELS = {"job", "instance"}
# Every family with at least one sample, so each shows its labels.
FULL = Totals(
    sends={s.value: 1 for s in SendStatus}, deliveries={d.value: 2 for d in DeliveryStatus},
    sent={"postmark": 3}, errors={("postmark", "HardBounce"): 1},
    events={k.value: 1 for k in EventKind}, brake_paused=1, outbox_pending=2,
    last_heartbeat=datetime(2026, 11, 16, 8, 0, tzinfo=UTC), stalled=1,
    worker_beat=datetime(2026, 11, 16, 8, 1, tzinfo=UTC),
    mailbox_poll=Beat("mailbox", datetime(2026, 11, 16, 8, 2, tzinfo=UTC), ok=True),
    clicks={"counted": 5, "filtered": 2})
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"), "info": ("_info",)}


def _load_checks():
    spec = importlib.util.spec_from_file_location("nl_checks", DOCKER / "ci" / "checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dashboard_queries = _load_checks().dashboard_queries


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Each series name ``/metrics`` exports -> the label names it carries."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics_module, "read_totals", lambda engine, stall_after=None: FULL)
        metrics = Metrics("token-“x”", engine=None)  # the engine is only read_totals'
        metrics.requests.observe({"type": "http", "method": "GET"}, 200, 0.01)
        text = metrics.render().decode("utf-8")
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES[family.type]:
            found.setdefault(family.name + suffix, set())
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(panels: list[dict]) -> list[dict]:
    return [p for panel in panels for p in [panel, *_panels(panel.get("panels", []))]]


# --- PromQL, read as far as the check needs ---------------------------------------------------

WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
         "group_left", "group_right", "inf", "nan"}
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def _strip(expr: str) -> str:
    """``expr`` without string literals and range or subquery durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return re.sub(r"\[[^\]]*\]", "", expr)


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) for each series selector of ``expr``."""
    text = GROUPING.sub("", _strip(expr))
    found = []
    # Not in the middle of a number or a duration (``0.95``, ``offset 1h``).
    for match in re.finditer(rf"(?<![\w.])({NAME})\s*(\{{[^}}]*\}})?", text):
        name, braces = match.group(1), match.group(2)
        rest = text[match.end():].lstrip()
        if name.lower() in WORDS or (rest.startswith("(") and not braces):
            continue  # a keyword, or a function or aggregation's name
        labels = set(re.findall(rf"({NAME})\s*(?:=~|!~|!=|=)", braces or ""))
        found.append((name, labels))
    return found


def grouping_labels(expr: str) -> set[str]:
    return {label.strip() for group in GROUPING.findall(_strip(expr))
            for label in group.split(",") if label.strip()}


def test_the_reader_finds_names_labels_and_groupings():
    expr = ('histogram_quantile(0.95, sum by (route, le) (rate(x_bucket{route="/a b",'
            'status=~"5.."}[5m]))) / on(job) up and max without (code) (y) offset 1h')
    assert selectors(expr) == [("x_bucket", {"route", "status"}), ("up", set()),
                               ("y", set())]
    assert grouping_labels(expr) == {"route", "le", "job", "code"}


# --- the dashboard -----------------------------------------------------------------------------

def test_the_dashboard_is_a_grafana_dashboard():
    dashboard = _dashboard()
    assert dashboard["uid"] == "newsletter" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    panels = _panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        assert panel["type"] and panel["title"], panel
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
    queried = [p for p in panels if p["type"] != "row"]
    assert queried and all(p.get("targets") for p in queried)


def test_every_query_names_only_series_the_app_exports(exported):
    known = {**exported, **PROMETHEUS_OWN}
    for title, expr in dashboard_queries(DASHBOARD):
        found = selectors(expr)
        assert found, f"{title!r}: no series in {expr!r}"
        for name, labels in found:
            assert name in known, f"{title!r}: {name} is not exported by /metrics"
            unknown = labels - known[name] - TARGET_LABELS
            assert not unknown, f"{title!r}: {name} has no label {sorted(unknown)}"
        carried = set().union(*(known[name] for name, _ in found)) | TARGET_LABELS
        if any(name.endswith("_bucket") for name, _ in found):
            carried.add("le")
        assert grouping_labels(expr) <= carried, f"{title!r}: grouped by a missing label"


def test_the_dashboard_shows_what_an_operator_watches(exported):
    used = {name for _, expr in dashboard_queries(DASHBOARD) for name, _ in selectors(expr)}
    database = {name for name in exported if not name.startswith("newsletter_http_")
                and not name.endswith("_created")}
    assert database <= used, f"not on the dashboard: {sorted(database - used)}"
    assert {"newsletter_http_requests_total",
            "newsletter_http_request_duration_seconds_bucket", "up"} <= used


def test_event_kinds_in_the_dashboard_are_event_kinds():
    kinds = {k.value for k in EventKind}
    matchers = [m for _, expr in dashboard_queries(DASHBOARD)
                for m in re.findall(r'kind\s*=~?\s*"([^"]*)"', expr)]
    assert matchers
    for alternatives in matchers:
        assert set(alternatives.split("|")) <= kinds, alternatives


def test_panels_ask_the_provisioned_data_source():
    source = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"][0]
    dashboard = _dashboard()
    variable = {v["name"]: v for v in dashboard["templating"]["list"]}["datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    assert variable["current"]["value"] == source["uid"]
    for panel in _panels(dashboard["panels"]):
        for holder in [panel, *panel.get("targets", [])]:
            if "datasource" in holder:
                assert holder["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


# --- provisioning, scrape configuration, compose -----------------------------------------------

def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    found = {}
    for volume in service["volumes"]:
        host, container, *_ = volume.split(":")
        if host.startswith("./"):
            found[container] = host[2:]
    return found


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard():
    sources = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    assert sources["apiVersion"] == 1
    [source] = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text(encoding="utf-8"))
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    mounts = _mounts(_compose()["services"]["grafana"])
    # The provider's folder is where compose mounts docker/grafana/dashboards.
    assert mounts[provider["options"]["path"]] == "docker/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "docker/grafana/provisioning"
    assert (ROOT / mounts[provider["options"]["path"]] / DASHBOARD.name).is_file()


def test_prometheus_scrapes_web_with_the_token_from_a_file_only():
    text = PROMETHEUS.read_text(encoding="utf-8")
    [job] = yaml.safe_load(text)["scrape_configs"]
    assert job["job_name"] == "newsletter"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["web:8000"]}]
    auth = job["authorization"]
    assert set(auth) == {"type", "credentials_file"} and auth["type"] == "Bearer"
    # The file the entry point writes, on the tmpfs compose gives the container.
    default = re.search(r'METRICS_TOKEN_FILE:-([^}"]+)', ENTRYPOINT.read_text()).group(1)
    assert auth["credentials_file"] == default
    prometheus = _compose()["services"]["prometheus"]
    assert str(Path(default).parent) in prometheus["tmpfs"]
    assert any('up{job="newsletter"}' in expr for _, expr in dashboard_queries(DASHBOARD))


def test_the_monitoring_services_stay_behind_the_profile_on_loopback():
    compose = _compose()
    services = compose["services"]
    prometheus = services["prometheus"]
    mounts = _mounts(prometheus)
    config = next(arg.split("=", 1)[1] for arg in prometheus["command"]
                  if arg.startswith("--config.file="))
    assert mounts[str(Path(config).parent)] == "docker/prometheus"
    assert prometheus["entrypoint"][-1] == str(Path(config).parent / ENTRYPOINT.name)
    assert prometheus["environment"] == {
        "NEWSLETTER_METRICS_TOKEN": "${NEWSLETTER_METRICS_TOKEN:-}"}
    assert prometheus["depends_on"] == ["web"]
    for name in ("prometheus", "grafana"):
        service = services[name]
        assert service["profiles"] == ["monitoring"]
        image, _, tag = service["image"].partition(":")
        assert image in {"prom/prometheus", "grafana/grafana-oss"}
        assert tag and tag != "latest", f"{name}: pin a version"
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), name
        data = [v.split(":")[0] for v in service["volumes"] if not v.startswith(".")]
        assert data and set(data) <= set(compose["volumes"]), name
