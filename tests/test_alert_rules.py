"""The alerts (monitoring/alerts.yml) and what runs them: Prometheus's and Alertmanager's own
checkers on every config, the rules' unit tests, the runbook, and how the demo (Procfile) and
compose wire it all. docs/alerting.md says what each alert means.

promtool and amtool come with Debian's prometheus and prometheus-alertmanager packages, which
`make bootstrap` installs as root (scripts/ensure-prometheus.sh). Where they are missing, the
tests that need them are skipped, saying so; under CI=true they fail instead.
"""

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

import monitoring
from testkit.faults import free_port
from testkit.monitoring import Alertmanager, Prometheus, procfile_options, rules_with_for
from testkit.processes import ROOT, wait_for
from tests.components import missing
from tests.test_deployment import compose_services, mounts, rabbitmq_node_services

RUNBOOK = ROOT / "docs" / "alerting.md"
COMPOSE_PROMETHEUS = monitoring.HERE / "prometheus.compose.yml"
COMPOSE_ALERTMANAGER = monitoring.HERE / "alertmanager.compose.yml"


def program(name):
    """The path of promtool, amtool, prometheus or alertmanager, or skip (fail under CI)."""
    path = monitoring.find_program(name)
    if path is None:
        missing(name, "sudo scripts/ensure-prometheus.sh (Debian's prometheus packages)")
    return path


