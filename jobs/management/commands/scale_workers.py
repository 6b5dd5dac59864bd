"""manage.py scale_workers QUEUE: run QUEUE's Celery workers, as many as its depth asks for.

    python manage.py scale_workers emails --min 1 --max 4 --backlog-per-worker 200 \\
        --worker-args="--concurrency 8"

Starts `--min` workers, then every `--interval` seconds reads the queue and starts or stops
whole `celery worker` processes (jobs/autoscale.py). SIGTERM or Ctrl-C stops them all with a
warm shutdown, then the command ends. Defaults come from the AUTOSCALE_* settings.
"""

import shlex
import signal
import threading

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs import autoscale, topology

DEFAULTS = {
    "AUTOSCALE_MIN_WORKERS": 1,
    "AUTOSCALE_MAX_WORKERS": 4,
    "AUTOSCALE_BACKLOG_PER_WORKER": 100,
    "AUTOSCALE_INTERVAL_SECONDS": 5.0,
    "AUTOSCALE_COOLDOWN_SECONDS": 10.0,
    "AUTOSCALE_SCALE_DOWN_AFTER_SECONDS": 120.0,
    "AUTOSCALE_STOP_TIMEOUT_SECONDS": 600.0,
}


def setting(name):
    return getattr(settings, name, DEFAULTS[name])


class Command(BaseCommand):
    help = "Run a queue's Celery workers, between a minimum and a maximum, as its depth asks."

    def add_arguments(self, parser):
        parser.add_argument("queue", help="the work queue, e.g. emails")
        parser.add_argument("--min", type=int, default=setting("AUTOSCALE_MIN_WORKERS"))
        parser.add_argument("--max", type=int, default=setting("AUTOSCALE_MAX_WORKERS"))
        parser.add_argument(
            "--backlog-per-worker",
            type=int,
            default=setting("AUTOSCALE_BACKLOG_PER_WORKER"),
            help="one more worker for every this many ready messages",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=setting("AUTOSCALE_INTERVAL_SECONDS"),
            help="seconds between two looks at the queue",
        )
        parser.add_argument(
            "--cooldown",
            type=float,
            default=setting("AUTOSCALE_COOLDOWN_SECONDS"),
            help="seconds between two changes",
        )
        parser.add_argument(
            "--scale-down-after",
            type=float,
            default=setting("AUTOSCALE_SCALE_DOWN_AFTER_SECONDS"),
            help="seconds the queue must have nothing ready before a worker is stopped",
        )
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=setting("AUTOSCALE_STOP_TIMEOUT_SECONDS"),
            help="seconds a stopping worker may finish its task before it is killed",
        )
        parser.add_argument(
            "--app",
            # Celery's Django layout: the app in celery.py beside the settings (config/).
            default=getattr(settings, "AUTOSCALE_CELERY_APP", "")
            or settings.SETTINGS_MODULE.rpartition(".")[0],
            help="the Celery app, as for celery -A",
        )
        parser.add_argument(
            "--worker-args",
            default="",
            help='more options for every worker, one string: "--concurrency 8"',
        )

    def handle(self, queue, **options):
        if queue not in topology.work_queue_names(current_app):
            raise CommandError(f"{queue!r} is not a work queue of this project")
        try:
            policy = autoscale.Policy(
                minimum=options["min"],
                maximum=options["max"],
                backlog_per_worker=options["backlog_per_worker"],
                scale_down_after=options["scale_down_after"],
                cooldown=options["cooldown"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        worker_args = shlex.split(options["worker_args"])
        supervisor = autoscale.Supervisor(
            queue,
            policy,
            lambda slot: autoscale.worker_command(options["app"], queue, slot, worker_args),
            stop_timeout=options["stop_timeout"],
        )
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        autoscale.logger.info("%s: following its depth with %s", queue, policy)
        try:
            while not stop.is_set():
                supervisor.tick()
                stop.wait(options["interval"])
        finally:
            autoscale.logger.info("%s: stopping every worker (warm shutdown)", queue)
            supervisor.stop_all()
