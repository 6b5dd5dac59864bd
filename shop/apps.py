from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"

    def ready(self):
        from celery.signals import worker_init

        from shop import events

        # Connected after the jobs app's own (INSTALLED_APPS order): a worker that refuses to
        # start (a task without a route) does so before it connects anywhere.
        worker_init.connect(events.declare_queues_at_worker_start)
