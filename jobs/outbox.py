"""Asking for a job: write it down with the business change, publish it after the commit.

`enqueue_on_commit` is the only way the shop asks for background work. The job row is saved in
the caller's transaction, so a rolled-back order leaves no job behind, and the message is only
published once the transaction has committed, so a worker never looks for a row that is not
there yet. In a web request it is published once the response has gone out, so the customer
does not wait for RabbitMQ either (`publish_after_commit`). If the broker cannot take the
message, the job stays PENDING with the error noted; `republish_pending_jobs`, run by celery
beat, publishes it again later. The customer's request never waits on, or fails because of,
the broker.
"""

import logging
import threading
import time
import uuid
from datetime import timedelta
from functools import partial

from celery import current_app
from django.db import transaction
from django.utils import timezone

from jobs import conf
from jobs.models import Job, JobEvent

logger = logging.getLogger(__name__)


def enqueue_on_commit(task, *args, subject):
    """Record job `task(*args)` about `subject` (a model instance, shown on the job) and
    publish it once the caller commits. Returns the job's key (`Job.objects.get(key=...)`).

    `task` is a job (declared with @job, jobs/declare.py), or its name where importing it
    would make a cycle (a module the job's own task module imports). The job's key is its kind
    and its arguments: asking twice for the same keeps the first job and publishes nothing new.

    One statement, `INSERT ... ON CONFLICT DO NOTHING`: no SELECT before it and no savepoint
    around it, which is what `get_or_create` costs, inside the customer's request. What gets
    published is found by the new job's task id after the commit: when the key had a job
    already, no row carries that id, and nothing is published.
    """
    task = current_app.tasks[task] if isinstance(task, str) else task
    job = Job(**_new_job(task, args, subject))
    _insert_new([job])
    transaction.on_commit(partial(publish_after_commit, [job.task_id]))
    return job.key


def enqueue_many_on_commit(task, subjects):
    """`enqueue_on_commit(task, subject.pk, subject=subject)` for many subjects, in a few queries.

    For bulk actions over hundreds of rows: the jobs are inserted in one statement and
    published in one go after the commit. Subjects that already have a job of this kind are
    left alone, so running the same bulk action twice asks for nothing new. Returns how many
    jobs it asked for.
    """
    wanted = [Job(**_new_job(task, (s.pk,), s)) for s in subjects]
    _insert_new(wanted)
    task_ids = [job.task_id for job in wanted]
    transaction.on_commit(partial(publish_after_commit, task_ids))
    # The rows that carry our task ids are the ones this call created.
    return Job.objects.filter(task_id__in=task_ids).count()


def record_group(task_name, subject, many_args):
    """PENDING jobs `task_name(*args)` about `subject`, one per args of `many_args`, published
    later as one group (`publish_group`). Jobs that exist already are left alone.

    The task goes by name: the code that plans a fan-out is what its task runs, and cannot
    import it."""
    task = current_app.tasks[task_name]
    _insert_new([Job(**_new_job(task, args, subject)) for args in many_args])


def _new_job(task, args, subject):
    """The fields of a new PENDING job `task(*args)` about `subject`, with a task id of its own."""
    return {
        "key": task.job_key(*args),
        "kind": task.kind.name,
        "subject": subject_label(subject),
        "task_name": task.name,
        "args": list(args),
        "task_id": str(uuid.uuid4()),
    }


def _insert_new(jobs):
    """Insert `jobs`, leaving alone those whose key has a job already."""
    Job.objects.bulk_create(jobs, ignore_conflicts=True, batch_size=500)


def publish_group(jobs):
    """Publish pending `jobs` together: back to back on a connection of their own, RabbitMQ's
    confirms of them all awaited at once, instead of a round trip per job (a newsletter's
    chunks, a bulk shipping's emails, the sweeper's backlog). Returns how many RabbitMQ
    confirmed.

    Each message carries its job's task id, so a job published twice (here and by the sweeper)
    is recognisably the same job and runs once. What the broker does not confirm (a nack, a
    lost connection, no answer in time) stays in the outbox for the sweeper, saying why.
    """
    global _broker_failed_until
    if not jobs:
        return 0
    if time.monotonic() < _broker_failed_until:
        _keep_in_outbox(jobs, "not sent: the broker failed moments ago, the sweeper will send it")
        return 0
    published_at = timezone.now()
    confirmed, problem = _publish_together(jobs)
    if problem:
        logger.warning(
            "%d of %d job(s) not confirmed, they stay in the outbox: %s",
            len(jobs) - len(confirmed), len(jobs), problem,
        )  # fmt: skip
        _broker_failed_until = time.monotonic() + conf.OUTBOX_BREAKER_SECONDS
        done = {job.pk for job in confirmed}
        _keep_in_outbox([job for job in jobs if job.pk not in done], problem)
    _mark_queued(confirmed, published_at)
    return len(confirmed)


