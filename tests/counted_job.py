"""A job that does nothing but be counted: for tests that publish thousands of jobs and count
what arrived (a worker started with `--include tests.counted_job`)."""

from config.queues import MAINTENANCE
from jobs.declare import job


@job(
    "tests.count_me",
    kind="count_me",
    label="Counted",
    queue=MAINTENANCE,
    soft_time_limit=10,
    time_limit=20,
)
def count_me(number):
    return number
