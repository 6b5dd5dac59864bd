import time

from celery import shared_task

from jobs import outbox, reconcile, retention
from jobs.declare import route_task
from jobs.topology import PRIORITY_BULK, PRIORITY_HIGH


@shared_task(name="jobs.republish_pending_jobs", soft_time_limit=60, time_limit=90)
def republish_pending_jobs():
    """Periodic (celery beat): publish the jobs the broker could not take when they were asked."""
    return outbox.republish_pending_jobs()


route_task("jobs.republish_pending_jobs", priority=PRIORITY_HIGH)


@shared_task(name="jobs.rescue_stuck_jobs", soft_time_limit=60, time_limit=90)
def rescue_stuck_jobs():
    """Periodic (celery beat): publish again, once, the jobs whose message is gone."""
    done = reconcile.rescue_stuck_jobs()
    return {"republished": done.republished, "failed": done.failed}


route_task("jobs.rescue_stuck_jobs", priority=PRIORITY_HIGH)


@shared_task(name="jobs.prune_old_records", soft_time_limit=900, time_limit=960)
def prune_old_records():
    """Periodic (celery beat, nightly): delete old finished jobs and task results in chunks.

    It stops between two chunks a minute before its soft limit; a backlog (the first run on a
    year of rows) is worked off over several nights instead of being killed mid-way.
    """
    deadline = time.monotonic() + prune_old_records.soft_time_limit - 60
    return retention.prune_old_records(deadline=deadline).as_dict()


route_task("jobs.prune_old_records")


@shared_task(name="jobs.noop", ignore_result=True, soft_time_limit=30, time_limit=40)
def noop(label="", seconds=0):
    """Does nothing (for `seconds`): filler for load tests, benchmarks and the demo's flood."""
    if seconds:
        time.sleep(min(seconds, 10))
    return label


route_task("jobs.noop", priority=PRIORITY_BULK)
