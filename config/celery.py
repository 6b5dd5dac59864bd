"""The Celery app, in the shape of Celery's own Django example."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("shop_jobs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
