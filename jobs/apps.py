from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self):
        from django.core import signals as request_signals
        from django.db import close_old_connections
        from django.utils.module_loading import autodiscover_modules

        # Importing connects their handlers (and registers pause's remote control command).
        from jobs import declare, outbox, pause, signals  # noqa: F401

        # Jobs are declared in the apps' tasks modules (jobs/declare.py): import them all, so
        # every process knows every job's kind and route, not only the worker.
        autodiscover_modules("tasks")

        # A web request's jobs are published once its response has gone out (jobs/outbox.py),
        # before Django closes the request's database connection: connected after ours, or
        # the publish would open a second connection, left idle until the next request.
        request_signals.request_started.connect(outbox.request_started)
        request_signals.request_finished.connect(outbox.request_finished)
        request_signals.request_finished.disconnect(close_old_connections)
        request_signals.request_finished.connect(close_old_connections)
