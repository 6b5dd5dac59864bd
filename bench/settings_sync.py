"""The shop with its email sent inside the request: the baseline of bench/checkout_latency.py.

Two settings, nothing else changed: Celery runs every task eagerly, in the process that asks
for it, and jobs are published at the commit, inside the request, instead of after the response.
The checkout still records the job and "publishes" it after the commit, but the publish now
runs the task right there, in the request: the same job runner, the same email, the same SMTP
server, only the customer waits for it. (No broker involved; the job is marked done in the
request.)
"""

from config.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = True
OUTBOX_PUBLISH_AFTER_RESPONSE = False
