"""The local supplier site: a small HTTP server playing a supplier's web shop, on loopback.

The demo and the tests fetch prices from it, so nothing reaches the internet. It serves an
index (`/`), a page per product (`/products/<sku>`), `/robots.txt`, and `/_stats`: how many
requests each path had, and when (for the tests; not counted itself).

Like the SMTP sink, it misbehaves on demand through knobs in a JSON file, read again on every
request, so they can be turned while it runs (`update_controls`, the staff page, any editor):

    latency       seconds to wait before answering a product page
    fail_rate     share of product pages answered with `fail_status` (0..1)
    fail_next     the next N product pages get `fail_status`; counted down in the file
    fail_status   the failure's status: 503 (default), 500 or 429
    retry_after   seconds sent as Retry-After with a failure (0: no header)
    layout        "v1"; "v2" is a redesign our parser does not know (also per product)
    disallow      paths robots.txt disallows, e.g. ["/products/blue-mug"]
    crawl_delay   robots.txt's Crawl-delay, whole seconds (0: none)
    drift         prices and stock wander by up to this share (0.05: 5%) ...
    drift_period  ... every this many seconds
    products      {"blue-mug": {"name": "Blue Mug", "price": "12.50", "stock": 7}}; a product
                  can have a "layout" of its own, and a "status" to answer instead of its
                  page (404: gone, 301: moved, 503: failing until the knob is removed)
"""

import html
import json
import logging
import math
import random
import threading
import time
from collections import Counter, deque
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from demo.controlfile import read_json_object, write_json_atomically

log = logging.getLogger(__name__)

LAYOUTS = ("v1", "v2")
FAIL_STATUSES = (503, 500, 429)
ANSWERABLE_STATUSES = tuple(status.value for status in HTTPStatus if status >= 300)
DEFAULT_CONTROLS = {
    "latency": 0.0,
    "fail_rate": 0.0,
    "fail_next": 0,
    "fail_status": 503,
    "retry_after": 0,
    "layout": "v1",
    "disallow": [],
    "crawl_delay": 0,
    "drift": 0.0,
    "drift_period": 300,
    "products": {},
}
CENT = Decimal("0.01")
PRODUCT_PREFIX = "/products/"


# --- The knobs -----------------------------------------------------------------------------------


def read_controls(path):
    """The knobs in the file at `path`, with defaults for anything missing or unusable.

    The file is edited by hand while the site runs: a typo costs that one knob (or product),
    never the site.
    """
    data = read_json_object(path)
    controls = {}
    for name, default in DEFAULT_CONTROLS.items():
        controls[name] = _knob(name, data.get(name, default), default)
    return controls


def _knob(name, value, default):
    if name == "products":
        return _products(value)
    if name == "disallow":
        ok = isinstance(value, list) and all(isinstance(p, str) for p in value)
        return value if ok else default
    if name == "layout":
        return value if value in LAYOUTS else default
    if name == "fail_status":
        return value if value in FAIL_STATUSES else default
    try:
        value = type(default)(value)
    except (TypeError, ValueError, OverflowError):
        return default
    out_of_range = not math.isfinite(value) or value < 0
    if name in ("fail_rate", "drift"):
        out_of_range = out_of_range or value > 1
    if name == "drift_period":
        out_of_range = out_of_range or value < 1
    return default if out_of_range else value


def _products(value):
    """The usable products of `value`: each with a name, a price above zero and a stock."""
    products = {}
    for sku, item in value.items() if isinstance(value, dict) else ():
        try:
            price = Decimal(str(item["price"])).quantize(CENT)
            stock = int(item.get("stock", 0))
            usable = price.is_finite() and price > 0 and stock >= 0
        except (TypeError, KeyError, AttributeError, ValueError, InvalidOperation):
            usable = False
        if not usable:
            log.warning("product %r in the control file is unusable, left out: %r", sku, item)
            continue
        layout, status = item.get("layout"), item.get("status")
        products[str(sku)] = {
            "name": str(item.get("name") or sku),
            "price": price,
            "stock": stock,
            "layout": layout if layout in LAYOUTS else None,
            "status": status if status in ANSWERABLE_STATUSES else None,
        }
    return products


def update_controls(path, **changes):
    """Change some knobs, keep the others; returns what is now in the file."""
    unknown = changes.keys() - DEFAULT_CONTROLS.keys()
    if unknown:
        raise TypeError(f"unknown supplier site control(s): {', '.join(sorted(unknown))}")
    current = {**read_json_object(path), **changes}
    write_json_atomically(path, current)
    return current


def set_product(path, sku, **fields):
    """Add or change one product of the site (name, price, stock, layout)."""
    products = update_controls(path).get("products") or {}
    products[sku] = {**products.get(sku, {}), **fields}
    return update_controls(path, products=products)


# --- The pages (pure functions) ------------------------------------------------------------------


