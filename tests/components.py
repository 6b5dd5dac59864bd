"""A real component a test needs (a RabbitMQ 4 cluster, Chromium, ffmpeg...) that is missing.

On a developer's machine such a test is skipped with one line saying what to install. Under
CI=true it fails instead: a broken install step must not turn into a green run.
"""

import os

import pytest


def missing(what, how_to_get_it, allow_module_level=False):
    """Skip the test (or the module) because `what` is not here; fail it under CI=true."""
    message = f"{what} is missing: {how_to_get_it}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=allow_module_level)
