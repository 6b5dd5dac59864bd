"""Settings for Shop Jobs, one module driven by environment variables.

Every value a deployment changes comes from the environment; the defaults are for the local
demo, and the ones that must stay secret are only filled in when DEBUG is on.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name, default=False):
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


DEBUG = env_bool("DEBUG", True)


def secret(name, demo_default):
    """A secret from the environment; the demo default is only good enough under DEBUG."""
    value = os.environ.get(name)
    if value:
        return value
    if DEBUG:
        return demo_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off")


SECRET_KEY = secret("SECRET_KEY", "demo-only-secret-key-never-use-it-in-production-0123456789")
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

# Served over HTTPS in production (DEBUG off): secure cookies, HSTS, redirects. Behind a proxy
# that terminates TLS, set SECURE_PROXY_SSL_HEADER_ON=1 so Django trusts X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
# Joining the browsers' HSTS preload list is a decision for the domain's owner, not a default.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("SECURE_PROXY_SSL_HEADER_ON"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Load balancers and container health checks probe over plain HTTP, inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz", r"^metrics$"]
# Origins (scheme://host) allowed to POST forms, when a proxy in front changes the host.
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_celery_results",
    "django_celery_beat",
    "jobs",
    "shop",
    "notifications",
    "media_jobs",
    "suppliers",
]
# The demo's stand-ins (demo/: the SMTP sink and its mailbox, the supplier site, the knobs,
# seed_demo). On with DEBUG; production leaves them out, except where a container runs one of
# them (compose's smtp-sink: DEMO=1).
DEMO = env_bool("DEMO", DEBUG)
if DEMO:
    INSTALLED_APPS.append("demo")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from gunicorn, compressed and cached forever (see STORAGES).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.site",
                *(["demo.context_processors.demo"] if DEMO else []),
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite is the embedded default. Web, workers and beat are separate processes writing to the
# same file, so it runs in WAL mode with a busy timeout and takes the write lock at the start
# of each transaction (IMMEDIATE) instead of failing half-way with "database is locked".
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
        # With persistent connections (DB_CONN_MAX_AGE > 0), one that died with a database
        # restart is noticed and replaced at the start of a request instead of failing it.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite creates the file but not its folder (var/ in a fresh checkout).
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # The test database must be a file, not memory: worker processes started by the tests
    # read and write the same database as the test itself. One file per test run, so two
    # runs side by side do not share it.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("TEST_SQLITE_PATH", str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3"))
    }
else:
    # Likewise one test database per run on a server (PostgreSQL), instead of Django's
    # test_<name> that two runs side by side would drop under each other.
    DATABASES["default"]["TEST"] = {
        "NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"[:63]
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# In production WhiteNoise serves what `collectstatic` put in STATIC_ROOT (the Docker image
# does it at build time): compressed, with content hashes in the names, cached forever. Under
# DEBUG (the demo, the tests) it serves the apps' static folders as they are, nothing to build.
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = DEBUG
if not DEBUG:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

LOGIN_URL = "admin:login"

# --- Email ------------------------------------------------------------------------------------
# Real SMTP, also in the demo: `manage.py smtp_sink` listens on 127.0.0.1:1025.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = os.environ.get("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 1025)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Shop Jobs <orders@shop-jobs.test>")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

# Where the local SMTP sink keeps what it receives (a Maildir) and its live knobs.
SMTP_SINK_DIR = Path(os.environ.get("SMTP_SINK_DIR", VAR_DIR / "outbox"))
SMTP_SINK_CONTROL = Path(os.environ.get("SMTP_SINK_CONTROL", VAR_DIR / "smtp-sink.json"))

# --- Celery -----------------------------------------------------------------------------------
# Read by config/celery.py with the CELERY_ namespace. The shop's queues are in config/queues.py,
# and a job's queue and priority where it is declared (jobs/declare.py); everything about
# reliability is set here, once, for every task.
from celery.schedules import crontab  # noqa: E402

from config import queues  # noqa: E402

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
# The broker confirms every publish, so "published" means "RabbitMQ has it".
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A client notices a node that went silent (a partition, a dead network path) after about two
# heartbeats without an answer, and fails over to the next URL.
CELERY_BROKER_HEARTBEAT = env_int("CELERY_BROKER_HEARTBEAT", 30)
# A publish that fails is not retried at length inside a web request: the outbox
# (jobs/outbox.py) keeps the job and the sweeper publishes it again later.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

CELERY_TASK_QUEUES = queues.TASK_QUEUES
# Jobs route themselves where they are declared (jobs/declare.py); the rest by name.
CELERY_TASK_ROUTES = (queues.TASK_ROUTES, "jobs.declare.route_declared_job")
CELERY_TASK_DEFAULT_QUEUE = queues.DEFAULT_QUEUE
CELERY_TASK_DEFAULT_EXCHANGE = queues.WORK_EXCHANGE.name
CELERY_TASK_DEFAULT_EXCHANGE_TYPE = queues.WORK_EXCHANGE.type
CELERY_TASK_DEFAULT_ROUTING_KEY = queues.DEFAULT_QUEUE
CELERY_TASK_CREATE_MISSING_QUEUES = False

# No lost work: a message is acknowledged only after its task has finished; a worker that dies
# mid-task gets it redelivered; a task that fails is rejected (not acknowledged), so RabbitMQ
# dead-letters it instead of dropping it.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = False
# A worker process killed mid-task (SIGKILL, out of memory, segfault): instead of requeueing
# the message as it is, forever, publish it again with its retry count raised (Celery 5.7);
# past the task's max_retries it is dead-lettered. See JobTask.default_retry_delay.
CELERY_TASK_RETRY_ON_WORKER_LOST = True
# A message whose body cannot even be decoded is dead-lettered instead of dropped.
CELERY_WORKER_CONSUMER = "jobs.worker:DeadLetteringConsumer"
# Priorities only work if a worker does not hoard messages: take one at a time.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task still running when the broker connection drops is left to finish: its message comes
# back, but the job's claim (jobs/runner.py) stops the copy from doing the work twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False

# Every task has a time limit; tasks set tighter ones of their own.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)

CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES_SECONDS", 7 * 24 * 3600)
CELERY_TASK_TRACK_STARTED = True

# Task events (received, started, succeeded...) are what Flower's task list is made of, and
# each is one more confirmed publish per task: with them on, a worker runs about half as many
# no-op tasks a second (README, "Benchmarks"). So they are off until Flower asks: its
# `enable_events` (every 5 s, to every worker) turns them on, and they stay on until the worker
# restarts. `celery worker -E` or CELERY_WORKER_SEND_TASK_EVENTS=1 turns them on from the start.
# The job timeline does not need them.
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_WORKER_SEND_TASK_EVENTS", False)
# task-sent would be a second confirmed publish per job, outside the outbox's time limit,
# saying what the job's "queued" step already says.
CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_TASK_SEND_SENT_EVENT", False)

# Retries of transient faults: exponential backoff with equal jitter (half fixed, half random),
# capped (jobs/runner.py: backoff_seconds).
JOB_RETRY_BACKOFF_SECONDS = env_float("JOB_RETRY_BACKOFF_SECONDS", 2)
JOB_RETRY_BACKOFF_MAX_SECONDS = env_float("JOB_RETRY_BACKOFF_MAX_SECONDS", 300)
# 8 retries from 2 s, doubling: a job keeps trying for 4 to 8.5 minutes in all (jitter), enough
# for a mail provider's bad moment, before it is dead-lettered and waits for a person.
JOB_MAX_RETRIES = env_int("JOB_MAX_RETRIES", 8)
JOB_WORKER_LOST_RETRY_DELAY_SECONDS = env_float("JOB_WORKER_LOST_RETRY_DELAY_SECONDS", 2)
# The outbox sweeper publishes jobs again that have waited this long for the broker.
OUTBOX_REPUBLISH_AFTER_SECONDS = env_float("OUTBOX_REPUBLISH_AFTER_SECONDS", 20)
OUTBOX_SWEEP_INTERVAL_SECONDS = env_float("OUTBOX_SWEEP_INTERVAL_SECONDS", 15)
# After a failed publish, a process leaves the broker alone this long (jobs/outbox.py).
OUTBOX_BREAKER_SECONDS = env_float("OUTBOX_BREAKER_SECONDS", 10)
# How long a publish waits for the broker's confirm. Without a limit, a broker that keeps the
# connection open but answers nothing (publishers blocked by a disk or memory alarm) would hold
# the customer's request forever.
OUTBOX_PUBLISH_TIMEOUT_SECONDS = env_float("OUTBOX_PUBLISH_TIMEOUT_SECONDS", 2)
# In a web request, publish what it committed once the response has gone out, not at the commit:
# the customer does not wait for the broker's confirms (jobs/outbox.py: publish_after_commit).
OUTBOX_PUBLISH_AFTER_RESPONSE = env_bool("OUTBOX_PUBLISH_AFTER_RESPONSE", True)
# The event queues between shop and warehouse: their consumers are not Celery workers, but the
# dashboard and the health checks watch them, and the dead-letters page explains what the
# shop's consumer parked (jobs/conf.py).
JOBS_EVENT_QUEUES = queues.EVENT_QUEUE_NAMES
JOBS_EVENT_PARKING_QUEUES = {
    queues.SHOP_EVENTS.parking_queue.name: "shop.event_consumer.why_refused",
}
# How long the oldest job of a queue may wait before an alert fires (docs/alerting.md): a
# customer's email within a minute; a report or a price feed can wait for a busy worker.
JOBS_WAIT_ALERT_SECONDS = {"emails": 60, "media": 300, "integrations": 600, "reports": 600,
                           "maintenance": 900, "default": 300}  # fmt: skip
# Prometheus sends it as "Authorization: Bearer <token>" for /metrics. Without DEBUG, /metrics
# answers nobody until it is set.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# The Prometheus that scrapes it: the dashboard's 24 hours of history come from there.
PROMETHEUS_URL = os.environ.get("PROMETHEUS_URL", "http://127.0.0.1:9090")
# A queue whose waiting job has not started for this long, nothing of it started or running
# meanwhile, is stalled (/healthz/workers, /metrics, the QueueStalled alert: docs/alerting.md).
JOBS_STALL_SECONDS = env_float("JOBS_STALL_SECONDS", 120)
# How often a worker reads the paused queues by itself, and puts back a cancelled consumer.
JOBS_PAUSE_SYNC_SECONDS = env_float("JOBS_PAUSE_SYNC_SECONDS", 15)

# Workers that follow their queue's depth (`manage.py scale_workers QUEUE`, jobs/autoscale.py,
# docs/scaling-by-queue-depth.md): the defaults of every scaler; its command line says more.
AUTOSCALE_MIN_WORKERS = env_int("AUTOSCALE_MIN_WORKERS", 1)
AUTOSCALE_MAX_WORKERS = env_int("AUTOSCALE_MAX_WORKERS", 4)
# One more worker for every this many ready messages: one worker's jobs a second x the seconds
# a job may wait.
AUTOSCALE_BACKLOG_PER_WORKER = env_int("AUTOSCALE_BACKLOG_PER_WORKER", 100)
AUTOSCALE_INTERVAL_SECONDS = env_float("AUTOSCALE_INTERVAL_SECONDS", 5)
# Up fast, down slowly: seconds between two changes, and how long the queue must have had
# nothing ready before a worker is stopped.
AUTOSCALE_COOLDOWN_SECONDS = env_float("AUTOSCALE_COOLDOWN_SECONDS", 10)
AUTOSCALE_SCALE_DOWN_AFTER_SECONDS = env_float("AUTOSCALE_SCALE_DOWN_AFTER_SECONDS", 120)
# A stopping worker finishes its task (warm shutdown) for up to this long, then is killed.
AUTOSCALE_STOP_TIMEOUT_SECONDS = env_float(
    "AUTOSCALE_STOP_TIMEOUT_SECONDS", CELERY_TASK_TIME_LIMIT + 30
)

# Retention (jobs/retention.py, docs/retention.md), run nightly by "celery.backend_cleanup"
# below. Finished jobs with their timelines are kept this long (an order's page shows its jobs
# while they are there; a message replayed after it finds no job and runs as a new one); task
# results CELERY_RESULT_EXPIRES (above). Neither prunes anything younger than a day.
RETENTION_KEEP_JOBS_DAYS = env_float("RETENTION_KEEP_JOBS_DAYS", 30)
# Rows per DELETE, each in its own short transaction.
RETENTION_CHUNK_SIZE = env_int("RETENTION_CHUNK_SIZE", 5000)

# Periodic jobs. django-celery-beat writes these into the database at every beat start: the
# admin can switch one off (that survives a restart), but other edits to these entries are
# overwritten by the next start. Entries added in the admin are left alone.
# Its DatabaseScheduler, each run first claiming its slot on the entry's row (jobs/schedules.py):
# a second beat, a restart after missed runs or a DST change sends each run once.
CELERY_BEAT_SCHEDULER = "jobs.schedules:SlotScheduler"
# Crontab entries are read in the shop's time zone. Celery would follow TIME_ZONE by itself, but
# django-celery-beat gives an entry made in the admin CELERY_TIMEZONE, else UTC.
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "publish-jobs-the-broker-missed": {
        "task": "jobs.republish_pending_jobs",
        "schedule": OUTBOX_SWEEP_INTERVAL_SECONDS,
    },
    # Self-healing (jobs/reconcile.py): jobs whose message is gone are published again, once.
    "rescue-stuck-jobs": {
        "task": "jobs.rescue_stuck_jobs",
        "schedule": 60,
    },
    # Retention (jobs/retention.py): old finished jobs, their events and task results, deleted
    # in chunks. The entry keeps the name django-celery-beat gives the one it installs by itself
    # whenever CELERY_RESULT_EXPIRES is set, running Celery's `celery.backend_cleanup` (one
    # DELETE of every expired result in one transaction, docs/retention.md): this entry, written
    # after that one at every beat start, replaces its task with ours, so Celery's never runs.
    "celery.backend_cleanup": {
        "task": "jobs.prune_old_records",
        "schedule": crontab(hour=4, minute=0),
    },
    # Yesterday's sales report (shop/tasks.py), in the shop's time zone (TIME_ZONE).
    "daily-sales-report": {
        "task": "shop.build_scheduled_sales_report",
        "schedule": crontab(hour=1, minute=0),
    },
    # A price and stock fetch of every active supplier (suppliers/tasks.py).
    "fetch-supplier-prices": {
        "task": "suppliers.fetch_all_suppliers",
        "schedule": env_float("SUPPLIER_FETCH_INTERVAL_SECONDS", 10 * 60),
    },
}

# --- Logging ----------------------------------------------------------------------------------
# One format for web and workers (Celery leaves the root logger alone and uses this one too).
# Lines written while a task runs carry its id, name, attempt and job key (jobs/logs.py).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"task_context": {"()": "jobs.logs.TaskContextFilter"}},
    "formatters": {
        "text": {"()": "jobs.logs.TextFormatter"},
        "json": {"()": "jobs.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            # stdout, where containers and process managers collect a service's output.
            "stream": "ext://sys.stdout",
            "formatter": "json" if LOG_FORMAT == "json" else "text",
            "filters": ["task_context"],
        },
        # The lines a job logs while it runs, kept for its staff page (/staff/jobs/<pk>/).
        "job_lines": {
            "()": "jobs.logs.JobLogHandler",
            "level": "INFO",
            "filters": ["task_context"],
        },
    },
    "root": {"handlers": ["console", "job_lines"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- Media (thumbnails) -------------------------------------------------------------------------
# Product pictures (media_jobs): what an upload may be, and the renditions made of it. The
# limits are checked at upload (a form error) and again by the worker (the job fails).
MEDIA_MAX_UPLOAD_BYTES = env_int("MEDIA_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
# Decoded size is what costs memory: 50 MP is 150 MB as RGB (a 48 MP phone photo fits), and
# stays below Pillow's own bomb guard (Image.MAX_IMAGE_PIXELS, 89 MP), which stays on.
MEDIA_MAX_PIXELS = env_int("MEDIA_MAX_PIXELS", 50_000_000)
# Longest side over shortest side: a 1 x 60000 strip is an attack, not a product picture.
MEDIA_MAX_ASPECT_RATIO = env_float("MEDIA_MAX_ASPECT_RATIO", 10)
# Animated GIF, WebP and PNG are shown by their first frame; more frames than this are refused.
MEDIA_MAX_FRAMES = env_int("MEDIA_MAX_FRAMES", 100)
# Widths in pixels of the renditions, each made as WebP and as JPEG (the srcset of the shop).
RENDITION_WIDTHS = [
    int(width) for width in os.environ.get("RENDITION_WIDTHS", "160,480,1200").split(",")
]

# --- Media (product videos) ---------------------------------------------------------------------
# A short product video per product (media_jobs/video.py): checked with ffprobe at upload (a
# form error) and again by the worker (the job fails); the media worker makes a poster frame and
# a short silent preview of it with ffmpeg (scripts/ensure-ffmpeg.sh installs it).
VIDEO_MAX_UPLOAD_BYTES = env_int("VIDEO_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)
VIDEO_MAX_SECONDS = env_float("VIDEO_MAX_SECONDS", 60)
VIDEO_MAX_PIXELS = env_int("VIDEO_MAX_PIXELS", 4096 * 2160)  # 4K
VIDEO_PREVIEW_WIDTH = env_int("VIDEO_PREVIEW_WIDTH", 320)
VIDEO_PREVIEW_SECONDS = env_float("VIDEO_PREVIEW_SECONDS", 4)
# Twice the preview's width: sharp on high-density screens, where the poster is shown first.
VIDEO_POSTER_WIDTH = env_int("VIDEO_POSTER_WIDTH", 640)
VIDEO_FFMPEG = os.environ.get("VIDEO_FFMPEG", "ffmpeg")
VIDEO_FFPROBE = os.environ.get("VIDEO_FFPROBE", "ffprobe")
# Each ffmpeg run is one job on one core, within an address-space ceiling.
VIDEO_FFMPEG_THREADS = env_int("VIDEO_FFMPEG_THREADS", 1)
VIDEO_FFMPEG_MEMORY_MB = env_int("VIDEO_FFMPEG_MEMORY_MB", 1024)
# Time limits, each below the next: every ffmpeg run of a job together is stopped after
# VIDEO_FFMPEG_TIMEOUT (the job fails: the video is too demanding); the task is interrupted at
# its soft limit and killed at its hard one, and ffmpeg with it. The probe at upload, in the
# web request, has a short limit of its own.
VIDEO_FFMPEG_TIMEOUT = env_float("VIDEO_FFMPEG_TIMEOUT", 60)
VIDEO_SOFT_TIME_LIMIT = env_float("VIDEO_SOFT_TIME_LIMIT", 90)
VIDEO_TIME_LIMIT = env_float("VIDEO_TIME_LIMIT", 105)
VIDEO_PROBE_TIMEOUT = env_float("VIDEO_PROBE_TIMEOUT", 10)
# Celery refuses to publish a task whose soft limit is over its hard one: every video job
# would wait in the outbox, unpublished.
if VIDEO_SOFT_TIME_LIMIT > VIDEO_TIME_LIMIT:
    raise ImproperlyConfigured("VIDEO_SOFT_TIME_LIMIT must not be over VIDEO_TIME_LIMIT")

# --- Sales reports ------------------------------------------------------------------------------
# Orders are read this many at a time, each chunk one short query, and the report's progress
# is saved after each chunk: memory stays flat, and the progress bar moves every chunk.
SALES_REPORT_CHUNK_SIZE = env_int("SALES_REPORT_CHUNK_SIZE", 1000)
# A year of orders takes minutes: the task is asked to stop after 30 minutes, killed after 32.
SALES_REPORT_SOFT_TIME_LIMIT = env_int("SALES_REPORT_SOFT_TIME_LIMIT", 30 * 60)
SALES_REPORT_TIME_LIMIT = env_int("SALES_REPORT_TIME_LIMIT", 32 * 60)
# Retries of a failed attempt (storage unavailable, out of time) before the report fails.
SALES_REPORT_MAX_RETRIES = env_int("SALES_REPORT_MAX_RETRIES", 2)

# --- Newsletters --------------------------------------------------------------------------------
# A newsletter is sent in chunks of this many recipients, each chunk one short job on the
# emails queue at bulk priority. At a provider's 100-250 ms an email a chunk holds a process of
# the email worker for 2.5-6 s: several chunks send side by side, and the provider's limit, not
# one chunk's pace, sets the rate (make bench).
NEWSLETTER_CHUNK_SIZE = env_int("NEWSLETTER_CHUNK_SIZE", 25)
# The mail provider's limit for newsletters, in total: every email worker and process takes
# its slots from one row in the database (jobs/throttle.py). 0 means no limit. Keep it under
# the provider's own, with room for the order emails, which are not held to it.
NEWSLETTER_EMAILS_PER_SECOND = env_float("NEWSLETTER_EMAILS_PER_SECOND", 50)
# The staff jobs page's bulk preview (jobs/bulk.py: preview) says how long a replay takes at a
# shared limit: for each kind of job held to one, what a job sends at most and at what rate.
# A newsletter chunk sends up to NEWSLETTER_CHUNK_SIZE emails, each taking a slot of the mail
# provider's limit; the order emails are not held to it, and the preview says so.
JOBS_RATE_LIMITED_KINDS = {
    "newsletter_chunk": {
        "limit": "the mail provider's limit",
        "per_second": NEWSLETTER_EMAILS_PER_SECOND,
        "per_job": NEWSLETTER_CHUNK_SIZE,
        "unit": "email",
    },
}
# How long the link in a subscription confirmation email works.
NEWSLETTER_CONFIRM_MAX_AGE_SECONDS = env_int("NEWSLETTER_CONFIRM_MAX_AGE_SECONDS", 3 * 24 * 3600)
# Asking again to subscribe sends another confirmation at most this often: the form must not
# become a way to flood someone's mailbox.
NEWSLETTER_CONFIRM_RESEND_SECONDS = env_int("NEWSLETTER_CONFIRM_RESEND_SECONDS", 5 * 60)

# --- Supplier price feeds -----------------------------------------------------------------------
# suppliers/: suppliers' product pages read by a job on the `integrations` queue, every
# SUPPLIER_FETCH_INTERVAL_SECONDS (CELERY_BEAT_SCHEDULE) and when staff press "fetch now".
SUPPLIER_USER_AGENT = os.environ.get("SUPPLIER_USER_AGENT", f"ShopJobsBot/1.0 (+{SITE_URL})")
# Seconds to wait for a connection, then for each read of the answer.
SUPPLIER_CONNECT_TIMEOUT = env_float("SUPPLIER_CONNECT_TIMEOUT", 5)
SUPPLIER_READ_TIMEOUT = env_float("SUPPLIER_READ_TIMEOUT", 15)
# At least this long between two requests to one host, from any worker (longer when the host's
# robots.txt asks for a longer Crawl-delay).
SUPPLIER_MIN_INTERVAL_SECONDS = env_float("SUPPLIER_MIN_INTERVAL_SECONDS", 1)
# The longest a run sleeps for its host's turn (after a Retry-After, say); longer waits become
# a retry of the job later, so a worker is not held idle.
SUPPLIER_MAX_WAIT_SECONDS = env_float("SUPPLIER_MAX_WAIT_SECONDS", 30)
SUPPLIER_MAX_PAGE_BYTES = env_int("SUPPLIER_MAX_PAGE_BYTES", 2 * 1024 * 1024)
# A run of hundreds of pages at one a second takes minutes; cut short, it goes on next attempt.
SUPPLIER_FETCH_SOFT_TIME_LIMIT = env_int("SUPPLIER_FETCH_SOFT_TIME_LIMIT", 15 * 60)
SUPPLIER_FETCH_TIME_LIMIT = env_int("SUPPLIER_FETCH_TIME_LIMIT", 16 * 60)
# The demo's local supplier site (`manage.py supplier_site`): where seed_demo points the demo
# supplier, and the site's live knobs.
SUPPLIER_SITE_URL = os.environ.get("SUPPLIER_SITE_URL", "http://127.0.0.1:8100/")
SUPPLIER_SITE_CONTROL = Path(
    os.environ.get("SUPPLIER_SITE_CONTROL", VAR_DIR / "supplier-site.json")
)
