"""Fetching a supplier's pages over HTTP, politely, and saying clearly what went wrong.

No Celery here: the job's work (scraping.py) uses a SupplierClient, which
- waits for its host's slot before every request (jobs/throttle.py: a minimum interval per host,
  or robots.txt's Crawl-delay when that is longer);
- reads robots.txt first and fetches only what it allows;
- gives up on a connection after `connect_timeout` and on a silent server after
  `read_timeout` (httpx's read timeout is per read: a server trickling bytes is bounded by
  the page size limit and, in the end, by the task's soft time limit);
- sorts what can go wrong into the job runner's two kinds: TransientError (refused or broken
  connections, timeouts, 5xx, 429) is worth another attempt later; PageFailed is this page's
  own problem (gone, moved, too big) and another attempt will not change it.

Redirects are not followed: one could lead to another host, around its rate limit and its
robots.txt. A moved page is reported, for staff to update the listing.
"""

import email.utils
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx
from django.conf import settings
from django.utils import timezone

from jobs import throttle
from jobs.errors import PermanentError, TransientError

# A Retry-After longer than this is taken as this: a mistyped header must not silence a
# supplier for days.
MAX_RETRY_AFTER_SECONDS = 3600


class PageFailed(PermanentError):
    """This page cannot be read, and trying again will not help: the message says why."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str
    connect_timeout: float
    read_timeout: float
    min_interval: float
    max_wait: float
    max_page_bytes: int

    @classmethod
    def from_settings(cls):
        return cls(
            user_agent=settings.SUPPLIER_USER_AGENT,
            connect_timeout=settings.SUPPLIER_CONNECT_TIMEOUT,
            read_timeout=settings.SUPPLIER_READ_TIMEOUT,
            min_interval=settings.SUPPLIER_MIN_INTERVAL_SECONDS,
            max_wait=settings.SUPPLIER_MAX_WAIT_SECONDS,
            max_page_bytes=settings.SUPPLIER_MAX_PAGE_BYTES,
        )


@dataclass(frozen=True)
class Page:
    url: str
    status: int
    content: bytes


class SupplierClient:
    """HTTP to one supplier's site: `with SupplierClient(base_url) as client: ...`."""

    def __init__(self, base_url, config=None, sleep=time.sleep):
        self.base_url = base_url
        self.config = config or FetchSettings.from_settings()
        self.host = urlsplit(base_url).netloc
        self.sleep = sleep
        self.robots = None
        self.http = httpx.Client(
            headers={"User-Agent": self.config.user_agent},
            timeout=httpx.Timeout(
                connect=self.config.connect_timeout,
                read=self.config.read_timeout,
                write=self.config.read_timeout,
                pool=self.config.connect_timeout,
            ),
            follow_redirects=False,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.http.close()

    @property
    def interval(self):
        """Seconds between two requests to this host: ours, or robots.txt's if longer."""
        crawl_delay = self.robots.crawl_delay(self.config.user_agent) if self.robots else None
        return max(self.config.min_interval, float(crawl_delay or 0))

    def read_robots(self):
        """Fetch and parse the site's robots.txt; call it before any page.

        As RFC 9309 says: a robots.txt that is not there (any 4xx) allows everything; one that
        cannot be read for now (5xx, no connection) is a transient error, because until it
        is read nothing may be fetched.
        """
        robots = RobotFileParser(urljoin(self.base_url, "/robots.txt"))
        try:
            page = self.get(robots.url)
        except PageFailed as exc:
            if exc.status is None or not 400 <= exc.status < 500:
                raise TransientError(f"robots.txt could not be read: {exc}") from exc
            robots.allow_all = True
        else:
            robots.parse(page.content.decode("utf-8", errors="replace").splitlines())
        self.robots = robots
        return robots

    def allowed(self, url):
        return self.robots.can_fetch(self.config.user_agent, url)

    def get(self, url):
        """GET `url` in its host's turn; a Page with status 200, or TransientError / PageFailed."""
        if urlsplit(url).netloc != self.host:
            raise PageFailed(f"{url} is not on {self.host}")
        self.sleep(throttle.reserve(self.host, self.interval, self.config.max_wait))
        try:
            with self.http.stream("GET", url) as response:
                self._check_status(url, response)
                return Page(url, response.status_code, self._read_body(url, response))
        except httpx.ConnectTimeout as exc:
            raise TransientError(
                f"{url}: no connection within {self.config.connect_timeout:g}s"
            ) from exc
        except httpx.ConnectError as exc:
            raise TransientError(f"{url}: cannot connect ({exc})") from exc
        except httpx.ReadTimeout as exc:
            raise TransientError(f"{url}: no answer within {self.config.read_timeout:g}s") from exc
        except httpx.TransportError as exc:  # other timeouts, a connection dropped mid-answer
            raise TransientError(f"{url}: {type(exc).__name__}: {exc}") from exc

    def _check_status(self, url, response):
        status = response.status_code
        if status == 200:
            return
        what = f"{url}: HTTP {status} {response.reason_phrase}"
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if status == 429 or (status >= 500 and retry_after):
            # The host asks us to slow down: every request to it waits, not only this job's.
            # A 429 that does not say how long gets ten of our intervals.
            wait = retry_after if retry_after is not None else self.interval * 10
            until = throttle.hold_off(self.host, wait)
            until = timezone.localtime(until)
            raise TransientError(f"{what}; asked to wait until {until:%H:%M:%S}", retry_after=wait)
        if status >= 500:
            raise TransientError(what)
        if 300 <= status < 400:
            location = response.headers.get("Location", "?")
            raise PageFailed(f"{what}: moved to {location}; update the listing", status)
        if status in (404, 410):
            raise PageFailed(f"{what}: the page is gone; does the supplier still sell it?", status)
        raise PageFailed(what, status)

    def _read_body(self, url, response):
        limit = self.config.max_page_bytes
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise PageFailed(f"{url}: the page is larger than {limit:,} bytes")
        return bytes(body)


def retry_after_seconds(value, now=None):
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
