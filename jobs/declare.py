"""Declaring a job: one decorator says what the job is, where it runs and how it may fail.

    @job(
        "notifications.send_order_confirmation",
        kind="order_confirmation", label="Confirmation email", doing="sending", done="sent",
        queue="emails", priority=PRIORITY_URGENT,
        soft_time_limit=20, time_limit=30,
    )
    def send_order_confirmation(order_id, job_key):
        return emails.send_order_confirmation(order_id, job_key)

The function is the work, a plain function of JSON-able arguments (and of `job_key`, the job's
key, if it has a parameter of that name: an email's Message-ID, say). The decorator makes it a
Celery task run by the job runner (jobs/runner.py: claimed once per key, retried on a
TransientError, dead-lettered on a PermanentError), routes it to its queue at its priority,
and names its kind: the words the pages use for it, and the first part of its key. A job's
key is its kind and its arguments, `order_confirmation:42`: asked twice for the same
arguments, it runs once. Ask for it with `jobs.outbox.enqueue_on_commit(task, *args, subject=…)`.

A job that does more than its work around the claim (a step that must run even when the work
was already done) takes `bind=True`: the function then gets the task first and calls
`task.run_once(task.job_key(*args), work)` itself.

Celery tasks that are not jobs (beat's ticks) are routed by the project's `CELERY_TASK_ROUTES`,
this app's own with `route_task`. A worker refuses to start with a task that nothing routes,
naming it: such a task would land on the default queue with no priority, and nobody would
notice.
"""

import functools
import inspect

from celery import current_app, shared_task
from celery.signals import worker_init

from jobs import topology
from jobs.kinds import JobKind
from jobs.runner import JobTask

# {task name: route}, filled by @job, read by Celery through route_declared_job.
_ROUTES = {}


def job(
    name,
    *,
    kind,
    label,
    queue,
    soft_time_limit,
    time_limit,
    priority=topology.PRIORITY_NORMAL,
    doing="running",
    done="done",
    max_retries=None,
    bind=False,
    **options,
):
    """Declare the decorated function as job `name` (see the module's docstring).

    `max_retries` defaults to the JOB_MAX_RETRIES setting; `options` are Celery's task options
    (rate_limit, say).
    """
    job_kind = JobKind(kind, label, doing=doing, done=done)
    if max_retries is not None:
        options["max_retries"] = max_retries

    def declare(work):
        run = work if bind else _run_once_around(work)
        route_task(name, queue=queue, priority=priority)
        return shared_task(
            bind=True,
            base=JobTask,
            name=name,
            kind=job_kind,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            **options,
        )(run)

    return declare


def _run_once_around(work):
    """The body of a job's task: `work(*args)`, run once per key by the job runner."""
    signature = inspect.signature(work)
    takes_key = "job_key" in signature.parameters

    @functools.wraps(work)
    def run(task, *args):
        key = task.job_key(*args)
        extra = {"job_key": key} if takes_key else {}
        # Arguments the work cannot take (a hand-made message) fail before a job is claimed.
        signature.bind(*args, **extra)
        return task.run_once(key, lambda: work(*args, **extra))

    return run


def route_task(name, *, queue=None, priority=topology.PRIORITY_NORMAL):
    """Route task `name` to `queue` (None: the project's default queue) at `priority`.

    @job routes every job this way. A task that is not a job calls it itself: this app's own,
    which know no project's queues. A project's CELERY_TASK_ROUTES, read first, can send
    either elsewhere.
    """
    _ROUTES[name] = {"queue": queue, "routing_key": queue, "priority": priority}


def route_declared_job(name, args, kwargs, options, task=None, **kw):
    """A Celery router (CELERY_TASK_ROUTES): the queue and priority a job was declared with."""
    if name not in _ROUTES:
        return None
    route = dict(_ROUTES[name])  # a copy: Celery merges the message's options into it
    if route["queue"] is None:
        default = current_app.conf.task_default_queue
        route |= {"queue": default, "routing_key": default}
    return route


def unrouted(app):
    """The names of the app's tasks that no route names, sorted.

    Celery's own tasks (`celery.*`) run only inside canvases, unless a route names them.
    """
    router = app.amqp.router
    return sorted(
        name
        for name in app.tasks
        if not name.startswith("celery.") and router.lookup_route(name) is None
    )


def uses_this_topology(app):
    # worker_init fires for every app's worker in a process that imported this module (a
    # benchmark's bare Celery baseline, say): these handlers are for apps with job queues.
    return bool(topology.work_queues(app))


@worker_init.connect
def refuse_unrouted_tasks(sender=None, **kwargs):
    """Stop a worker that knows a task that no route names, naming it."""
    app = getattr(sender, "app", None)
    if app is None or not uses_this_topology(app):
        return
    missing = unrouted(app)
    if missing:
        # SystemExit, not an exception: Celery logs and swallows what a signal handler raises.
        raise SystemExit(
            f"The worker will not start: task(s) without a route: {', '.join(missing)}. "
            "Declare each job with @job(queue=..., priority=...) (jobs/declare.py), or add the "
            "task to CELERY_TASK_ROUTES."
        )
