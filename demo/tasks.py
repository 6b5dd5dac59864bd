"""Jobs that misbehave on purpose, for the demo and the tests: a message that kills its worker
(a poison pill) and a job that ignores its soft time limit (a runaway)."""

import os
import signal
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from config.queues import MAINTENANCE
from jobs.declare import job
from jobs.errors import PermanentError
from jobs.topology import PRIORITY_BULK

MISBEHAVING = {"queue": MAINTENANCE, "priority": PRIORITY_BULK}


@job(
    "demo.poison_pill",
    kind="poison_pill",
    label="Poison pill",
    soft_time_limit=30,
    time_limit=40,
    **MISBEHAVING,
)
def poison_pill(label):
    """Kill the worker process that runs it: a poison message, for the demo and the tests.

    Every delivery kills its worker process; task_retry_on_worker_lost publishes it again a
    limited number of times, then it is dead-lettered instead of looping forever.
    """
    kill_this_process()


def kill_this_process():
    if not settings.DEBUG:
        raise PermanentError("the poison pill only works in the demo (DEBUG)")
    os.kill(os.getpid(), signal.SIGKILL)


@job(
    "demo.runaway", kind="runaway", label="Runaway", soft_time_limit=1, time_limit=2, **MISBEHAVING
)
def runaway(label):
    """A job that ignores its soft time limit and runs on: the hard limit kills it, and it is
    dead-lettered rather than requeued forever. For the demo and the tests."""
    run_forever()


def run_forever():
    while True:
        try:
            time.sleep(60)
        except SoftTimeLimitExceeded:
            continue  # what careless code does: swallow the warning and carry on
