"""1. Checkout latency: the confirmation email sent inside the request, or published as a job.

Copies of the shop are served by gunicorn side by side, on one database, with one SMTP
sink that takes 250 ms to accept each message:

- sync (baseline): bench/settings_sync.py, Celery eager: the job runs inside the request;
- ours: config/settings.py as shipped: the jobs (the confirmation and the warehouse's
  order.placed) are written with the order and published to RabbitMQ once the response has
  gone out; an emails worker (ours) sends the email;
- nothing: bench/settings_nothing.py, the same checkout asking for no job at all;
- at commit (with ALT=1): ours, but publishing at the commit, inside the request, so the
  customer waits for RabbitMQ's confirms (OUTBOX_PUBLISH_AFTER_RESPONSE=0).

A client places N orders over HTTP on each, one request at a time, alternating between them
in a shuffled order every round so that the machine's noise falls on all of them alike. Each
order is a cart add (not timed), the checkout POST (timed: connect to the last byte of the
302) and the order page it redirects to (not timed; it shows the flash messages, which keeps
the cookies from growing).
"""

import http.client
import time
import urllib.parse
from http.cookies import SimpleCookie

from bench.broker import purge
from bench.environment import ALT, QUICK
from bench.processes import Gunicorn, running, start_sink, start_worker, wait_ready
from bench.shop_data import bench_product
from bench.stats import Report, Result, interleaved, percentile, say

NAME = "checkout latency"
SINK_LATENCY = 0.25
ORDERS = 30 if QUICK else 100
WARM_UP = 3
SETTINGS = {  # name: (settings module, environment)
    "sync": ("bench.settings_sync", {}),
    "ours": ("config.settings", {}),
    "nothing": ("bench.settings_nothing", {}),
}
if ALT:
    SETTINGS["at commit"] = ("config.settings", {"OUTBOX_PUBLISH_AFTER_RESPONSE": "0"})


class ShopClient:
    """A customer with a cookie jar, speaking HTTP/1.1 to one server, one request at a time."""

    def __init__(self, url, product):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.product = product
        self.cookies = {}
        self.request("GET", product.get_absolute_url())  # the CSRF cookie

    def request(self, method, path, form=None):
        """Returns (status, location, seconds)."""
        body = None
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if form is not None:
            form = {**form, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        seconds = time.perf_counter() - started
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return response.status, response.headers.get("Location", ""), seconds

    def place_order(self, i):
        """Put the product in the cart and check out; returns the checkout's seconds."""
        status, _, _ = self.request("POST", f"/cart/add/{self.product.pk}/", {"quantity": "1"})
        if status != 302:
            raise RuntimeError(f"adding to the cart answered {status}")
        form = {
            "customer_name": f"Bench Customer {i}",
            "email": f"bench{i}@example.com",
            "shipping_address": "1 Benchmark Road",
        }
        status, location, seconds = self.request("POST", "/checkout/", form)
        if status != 302 or "/orders/" not in location:
            raise RuntimeError(f"the checkout answered {status} {location!r}")
        self.request("GET", urllib.parse.urlsplit(location).path)
        return seconds


def run(env):
    product = bench_product()
    purge(env, "emails")
    with running():
        sink = start_sink(env, "checkout-sink", latency=SINK_LATENCY)
        worker = start_worker(env, "checkout-worker", EMAIL_PORT=sink.port, wait=False)
        servers = {
            name: Gunicorn(
                env, f"web-{name}".replace(" ", "-"), module, EMAIL_PORT=sink.port, **extra
            ).start(wait=False)
            for name, (module, extra) in SETTINGS.items()
        }
        wait_ready(worker, *servers.values())
        clients = {name: ShopClient(server.url, product) for name, server in servers.items()}
        say(f"{NAME}: {ORDERS} orders on each of {', '.join(SETTINGS)}, alternating")
        for i, name in enumerate(interleaved(SETTINGS, WARM_UP)):
            clients[name].place_order(-1 - i)
        timings = {name: [] for name in SETTINGS}
        for i, name in enumerate(interleaved(SETTINGS, ORDERS, seed=1)):
            timings[name].append(clients[name].place_order(i) * 1000)
        jobs = job_states()
    return report(timings, jobs)


def job_states():
    """How the confirmation jobs ended: every one asked for should be sent."""
    from collections import Counter

    from jobs.models import Job

    states = dict(Counter(Job.objects.values_list("state", flat=True)))
    states["met a broker outage"] = Job.objects.exclude(publish_error="").count()
    return states


def report(timings, jobs):
    p50 = {name: percentile(ms, 50) for name, ms in timings.items()}
    p95 = {name: percentile(ms, 95) for name, ms in timings.items()}
    sync = "sync (email in request)"
    results = []
    for name, label in (("ours", "ours (after the response)"), ("at commit", "alt: at commit")):
        if name not in timings:
            continue
        p95_ratio = p95[name] / p95["sync"]
        p50_vs_nothing = p50[name] / p50["nothing"]
        results += [
            Result(NAME, "p50", "ms", p50["sync"], p50[name], sync, label),
            Result(
                NAME, "p95", "ms", p95["sync"], p95[name], sync, label,
                goal="≤ 5% of sync", met=p95_ratio <= 0.05,
            ),
            Result(
                NAME, "p50 vs sends nothing", "ms", p50["nothing"], p50[name], "sends nothing",
                label, goal="≤ 1.2 x nothing", met=p50_vs_nothing <= 1.2,
            ),
            Result(
                NAME, "p95 vs sends nothing", "ms", p95["nothing"], p95[name], "sends nothing",
                label,
            ),
        ]  # fmt: skip
    details = {
        "orders_per_variant": len(timings["ours"]),
        "sink_latency_seconds": SINK_LATENCY,
        "confirmation_jobs_by_state": jobs,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": {name: percentile(ms, 99) for name, ms in timings.items()},
        "ours_p95_reduction_percent": round(100 * (1 - p95["ours"] / p95["sync"]), 1),
        "ours_p50_reduction_percent": round(100 * (1 - p50["ours"] / p50["sync"]), 1),
        "samples_ms": {name: [round(ms, 2) for ms in v] for name, v in timings.items()},
    }
    notes = []
    if jobs["met a broker outage"]:
        notes.append("RabbitMQ went away during the run (someone's test restarting it?)")
    return Report(NAME, results, details, notes)
