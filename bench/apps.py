"""Benchmark-only app for bench/settings_nothing.py: a checkout that sends nothing."""

from django.apps import AppConfig


def ask_for_nothing(task, *args, kind, subject, key=None):
    """Stands in for jobs.outbox.enqueue_on_commit: no job row, no publish."""
    return None


class SendNothingConfig(AppConfig):
    name = "bench"
    label = "bench_send_nothing"
    verbose_name = "Benchmark: checkout without email"

    def ready(self):
        from shop import services

        services.enqueue_on_commit = ask_for_nothing


class PublishAfterResponseConfig(AppConfig):
    """A measured alternative (bench/settings_publish_after_response.py), not the shop's code.

    The job is still written in the order's transaction; its publish, instead of running when
    the transaction commits, waits until the response has gone out (Django's request_finished,
    which gunicorn fires after writing the response). Outside a request it publishes at once.
    A process that dies in between leaves the job PENDING in the outbox, for the sweeper.
    """

    name = "bench"
    label = "bench_publish_after_response"
    verbose_name = "Benchmark: publish after the response"

    def ready(self):
        import threading

        from django.core.signals import request_finished, request_started

        from jobs import outbox

        publish_now = outbox.publish
        waiting = threading.local()

        def publish_later(job_pk):
            pending = getattr(waiting, "jobs", None)
            if pending is None:
                return publish_now(job_pk)
            pending.append(job_pk)
            return True

        def start(**kwargs):
            waiting.jobs = []

        def finish(**kwargs):
            pending, waiting.jobs = getattr(waiting, "jobs", None) or [], None
            for job_pk in pending:
                publish_now(job_pk)

        request_started.connect(start, weak=False)
        request_finished.connect(finish, weak=False)
        outbox.publish = publish_later
