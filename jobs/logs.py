"""One log format for web and workers; every line written while a task runs says which.

`TaskContextFilter` adds the running task's id and name, the job's attempt and its business
key (the job key, e.g. "order_confirmation:42") to each record. `JsonFormatter` writes JSON
lines (LOG_FORMAT=json) for log collectors; `TextFormatter` writes the same readably.
`JobLogHandler` keeps a job's own lines in the database, for the staff's job page.
"""

import contextvars
import json
import logging
import threading

from celery import current_task

# Set by the job runner for the duration of one attempt.
current_job = contextvars.ContextVar("current_job", default=None)

CONTEXT_FIELDS = ("task_id", "task_name", "attempt", "job_key")


class TaskContextFilter(logging.Filter):
    def filter(self, record):
        task = current_task
        request = getattr(task, "request", None) if task else None
        record.task_id = getattr(request, "id", None)
        record.task_name = getattr(task, "name", None) if record.task_id else None
        job = current_job.get()
        record.attempt = job["attempt"] if job else None
        record.job_key = job["key"] if job else None
        return True


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record):
        line = super().format(record)
        context = " ".join(
            f"{field}={getattr(record, field)}"
            for field in CONTEXT_FIELDS
            if getattr(record, field, None) is not None
        )
        return f"{line} [{context}]" if context else line


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class JobLogHandler(logging.Handler):
    """Keeps the lines logged while a job runs in the jobs.JobLogLine table, for the job's page.

    Installed in the LOGGING setting beside the console handler, with the TaskContextFilter
    (which gives each record its job_key). Lines logged outside a job are not kept. Per attempt
    at most MAX_LINES_PER_ATTEMPT lines of INFO, and MAX_EXTRA_WARNINGS more of WARNING and
    above (so the error that ends a chatty job is still kept), counted in this process's memory
    (no query to count): a job that logs in a loop fills its page, not the database.

    Logging must never fail the job: a database that is down, a missing table, a transaction
    the task broke, all end here in silence (handleError is not called either: it would print
    a traceback for every line while the database is away). Each line is written in a
    savepoint when the task is inside a transaction, so a failed insert leaves the task's own
    transaction usable; a line logged inside a transaction that rolls back is lost with it.
    """

    MAX_LINES_PER_ATTEMPT = 40
    MAX_EXTRA_WARNINGS = 20
    # Attempts remembered for counting; past this the counts start afresh.
    MAX_ATTEMPTS_COUNTED = 1000

    def __init__(self, level=logging.INFO):
        super().__init__(level)
        self._counts = {}
        self._writing = threading.local()

    def emit(self, record):
        key = getattr(record, "job_key", None)
        if key is None or getattr(self._writing, "busy", False):
            return  # not in a job, or a line logged by our own insert
        attempt = getattr(record, "attempt", None)
        limit = self.MAX_LINES_PER_ATTEMPT
        if record.levelno >= logging.WARNING:
            limit += self.MAX_EXTRA_WARNINGS
        if self._count(key, attempt) >= limit:
            return
        self._writing.busy = True
        try:
            self._write(key, attempt, record)
        except Exception:
            pass  # see the class docstring: never fail the job because of its log
        finally:
            self._writing.busy = False

    def _count(self, key, attempt):
        """How many lines this attempt logged before this one."""
        if len(self._counts) > self.MAX_ATTEMPTS_COUNTED:
            self._counts.clear()
        seen = self._counts.get((key, attempt), 0)
        self._counts[(key, attempt)] = seen + 1
        return seen

    def _write(self, key, attempt, record):
        from django.db import transaction

        from jobs.models import JobLogLine

        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}: {record.exc_info[1]!r}"
        with transaction.atomic():  # a savepoint inside the task's transaction, if any
            JobLogLine.objects.create(
                job_key=key[:200],
                attempt=attempt,
                level=record.levelname[:10],
                logger=record.name[:200],
                message=message[:2000],
            )
