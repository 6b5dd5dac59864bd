"""Prometheus and Alertmanager for tests, run as the demo runs them, on the test's own ports.

Each renders the demo's configuration (monitoring/prometheus.yml, monitoring/alertmanager.yml)
for the targets and ports it is given, into a data directory of the test's own, and starts the
program with the Procfile's options (retention, cluster off...), only the config file, data
directory, address and external URL replaced. Stopped like every testkit process.

    from testkit.faults import free_port
    from testkit.monitoring import Alertmanager, Prometheus, missing_programs, rules_with_for

    sink = SmtpSink(...).start()                     # testkit.processes
    alertmanager = Alertmanager(
        free_port(), tmp_path / "alertmanager", smarthost=f"127.0.0.1:{sink.port}"
    ).start()                                        # groups mailed after 1 s, not 10 s
    prometheus = Prometheus(
        free_port(), tmp_path / "prometheus",
        shop="127.0.0.1:8123", rabbitmq="127.0.0.1:15692", flower="127.0.0.1:5599",
        alertmanager=alertmanager.address,
        interval="1s",                               # scrape and evaluate every second
        rules=rules_with_for(tmp_path / "alerts.yml", "5s"),  # every `for` made 5 s
    ).start()
    alert = prometheus.wait_for_alert("QueueWithoutConsumer", labels={"queue": "media"})

`missing_programs()` names what is not installed (scripts/ensure-prometheus.sh installs it),
for a test to skip or fail on (tests/components.py: missing).
"""

import json
import os
import shlex
import urllib.parse
import urllib.request

import yaml

import monitoring
from testkit.processes import ROOT, ListeningProcess, http_get, wait_for


def missing_programs(*names):
    """Which of `names` (default: all four) are not installed."""
    names = names or tuple(monitoring.PROGRAMS)
    return [name for name in names if monitoring.find_program(name) is None]


def procfile_options(program):
    """The options the Procfile gives `program` ("prometheus" or "alertmanager")."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == program:
            args = shlex.split(command)
            return args[args.index(program) + 1 :]
    raise KeyError(f"no {program} in the Procfile")


def rules_with_for(path, for_, source=monitoring.ALERT_RULES):
    """Write a copy of the alert rules with every alert's `for` set to `for_` ("5s"): the
    same expressions, firing in seconds. Returns `path`."""
    rules = monitoring.load(source)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = for_
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


class MonitoringProcess(ListeningProcess):
    """A program of monitoring/ on 127.0.0.1:`port`, its files in `data_dir`, started with the
    Procfile's options but for its config file, data directory, address and external URL."""

    program = None
    storage_option = None  # the option naming its data directory

    def __init__(self, port, data_dir, config_path, log_path=None, env=None):
        self.config_path = config_path
        options = procfile_options(self.program)
        for name, value in (
            ("config.file", config_path),
            (self.storage_option, data_dir / "data"),
            ("web.listen-address", f"127.0.0.1:{port}"),
            ("web.external-url", f"http://127.0.0.1:{port}/"),
        ):
            options = monitoring.with_option(options, name, value)
        self.port = port
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        path = monitoring.find_program(self.program)
        if path is None:
            raise FileNotFoundError(
                f"{self.program} is not installed (scripts/ensure-prometheus.sh)"
            )
        super().__init__([path, *options], env or dict(os.environ), log_path or data_dir / "log")

    @property
    def address(self):
        """host:port, as a Prometheus target or an Alertmanager address."""
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout=30):
        def ready():
            self.assert_running()
            return http_get(self.url + "/-/ready", timeout=2)[0] == 200

        wait_for(ready, timeout, interval=0.2, message=f"{self.name} to be ready")

    def get_json(self, path):
        status, body = http_get(self.url + path)
        assert status == 200, f"{self.name} {path}: {status} {body[:500]!r}"
        return json.loads(body)


class Prometheus(MonitoringProcess):
    """Prometheus with the demo's prometheus.yml, scraping the given targets ("host:port";
    `rabbitmq` may be a list of nodes) and sending its alerts to `alertmanager`.

    `shop_token`: sent as `Authorization: Bearer` to the shop (its METRICS_TOKEN).
    `interval`: scrape and evaluation interval ("1s"); the demo's 15 s otherwise.
    `rules`: the alert rules file (rules_with_for makes a faster copy).
    """

    name = program = "prometheus"
    storage_option = "storage.tsdb.path"

    def __init__(
        self,
        port,
        data_dir,
        *,
        shop,
        rabbitmq,
        flower,
        alertmanager,
        shop_token=None,
        interval=None,
        rules=monitoring.ALERT_RULES,
        log_path=None,
        env=None,
    ):
        token_file = None
        if shop_token:
            token_file = data_dir / "metrics-token"
            data_dir.mkdir(parents=True, exist_ok=True)
            token_file.write_text(shop_token)
            token_file.chmod(0o600)
        config_path = monitoring.write(
            monitoring.prometheus_config(
                shop=shop,
                rabbitmq=rabbitmq,
                flower=flower,
                alertmanager=alertmanager,
                shop_token_file=token_file,
                rules=rules,
                scrape_interval=interval,
                evaluation_interval=interval,
            ),
            data_dir / "prometheus.yml",
        )
        super().__init__(port, data_dir, config_path, log_path, env)

    def query(self, expr):
        """The result of an instant query: [{"metric": {...}, "value": [time, "1"]}, ...]."""
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        return self.get_json(path)["data"]["result"]

    def alerts(self):
        """The alerts pending or firing now, each with its labels, annotations and state."""
        return self.get_json("/api/v1/alerts")["data"]["alerts"]

    def targets(self):
        return self.get_json("/api/v1/targets")["data"]["activeTargets"]

    def rules(self):
        """{alert name: rule} of the loaded alert rules."""
        groups = self.get_json("/api/v1/rules?type=alert")["data"]["groups"]
        return {rule["name"]: rule for group in groups for rule in group["rules"]}

    def wait_for_alert(self, name, state="firing", labels=None, timeout=120):
        """Wait until alert `name` (with these `labels`, if given) is in `state`; return it."""

        def found():
            self.assert_running()
            for alert in self.alerts():
                if alert["labels"]["alertname"] != name or alert["state"] != state:
                    continue
                if all(alert["labels"].get(k) == v for k, v in (labels or {}).items()):
                    return alert
            return None

        return wait_for(found, timeout, interval=0.5, message=f"alert {name} {labels} {state}")


class Alertmanager(MonitoringProcess):
    """Alertmanager with the demo's alertmanager.yml, mailing through `smarthost`
    ("host:port": an SmtpSink's), and with `webhook_url` a webhook too.

    `group_wait`, `group_interval`: 1 s by default, so a test's email comes at once.
    """

    name = program = "alertmanager"
    storage_option = "storage.path"

    def __init__(
        self,
        port,
        data_dir,
        *,
        smarthost,
        webhook_url=None,
        group_wait="1s",
        group_interval="1s",
        log_path=None,
        env=None,
    ):
        config_path = monitoring.write(
            monitoring.alertmanager_config(
                smarthost=smarthost,
                webhook_url=webhook_url,
                group_wait=group_wait,
                group_interval=group_interval,
            ),
            data_dir / "alertmanager.yml",
        )
        super().__init__(port, data_dir, config_path, log_path, env)

    def alerts(self):
        """The alerts it holds (API v2): labels, annotations, status."""
        return self.get_json("/api/v2/alerts")

    def post_alerts(self, *alerts):
        """Hand it alerts as Prometheus does: dicts with labels and annotations."""
        request = urllib.request.Request(
            self.url + "/api/v2/alerts",
            data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200, response.status