def _publish_together(jobs):
    """([jobs RabbitMQ confirmed], what went wrong with the others or ""). Never raises: the
    job rows keep the work safe.

    The connection leaves out confirm_publish, which would wait for each message's confirm;
    its channel is put in confirm mode by hand instead, and RabbitMQ numbers the messages 1..n
    in the order they were published (acking several at once with `multiple`).
    """
    answers = {}  # delivery tag: True (ack) or False (nack)

    def on_answer(ok):
        def record(tag, multiple):
            for each in range(1, tag + 1) if multiple else (tag,):
                answers.setdefault(each, ok)

        return record

    problem = ""
    try:
        with current_app.connection_for_write(transport_options={"confirm_publish": False}) as conn:
            conn.ensure_connection(max_retries=1, timeout=conf.OUTBOX_PUBLISH_TIMEOUT_SECONDS)
            channel = conn.channel()
            channel.confirm_select()
            channel.events["basic_ack"].add(on_answer(True))
            channel.events["basic_nack"].add(on_answer(False))
            producer = current_app.amqp.Producer(channel)
            for job in jobs:
                # Route and priority as each job was declared, its task id the job's.
                current_app.tasks[job.task_name].apply_async(
                    args=job.args, task_id=job.task_id, producer=producer, **publish_time_limits()
                )
            deadline = time.monotonic() + conf.OUTBOX_PUBLISH_TIMEOUT_SECONDS
            while len(answers) < len(jobs) and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
    except Exception as exc:  # what was confirmed before it still counts
        problem = f"{type(exc).__name__}: {exc}"
    confirmed = [job for tag, job in enumerate(jobs, 1) if answers.get(tag)]
    if len(confirmed) == len(jobs) or problem:
        return confirmed, problem
    nacked = sum(1 for ok in answers.values() if not ok)
    return confirmed, (
        f"RabbitMQ refused {nacked} message(s)" if nacked else "RabbitMQ did not confirm in time"
    )


def subject_label(obj):
    return f"{obj._meta.model_name}:{obj.pk}"


# Jobs committed during the web request this thread serves, to publish once its response has
# gone out. A publish waits for RabbitMQ's confirm (it has the message on disk): two jobs per
# checkout made a 4 ms checkout take 13 ms (README, "Benchmarks"). Waiting until the response
# is written keeps every promise: the job row was committed with the order, and a process that
# dies in between leaves a PENDING job for the sweeper, like a publish that failed.
_this_request = threading.local()


def publish_after_commit(task_ids):
    """Publish the jobs with these task ids now, or after the response when a web request is
    being served on this thread. A task id that no job carries (its key had a job already)
    publishes nothing."""
    if getattr(_this_request, "waiting", None) is None:
        return publish_many(_job_pks(task_ids))
    _this_request.waiting.append(task_ids)  # one group per commit, published as it would have been
    return 0


def _job_pks(task_ids):
    """The pks of the jobs carrying `task_ids`, in the order they were asked for."""
    return list(
        Job.objects.filter(task_id__in=task_ids).order_by("pk").values_list("pk", flat=True)
    )


def request_started(**kwargs):
    """Django's request_started: what this request commits waits for its response to go out."""
    if conf.OUTBOX_PUBLISH_AFTER_RESPONSE:
        _this_request.waiting = getattr(_this_request, "waiting", None) or []


def request_finished(**kwargs):
    """Django's request_finished (the WSGI server has written the response): publish."""
    waiting, _this_request.waiting = getattr(_this_request, "waiting", None), None
    for task_ids in waiting or ():
        try:
            publish_many(_job_pks(task_ids))
        except Exception:  # a database error: raised here it would reach the web server
            logger.exception("could not publish jobs %s, the sweeper will", task_ids)


# When a publish fails, this process stops trying for a while ("circuit breaker"): a broker
# that hangs instead of refusing would otherwise cost every checkout the connection timeout.
# The jobs wait in the outbox meanwhile, and the sweeper publishes them.
_broker_failed_until = 0.0
# From this many jobs on, publish_many publishes in groups of GROUP_SIZE (publish_group).
GROUP_FROM = 3
GROUP_SIZE = 1000


def publish_time_limits():
    """Options for a publish that a person waits on: it gives up instead of hanging.

    With publisher confirms, kombu waits for the broker's confirm without limit by default: a
    broker that keeps the connection open and answers nothing (publishers blocked by a disk or
    memory alarm) would hold the request forever.
    """
    seconds = conf.OUTBOX_PUBLISH_TIMEOUT_SECONDS
    return {"timeout": seconds, "confirm_timeout": seconds}


