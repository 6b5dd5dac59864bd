"""Alerts end to end: a real fault seen by Prometheus in /metrics, mailed by Alertmanager.

The shop (pytest-django's live server) serves /metrics; Prometheus scrapes it every second with
the repository's alert rules, their `for` cut to 5 s (the same expressions: the real `for`s
are unit-tested with promtool in tests/test_alert_rules.py); Alertmanager mails the SMTP sink,
as in the demo, and posts to a webhook, as with ALERT_WEBHOOK_URL. The fault is real: the email
worker is killed (SIGKILL, its whole process group) while it sends a newsletter.

The bound: the alert email is in the sink within 30 s of the kill (a scrape, the 5 s `for`,
an evaluation and Alertmanager's 1 s group wait take about 10 s). With the demo's settings
(15 s scrapes, QueueWithoutConsumer's 2 minutes, a 10 s group wait) the same email comes 2 to
2.5 minutes after a worker dies.
"""

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from config import queues
from demo.subscribers import seed_subscribers
from notifications.newsletters import progress_of
from testkit.faults import free_port
from testkit.monitoring import Alertmanager, Prometheus, missing_programs, rules_with_for
from testkit.processes import wait_for
from tests.components import missing
from tests.test_newsletters_flow import recipients_of, send_newsletter, staff, wait_until_sent

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

__all__ = ["staff"]  # a fixture, used by name
TOKEN = "alert-test-token"
SUBSCRIBERS = 300
ALERT_WITHIN = 30 * float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))
OTHER_QUEUES = tuple(q for q in queues.WORK_QUEUE_NAMES if q != queues.EMAILS)


class Posted(list):
    """What a webhook received, and its URL."""

    url = ""


@pytest.fixture
def webhook():
    """A webhook receiver on a port of its own: the list of what Alertmanager posted to it."""
    posted = Posted()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    posted.url = f"http://127.0.0.1:{server.server_port}/alerts"
    yield posted
    server.shutdown()


@pytest.fixture
def monitoring(live_server, smtp_sink, webhook, tmp_path, settings):
    """Prometheus scraping this test's shop, and Alertmanager mailing its SMTP sink and
    posting to the webhook."""
    if absent := missing_programs():
        missing(", ".join(absent), "scripts/ensure-prometheus.sh installs them")
    settings.METRICS_TOKEN = TOKEN  # the live server runs in this process
    alertmanager = Alertmanager(
        free_port(),
        tmp_path / "alertmanager",
        smarthost=f"127.0.0.1:{smtp_sink.port}",
        webhook_url=webhook.url,
    ).start()
    prometheus = Prometheus(
        free_port(),
        tmp_path / "prometheus",
        shop=urlsplit(live_server.url).netloc,
        rabbitmq=f"127.0.0.1:{free_port()}",  # the broker's own metrics are not this test's
        flower=f"127.0.0.1:{free_port()}",
        alertmanager=alertmanager.address,
        shop_token=TOKEN,
        interval="1s",
        rules=rules_with_for(tmp_path / "alerts.yml", "5s"),
    ).start()
    yield prometheus
    prometheus.stop()
    alertmanager.stop()


def alert_emails(smtp_sink, status):
    """Subjects of the QueueWithoutConsumer emails with `status` (FIRING or RESOLVED)."""
    return [
        m["subject"]
        for m in smtp_sink.messages()
        if m["subject"].startswith(f"[{status}") and "QueueWithoutConsumer" in m["subject"]
    ]


def test_a_worker_killed_mid_newsletter_is_mailed_as_an_alert_then_as_resolved(
    monitoring, webhook, staff, broker, smtp_sink, start_worker
):
    seed_subscribers(SUBSCRIBERS)
    start_worker(queues=OTHER_QUEUES)  # every other queue has its worker: only emails may fire
    emails_worker = start_worker(queues=(queues.EMAILS,), NEWSLETTER_EMAILS_PER_SECOND="20")
    newsletter = send_newsletter(staff)
    wait_for(lambda: progress_of(newsletter.pk).sent >= 20, message="the newsletter under way")
    wait_for(
        lambda: monitoring.query('shopjobs_queue_consumers{queue="emails"} == 1'),
        message="Prometheus to see the email worker",
    )
    assert not alert_emails(smtp_sink, "FIRING"), "no alert while every queue has its worker"

    os.killpg(emails_worker.proc.pid, signal.SIGKILL)
    emails_worker.proc.wait()
    killed_at = time.monotonic()
    sent_before = progress_of(newsletter.pk).sent
    firing = wait_for(
        lambda: alert_emails(smtp_sink, "FIRING"), ALERT_WITHIN, message="the alert email"
    )
    took = time.monotonic() - killed_at
    assert "emails" in firing[0], firing
    assert progress_of(newsletter.pk).remaining > 0, "the newsletter was cut short, not done"
    print(f"alert email {took:.1f} s after the kill, {sent_before} of {SUBSCRIBERS} sent")

    start_worker(queues=(queues.EMAILS,), NEWSLETTER_EMAILS_PER_SECOND="0")
    resolved = wait_for(
        lambda: alert_emails(smtp_sink, "RESOLVED"), ALERT_WITHIN, message="the resolved email"
    )
    assert "emails" in resolved[0], resolved
    wait_until_sent(newsletter)
    received = recipients_of(smtp_sink.messages(), "Winter sale")
    progress = progress_of(newsletter.pk)
    assert max(received.values()) == 1, "nobody got the newsletter twice"
    assert progress.sent + progress.unknown == SUBSCRIBERS, "nobody was lost"
    assert len(alert_emails(smtp_sink, "FIRING")) == 1, "one alert email, not one per scrape"
    # The webhook heard the same, firing then resolved (Alertmanager's webhook JSON).
    about_emails = [
        post["status"]
        for post in webhook
        if post["groupLabels"].get("alertname") == "QueueWithoutConsumer"
        and any(a["labels"].get("queue") == "emails" for a in post["alerts"])
    ]
    assert about_emails[0] == "firing" and about_emails[-1] == "resolved", about_emails
