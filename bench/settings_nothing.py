"""The shop with a checkout that asks for no email at all: the floor of bench/checkout_latency.py.

The order and its lines are written as usual; the confirmation job is neither recorded nor
published (bench/apps.py replaces `enqueue_on_commit` as the shop's services see it).
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.apps.SendNothingConfig"]
