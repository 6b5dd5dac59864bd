"""config.settings, publishing each job after the response instead of on commit.

A measured alternative for bench/checkout_latency.py: see bench/apps.py.
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.apps.PublishAfterResponseConfig"]
