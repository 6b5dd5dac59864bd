"""Alerting for Shop Jobs: Prometheus scrapes, Alertmanager mails (docs/alerting.md).

    monitoring/alerts.yml              the alert rules, one copy for every setting
    monitoring/alerts_test.yml         their unit tests (promtool test rules)
    monitoring/prometheus.yml          Prometheus for the demo: this machine's ports
    monitoring/alertmanager.yml        Alertmanager for the demo: mail to the SMTP sink
    monitoring/*.compose.yml           the same for docker/compose.yaml: its services by name
    python -m monitoring prometheus    how the Procfile runs them (monitoring/__main__.py)

This module renders the demo's files for other places and ports (the tests, through
testkit/monitoring.py) and finds the programs. It needs PyYAML, which the demo's and the tests'
virtualenv has; compose does not use it.
"""

import os
import shutil
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ALERT_RULES = HERE / "alerts.yml"
ALERT_RULE_TESTS = HERE / "alerts_test.yml"
PROMETHEUS_CONFIG = HERE / "prometheus.yml"
ALERTMANAGER_CONFIG = HERE / "alertmanager.yml"

# Alertmanager's program is `alertmanager` upstream and in the official image, and
# `prometheus-alertmanager` in Debian's package (scripts/ensure-prometheus.sh).
PROGRAMS = {
    "prometheus": ("prometheus",),
    "alertmanager": ("alertmanager", "prometheus-alertmanager"),
    "promtool": ("promtool",),
    "amtool": ("amtool",),
}


def find_program(name):
    """The path of `name` (a key of PROGRAMS), or None when it is not installed."""
    # Debian installs nothing of these in sbin, but a PATH without /usr/bin... is rare enough;
    # PATH as it is, like the shell of the Procfile.
    for candidate in PROGRAMS[name]:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def load(path):
    return yaml.safe_load(Path(path).read_text())


def write(config, path):
    """Write `config` as YAML; owner-only, since it may carry a webhook URL with a secret."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        yaml.safe_dump(config, file, sort_keys=False)
    return path


def prometheus_config(
    *,
    shop,
    rabbitmq,
    flower,
    alertmanager,
    shop_token_file=None,
    rules=ALERT_RULES,
    scrape_interval=None,
    evaluation_interval=None,
):
    """monitoring/prometheus.yml with other targets ("host:port", rabbitmq a list of them).

    `shop_token_file`: a file holding the shop's METRICS_TOKEN, sent as a bearer token (the
    shop wants one with DEBUG off). `rules`: an absolute path, since the rendered file lives
    elsewhere. Shorter intervals let a test see an alert fire in seconds.
    """
    config = load(PROMETHEUS_CONFIG)
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
        config["global"]["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        config["global"]["evaluation_interval"] = evaluation_interval
    config["rule_files"] = [str(Path(rules).resolve())]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    targets = {
        "shop": [shop],
        "rabbitmq": [rabbitmq] if isinstance(rabbitmq, str) else list(rabbitmq),
        "flower": [flower],
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        if job["job_name"] == "shop" and shop_token_file:
            job["authorization"] = {"credentials_file": str(Path(shop_token_file).resolve())}
    return config


def alertmanager_config(
    *, smarthost=None, webhook_url=None, group_wait=None, group_interval=None, source=None
):
    """monitoring/alertmanager.yml (or `source`), its SMTP server at `smarthost` ("host:port")
    and, with `webhook_url`, a webhook beside the email in the `ops` receiver.

    `group_wait` and `group_interval` ("1s") let a test get its email in seconds.
    """
    config = load(source or ALERTMANAGER_CONFIG)
    if smarthost:
        config["global"]["smtp_smarthost"] = smarthost
    if group_wait:
        config["route"]["group_wait"] = group_wait
    if group_interval:
        config["route"]["group_interval"] = group_interval
    if webhook_url:
        (ops,) = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
        ops["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    return config


def option(args, name):
    """The value of `--name=value` in a command line, or None."""
    for arg in args:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def with_option(args, name, value):
    """The command line with `--name=value`, replacing the one it had."""
    return [arg for arg in args if not arg.startswith(f"--{name}=")] + [f"--{name}={value}"]