def publish(job_pk):
    """Hand a pending job to the broker. Returns True once RabbitMQ has confirmed it."""
    global _broker_failed_until
    job = Job.objects.get(pk=job_pk)
    if job.state != Job.State.PENDING:
        return True  # the sweeper was faster (a long request), or a worker has it already
    if time.monotonic() < _broker_failed_until:
        _keep_in_outbox([job], "not sent: the broker failed moments ago, the sweeper will send it")
        return False
    task = current_app.tasks[job.task_name]
    published_at = timezone.now()
    try:
        # Route and priority as the job was declared (jobs/declare.py); the task id is the
        # job's, so every copy of this message (retries, redeliveries, replays) is recognisably
        # the same job.
        task.apply_async(args=job.args, task_id=job.task_id, **publish_time_limits())
    except Exception as exc:  # whatever the broker did, the job row keeps the work safe
        logger.warning("could not publish job %s, it stays in the outbox: %r", job.key, exc)
        _broker_failed_until = time.monotonic() + conf.OUTBOX_BREAKER_SECONDS
        _keep_in_outbox([job], f"{type(exc).__name__}: {exc}")
        return False
    _mark_queued([job], published_at)
    return True


def publish_copy(job):
    """Publish one more message for `job`, whatever its state (a rescue, a "retry now").

    Raises if RabbitMQ does not confirm it. The copy carries the job's task id, and the job's
    claim (jobs/runner.py) runs it once however many copies there are.
    """
    task = current_app.tasks[job.task_name]
    task.apply_async(args=job.args, task_id=job.task_id, **publish_time_limits())


def _mark_queued(jobs, published_at):
    """RabbitMQ confirmed `jobs`, published from `published_at` on. Only a PENDING job becomes
    QUEUED: a fast worker may already have started it. The step is dated when the publish
    began, not when its confirm came back: a worker can start the job in between, and the
    timeline must still read queued, then started. Such a job keeps its state but gets its
    queued_at all the same: its wait (/metrics, the dashboard) counts from it."""
    pks = [job.pk for job in jobs]
    Job.objects.filter(pk__in=pks, state=Job.State.PENDING).update(
        state=Job.State.QUEUED, queued_at=published_at, publish_error=""
    )
    Job.objects.filter(pk__in=pks, queued_at__isnull=True).update(queued_at=published_at)
    JobEvent.objects.bulk_create(
        JobEvent(job_id=pk, kind=JobEvent.Kind.QUEUED, at=published_at) for pk in pks
    )


def _keep_in_outbox(jobs, error):
    """The broker did not take `jobs`: they wait for the sweeper, each saying why."""
    error = error[:500]
    pks = [job.pk for job in jobs]
    Job.objects.filter(pk__in=pks, state=Job.State.PENDING).update(publish_error=error)
    JobEvent.objects.bulk_create(
        JobEvent(job_id=job.pk, kind=JobEvent.Kind.DELAYED, detail=error)
        for job in jobs
        if not job.publish_error  # the first failure goes on the timeline, not every sweep
    )


def republish_pending_jobs(older_than=None):
    """Publish again the jobs the broker never confirmed. Returns how many went out.

    A job can be published twice this way (the broker took it but the confirmation was lost);
    that is safe because every job runs through the idempotent runner.
    """
    if older_than is None:
        older_than = timedelta(seconds=conf.OUTBOX_REPUBLISH_AFTER_SECONDS)
    cutoff = timezone.now() - older_than
    stale = Job.objects.filter(state=Job.State.PENDING, created_at__lte=cutoff)
    published = publish_many(list(stale.values_list("pk", flat=True)))
    if published:
        logger.info("republished %d job(s) from the outbox", published)
    return published


def publish_many(job_pks):
    """Publish jobs; returns how many went out. A few (a checkout's) go one by one on the
    app's pooled connection, a confirm each; more go in groups confirmed together. Either
    way the first failure stops it: when the broker is down there is no point trying the
    rest, they stay in the outbox for the sweeper.
    """
    if len(job_pks) < GROUP_FROM:
        published = 0
        for job_pk in job_pks:
            if not publish(job_pk):
                break
            published += 1
        return published
    published = 0
    for start in range(0, len(job_pks), GROUP_SIZE):
        batch = job_pks[start : start + GROUP_SIZE]
        jobs = list(Job.objects.filter(pk__in=batch, state=Job.State.PENDING).order_by("pk"))
        confirmed = publish_group(jobs)
        published += confirmed
        if confirmed < len(jobs):
            break
    return published