def drifted(sku, product, drift, period, now):
    """(price, stock) of `product` at time `now`: wandered by up to `drift`, a new step every
    `period` seconds, the same for everyone who asks within one step."""
    if not drift:
        return product["price"], product["stock"]
    rng = random.Random(f"{sku}:{int(now // period)}")
    price = product["price"] * Decimal(str(round(1 + rng.uniform(-drift, drift), 4)))
    stock = max(0, product["stock"] + rng.randint(-3, 3))
    return max(price.quantize(CENT), CENT), stock


def render_product(sku, name, price, stock, layout="v1"):
    """A product page, in one of the site's two layouts."""
    name = html.escape(name)
    if layout == "v2":
        # The redesign: no schema.org markup, the stock only in words.
        body = f"""<div class="pdp" id="{html.escape(sku)}">
  <h1 class="pdp-title">{name}</h1>
  <div class="pdp-buy"><span class="amount">USD {price}</span>
    <span class="availability">{f"In stock ({stock})" if stock else "Sold out"}</span></div>
</div>"""
    else:
        body = f"""<article class="product" data-sku="{html.escape(sku)}">
  <h1 itemprop="name">{name}</h1>
  <p class="price">$<span itemprop="price" content="{price}">{price}</span></p>
  <p class="stock" data-quantity="{stock}">{f"{stock} in stock" if stock else "Out of stock"}</p>
</article>"""
    return _page(name, body)


def render_index(products):
    items = "\n".join(
        f'  <li><a href="{PRODUCT_PREFIX}{html.escape(sku)}">{html.escape(p["name"])}</a></li>'
        for sku, p in sorted(products.items())
    )
    return _page("Catalog", f"<h1>Catalog</h1>\n<ul>\n{items}\n</ul>")


def render_robots(disallow, crawl_delay):
    lines = ["User-agent: *"]
    lines += [f"Disallow: {path}" for path in disallow] or ["Disallow:"]
    if crawl_delay:
        lines.append(f"Crawl-delay: {crawl_delay}")
    return "\n".join(lines) + "\n"


def _page(title, body):
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Demo Supplier</title></head>
<body><header><a href="/">Demo Supplier</a></header>
{body}
</body></html>
"""


# --- The server ----------------------------------------------------------------------------------


class SupplierSite:
    """The site's state in one process: its control file and the requests it has counted."""

    def __init__(self, control_path):
        self.control_path = Path(control_path)
        self.lock = threading.Lock()
        self.requests = Counter()
        self.log = deque(maxlen=1000)

    def count(self, path):
        with self.lock:
            self.requests[path] += 1
            self.log.append([path, time.time()])

    def stats(self):
        with self.lock:
            return {"requests": dict(self.requests), "log": list(self.log)}

    def take_failure(self, controls):
        """Whether this product page fails: fail_next (counted down in the file) or fail_rate."""
        # Requests are served by threads: count down under the lock, or two would take the last.
        with self.lock:
            left = read_controls(self.control_path)["fail_next"]
            if left > 0:
                update_controls(self.control_path, fail_next=left - 1)
                return True
        return random.random() < controls["fail_rate"]


class Handler(BaseHTTPRequestHandler):
    server_version = "DemoSupplier/1.0"

    def do_GET(self):
        site = self.server.site
        path = unquote(urlsplit(self.path).path)
        if path == "/_stats":
            return self.send(200, json.dumps(site.stats()), "application/json")
        site.count(path)
        controls = read_controls(site.control_path)
        if path == "/robots.txt":
            robots = render_robots(controls["disallow"], controls["crawl_delay"])
            return self.send(200, robots, "text/plain")
        if path in ("/", PRODUCT_PREFIX):
            return self.send(200, render_index(controls["products"]))
        if path.startswith(PRODUCT_PREFIX):
            return self.product_page(site, controls, path.removeprefix(PRODUCT_PREFIX).strip("/"))
        return self.send(404, _page("Not found", "<h1>Not found</h1>"))

    def product_page(self, site, controls, sku):
        if controls["latency"]:
            time.sleep(controls["latency"])
        if site.take_failure(controls):
            status = controls["fail_status"]
            retry_after = controls["retry_after"]
            headers = {"Retry-After": str(retry_after)} if retry_after else {}
            phrase = HTTPStatus(status).phrase
            return self.send(status, _page(phrase, f"<h1>{phrase}</h1>"), headers=headers)
        product = controls["products"].get(sku)
        if product is None:
            return self.send(404, _page("Not found", "<h1>No such product</h1>"))
        if product["status"]:
            status = HTTPStatus(product["status"])
            moved = {"Location": f"{PRODUCT_PREFIX}{sku}-new"} if 300 <= status < 400 else {}
            return self.send(
                status, _page(status.phrase, f"<h1>{status.phrase}</h1>"), headers=moved
            )
        price, stock = drifted(
            sku, product, controls["drift"], controls["drift_period"], time.time()
        )
        layout = product["layout"] or controls["layout"]
        self.send(200, render_product(sku, product["name"], price, stock, layout))

    def send(self, status, text, content_type="text/html", headers=None):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        log.info("%s %s", self.address_string(), format % args)


def make_server(host, port, control_path):
    """The site's HTTP server on host:port (0: any free port); serve it with serve_forever()."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.site = SupplierSite(control_path)
    return server