def run(*args, check=True):
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def alert_rules(path=monitoring.ALERT_RULES):
    rules = monitoring.load(path)
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def seconds(duration):
    """Seconds of a Prometheus duration: 2m, 1h30m, 0s, 2d."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def github_anchor(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# --- Prometheus's config and rules, as promtool sees them ---------------------------------


def test_promtool_accepts_the_demos_prometheus_config_and_its_rules():
    result = run(program("promtool"), "check", "config", str(monitoring.PROMETHEUS_CONFIG))
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_promtool_accepts_composes_prometheus_config(tmp_path):
    # It reads the shop's token from a file the container writes at start: here, a test one.
    config = monitoring.load(COMPOSE_PROMETHEUS)
    token = tmp_path / "metrics-token"
    token.write_text("test-token")
    (shop,) = [job for job in config["scrape_configs"] if job["job_name"] == "shop"]
    assert shop["authorization"] == {"credentials_file": "/prometheus/metrics-token"}
    shop["authorization"]["credentials_file"] = str(token)
    config["rule_files"] = [str(monitoring.ALERT_RULES)]
    path = monitoring.write(config, tmp_path / "prometheus.yml")
    result = run(program("promtool"), "check", "config", str(path))
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_promtool_accepts_the_config_testkit_renders_for_other_ports(tmp_path):
    program("prometheus")  # testkit's Prometheus finds it when it is made
    prometheus = Prometheus(
        free_port(),
        tmp_path / "prometheus",
        shop="127.0.0.1:18000",
        rabbitmq=["127.0.0.1:15692", "127.0.0.1:15693"],
        flower="127.0.0.1:15555",
        alertmanager="127.0.0.1:19093",
        shop_token="test-token",
        interval="1s",
    )
    run(program("promtool"), "check", "config", str(prometheus.config_path))
    config = monitoring.load(prometheus.config_path)
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert targets == {
        "shop": ["127.0.0.1:18000"],
        "rabbitmq": ["127.0.0.1:15692", "127.0.0.1:15693"],
        "flower": ["127.0.0.1:15555"],
    }
    (shop,) = [job for job in config["scrape_configs"] if job["job_name"] == "shop"]
    token_file = shop["authorization"]["credentials_file"]
    assert Path(token_file).read_text() == "test-token"
    assert os.stat(token_file).st_mode & 0o077 == 0
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "1s"
    # The Procfile's options, with this test's files and port.
    args = prometheus.args
    assert monitoring.option(args, "storage.tsdb.retention.time") == "2d"
    assert monitoring.option(args, "web.listen-address") == f"127.0.0.1:{prometheus.port}"
    assert monitoring.option(args, "storage.tsdb.path") == str(tmp_path / "prometheus" / "data")


def test_the_alert_rules_are_valid_and_lint_clean():
    result = run(program("promtool"), "check", "rules", "--lint=all", "--lint-fatal",
                 str(monitoring.ALERT_RULES))  # fmt: skip
    assert f"SUCCESS: {len(monitoring.load(monitoring.ALERT_RULES)['groups'][0]['rules'])}" in (
        result.stdout
    )


def test_every_alert_passes_its_unit_tests():
    """monitoring/alerts_test.yml: each alert fires after its `for` with the labels and
    annotations expected, and stays quiet where it should (a blip, too few jobs, a deploy...)."""
    result = run(program("promtool"), "test", "rules", str(monitoring.ALERT_RULE_TESTS))
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_not_firing():
    tests = monitoring.load(monitoring.ALERT_RULE_TESTS)["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for rule in alert_rules():
        name = rule["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        firing = [case for case in mine if case.get("exp_alerts")]
        assert firing, f"no unit test shows {name} firing"
        assert any(not case.get("exp_alerts") for case in mine), f"{name}: never shown quiet"
        for case in firing:
            for alert in case["exp_alerts"]:
                # Every label and annotation is pinned, not just some.
                assert alert["exp_labels"]["severity"] == rule["labels"]["severity"], name
                assert set(alert["exp_annotations"]) == set(rule["annotations"]), name


@pytest.mark.parametrize(
    "name", [rule["alert"] for rule in alert_rules() if seconds(rule.get("for", "0s"))]
)
def test_each_alerts_for_is_pinned_by_its_unit_tests(tmp_path, name):
    """With its `for` taken away, the alert fires too soon for its unit tests: they show it
    pending before it fires, not only firing at the end."""
    rules = monitoring.load(monitoring.ALERT_RULES)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                rule["for"] = "0s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    shutil.copy(monitoring.ALERT_RULE_TESTS, tmp_path / "alerts_test.yml")
    result = run(program("promtool"), "test", "rules", str(tmp_path / "alerts_test.yml"),
                 check=False)  # fmt: skip
    assert result.returncode != 0, f"{name} without its `for` still passes every unit test"
    assert f"alertname: {name}," in result.stdout + result.stderr


def test_every_alert_says_how_bad_what_and_where_its_runbook_is():
    headings = re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), re.M)
    anchors = {github_anchor(heading) for heading in headings}
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    assert {"DeadLettersGrowing", "JobsWaitingTooLong", "QueueWithoutConsumer",
            "JobFailureRateHigh", "RabbitMQMemoryAlarm", "RabbitMQDiskAlarm", "WorkerGone",
            "ShopMetricsDown"} <= set(names)  # fmt: skip
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/alerting.md", name
        assert anchor in anchors, f"{name}: docs/alerting.md has no heading #{anchor}"


# --- Alertmanager's configs ---------------------------------------------------------------


def test_amtool_accepts_every_alertmanager_config(tmp_path):
    amtool = program("amtool")
    rendered = monitoring.write(
        monitoring.alertmanager_config(
            smarthost="127.0.0.1:2525", webhook_url="https://hooks.example/alerts?key=s3cret"
        ),
        tmp_path / "alertmanager.yml",
    )
    for path in (monitoring.ALERTMANAGER_CONFIG, COMPOSE_ALERTMANAGER, rendered):
        result = run(amtool, "check-config", str(path))
        assert "SUCCESS" in result.stdout
    for path in (monitoring.ALERTMANAGER_CONFIG, COMPOSE_ALERTMANAGER):
        config = monitoring.load(path)
        assert config["global"]["smtp_require_tls"] is False  # the sink speaks plain SMTP
        (ops,) = config["receivers"]
        assert config["route"]["receiver"] == ops["name"]
        assert ops["email_configs"] == [{"to": "ops@shop.example", "send_resolved": True}]
        assert "alerts@shop.example" in config["global"]["smtp_from"]
    (ops,) = monitoring.load(rendered)["receivers"]
    assert ops["webhook_configs"] == [
        {"url": "https://hooks.example/alerts?key=s3cret", "send_resolved": True}
    ]
    assert rendered.stat().st_mode & 0o077 == 0  # the URL may carry a key


def test_the_compose_configs_are_the_demos_with_compose_addresses():
    """Kept alike by hand; this says where they drift."""

    def where_things_are_left_out(config):
        for job in config.get("scrape_configs", []):
            job.pop("static_configs")
            job.pop("authorization", None)
        config.get("alerting", {}).pop("alertmanagers", None)
        config.get("global", {}).pop("smtp_smarthost", None)
        return config

    for demo, compose in (
        (monitoring.PROMETHEUS_CONFIG, COMPOSE_PROMETHEUS),
        (monitoring.ALERTMANAGER_CONFIG, COMPOSE_ALERTMANAGER),
    ):
        assert where_things_are_left_out(monitoring.load(compose)) == where_things_are_left_out(
            monitoring.load(demo)
        ), f"{compose.name} differs from {demo.name} in more than addresses"


# --- How the demo and compose run them ----------------------------------------------------


def test_the_procfile_runs_them_from_this_checkout_with_their_data_in_var():
    prometheus = procfile_options("prometheus")
    assert monitoring.option(prometheus, "config.file") == "monitoring/prometheus.yml"
    assert monitoring.option(prometheus, "storage.tsdb.path") == "var/prometheus"
    assert monitoring.option(prometheus, "web.listen-address") == "127.0.0.1:9090"
    # The dashboard shows 24 hours from it.
    assert seconds(monitoring.option(prometheus, "storage.tsdb.retention.time")) >= 86400
    alertmanager = procfile_options("alertmanager")
    assert monitoring.option(alertmanager, "config.file") == "monitoring/alertmanager.yml"
    assert monitoring.option(alertmanager, "storage.path") == "var/alertmanager"
    assert monitoring.option(alertmanager, "web.listen-address") == "127.0.0.1:9093"
    assert monitoring.option(alertmanager, "cluster.listen-address") == ""  # no :9094
    for config in ("monitoring/prometheus.yml", "monitoring/alertmanager.yml"):
        assert (ROOT / config).is_file()
    # The demo's Prometheus scrapes what the Procfile runs, where it runs it.
    procfile = (ROOT / "Procfile").read_text()
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"]
        for job in monitoring.load(monitoring.PROMETHEUS_CONFIG)["scrape_configs"]
    }
    assert targets["shop"] == ["127.0.0.1:8000"] and "runserver 127.0.0.1:8000" in procfile
    assert targets["flower"] == ["127.0.0.1:5555"] and "--port=5555" in procfile
    assert monitoring.load(monitoring.ALERTMANAGER_CONFIG)["global"]["smtp_smarthost"] == (
        "127.0.0.1:1025"
    )
    # WorkerGone sees a killed worker only once Flower drops its line.
    flower = next(line for line in procfile.splitlines() if line.startswith("flower:"))
    assert "--purge-offline-workers=60" in flower


def test_compose_mounts_the_same_files_and_scrapes_its_own_services():
    services = compose_services()
    prometheus, alertmanager = services["prometheus"], services["alertmanager"]
    for service, config in ((prometheus, COMPOSE_PROMETHEUS), (alertmanager, COMPOSE_ALERTMANAGER)):
        files = mounts(service)
        command = service["command"]
        target = monitoring.option(command, "config.file")
        assert files[target] == f"../monitoring/{config.name}", (target, files)
        for source in files.values():
            if source.startswith("."):
                assert (ROOT / "docker" / source).resolve().exists(), source
    # The one copy of the rules, beside the config that names it relatively.
    files = mounts(prometheus)
    rules_target = monitoring.option(prometheus["command"], "config.file").rsplit("/", 1)[0]
    assert files[f"{rules_target}/alerts.yml"] == "../monitoring/alerts.yml"
    assert monitoring.load(COMPOSE_PROMETHEUS)["rule_files"] == ["alerts.yml"]

    config = monitoring.load(COMPOSE_PROMETHEUS)
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    nodes = sorted(rabbitmq_node_services(services))
    assert targets == {
        "shop": ["web:8000"],
        "rabbitmq": [f"{node}:15692" for node in nodes],
        "flower": ["flower:5555"],
    }
    assert "--bind=0.0.0.0:8000" in services["web"]["command"]
    assert "--port=5555" in services["flower"]["command"]
    assert "web" in services["web"]["environment"]["ALLOWED_HOSTS"].split(",")
    assert "METRICS_TOKEN" in services["web"]["environment"]
    assert services["flower"]["environment"]["FLOWER_PURGE_OFFLINE_WORKERS"] == "60"
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    smarthost = monitoring.load(COMPOSE_ALERTMANAGER)["global"]["smtp_smarthost"]
    sink = services["smtp-sink"]["command"]
    assert smarthost == f"smtp-sink:{sink[sink.index('--port') + 1]}"
    plugin_files = {mounts(services[node])["/etc/rabbitmq/enabled_plugins"] for node in nodes}
    for plugin_file in plugin_files:
        assert "rabbitmq_prometheus" in (ROOT / "docker" / plugin_file).read_text()


def test_composes_prometheus_is_handed_the_shop_token_as_a_file(tmp_path):
    """The container's entrypoint, run here with its paths moved into tmp_path."""
    service = compose_services()["prometheus"]
    shell, flag, script, *args = service["entrypoint"]
    script = script.replace("/prometheus/", f"{tmp_path}/").replace("/bin/prometheus", "echo")
    result = subprocess.run(
        [shell, flag, script, *args, *service["command"]],
        env={"METRICS_TOKEN": "the-token", "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == service["command"]  # handed to the program unchanged
    token = tmp_path / "metrics-token"
    assert token.read_text() == "the-token"
    assert token.stat().st_mode & 0o077 == 0


# --- python -m monitoring, the Procfile's launcher ----------------------------------------


def test_the_launcher_waits_when_the_program_is_missing(tmp_path):
    """honcho would stop the whole demo if this process exited."""
    empty = tmp_path / "bin"
    empty.mkdir()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitoring",
            "prometheus",
            "--config.file=monitoring/prometheus.yml",
        ],
        cwd=ROOT,
        env=dict(os.environ, PATH=str(empty)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.5)
        assert process.poll() is None, process.communicate()[0]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "prometheus is not installed" in output and "ensure-prometheus.sh" in output


def test_the_launcher_adds_alert_webhook_url_to_a_copy_of_the_config(tmp_path):
    # A stand-in for Debian's prometheus-alertmanager: prints the command line it was given.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "prometheus-alertmanager"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    options = procfile_options("alertmanager")
    options = monitoring.with_option(options, "storage.path", tmp_path / "alertmanager")

    def launch(**env):
        return subprocess.run(
            [sys.executable, "-m", "monitoring", "alertmanager", *options],
            cwd=ROOT,
            env=dict(os.environ, PATH=f"{bin_dir}:/usr/bin:/bin", **env),
            capture_output=True,
            text=True,
            timeout=30,
        )

    plain = launch(ALERT_WEBHOOK_URL="")
    assert plain.returncode == 0, plain.stderr
    assert "--config.file=monitoring/alertmanager.yml" in plain.stdout.splitlines()

    with_hook = launch(ALERT_WEBHOOK_URL="https://hooks.example/shop-jobs")
    assert with_hook.returncode == 0, with_hook.stderr
    rendered = tmp_path / "alertmanager" / "alertmanager.yml"
    assert f"--config.file={rendered}" in with_hook.stdout.splitlines()
    (ops,) = monitoring.load(rendered)["receivers"]
    assert ops["webhook_configs"] == [
        {"url": "https://hooks.example/shop-jobs", "send_resolved": True}
    ]
    assert (
        ops["email_configs"]
        == monitoring.load(monitoring.ALERTMANAGER_CONFIG)["receivers"][0]["email_configs"]
    )
    run(program("amtool"), "check-config", str(rendered))


# --- The real programs, as testkit/monitoring.py runs them --------------------------------


class FakeShopMetrics(http.server.BaseHTTPRequestHandler):
    """/metrics as the shop would answer it with the media queue's worker gone."""

    body = (
        b"shopjobs_metrics_scrape_ok 1\n"
        b'shopjobs_queue_consumers{queue="emails"} 8\n'
        b'shopjobs_queue_consumers{queue="media"} 0\n'
    )

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_prometheus_loads_the_rules_and_fires_on_what_it_scrapes(tmp_path):
    program("prometheus")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeShopMetrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = f"127.0.0.1:{free_port()}"  # RabbitMQ and Flower: nothing there
    prometheus = Prometheus(
        free_port(),
        tmp_path / "prometheus",
        shop=f"127.0.0.1:{server.server_port}",
        rabbitmq=closed,
        flower=closed,
        alertmanager=closed,
        interval="1s",
        rules=rules_with_for(tmp_path / "alerts.yml", "2s"),
    ).start()
    try:
        assert set(prometheus.rules()) == {rule["alert"] for rule in alert_rules()}
        alert = prometheus.wait_for_alert("QueueWithoutConsumer", labels={"queue": "media"})
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"] == "docs/alerting.md#queuewithoutconsumer"
        assert {a["labels"].get("queue") for a in prometheus.alerts()
                if a["labels"]["alertname"] == "QueueWithoutConsumer"} == {"media"}  # fmt: skip
        up = {r["metric"]["job"]: r["value"][1] for r in prometheus.query("up")}
        assert up == {"shop": "1", "rabbitmq": "0", "flower": "0"}
    finally:
        prometheus.stop()
        server.shutdown()


def test_alertmanager_mails_an_alert_and_its_resolution_to_the_smtp_sink(tmp_path, smtp_sink):
    program("alertmanager")
    alertmanager = Alertmanager(
        free_port(), tmp_path / "alertmanager", smarthost=f"127.0.0.1:{smtp_sink.port}"
    ).start()
    alert = {
        "labels": {"alertname": "QueueWithoutConsumer", "queue": "media", "severity": "critical"},
        "annotations": {
            "summary": "No worker consumes media",
            "runbook_url": "docs/alerting.md#queuewithoutconsumer",
        },
    }
    try:
        alertmanager.post_alerts(alert)
        (firing,) = wait_for(smtp_sink.messages, timeout=30, message="the alert's email")
        assert firing["to"] == "ops@shop.example"
        assert "alerts@shop.example" in firing["from"]
        assert "FIRING" in firing["subject"] and "QueueWithoutConsumer" in firing["subject"]

        # Ended: send_resolved mails that too.
        alertmanager.post_alerts({**alert, "endsAt": "2000-01-01T00:00:00Z"})
        wait_for(lambda: smtp_sink.count() >= 2, timeout=30, message="the resolved email")
        subjects = [message["subject"] for message in smtp_sink.messages()]
        assert any("RESOLVED" in subject for subject in subjects), subjects
    finally:
        alertmanager.stop()
