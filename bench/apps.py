"""Benchmark-only app for bench/settings_nothing.py: a checkout that sends nothing."""

from django.apps import AppConfig


def ask_for_nothing(task, *args, subject):
    """Stands in for jobs.outbox.enqueue_on_commit: no job row, no publish."""
    return None


class SendNothingConfig(AppConfig):
    name = "bench"
    label = "bench_send_nothing"
    verbose_name = "Benchmark: checkout without email"

    def ready(self):
        from shop import services

        services.enqueue_on_commit = ask_for_nothing
