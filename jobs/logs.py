"""One log format for web and workers; every line written while a task runs says which.

`TaskContextFilter` adds the running task's id and name, the job's attempt and its business
key (the job key, e.g. "order_confirmation:42") to each record. `JsonFormatter` writes JSON
lines (LOG_FORMAT=json) for log collectors; `TextFormatter` writes the same readably.
"""

import contextvars
import json
import logging

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
