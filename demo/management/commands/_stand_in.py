"""What the commands of the demo's stand-in servers (smtp_sink, supplier_site) share: where
they listen, their control file, and the "weather" they start with (latency, failure rate)."""

import math
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class StandInCommand(BaseCommand):
    # Set by each command: its default port, the setting naming its control file, and what
    # its latency and failures mean.
    default_port = None
    control_setting = ""
    latency_help = ""
    fail_rate_help = ""
    # A stand-in needs no database: skip the checks, so it starts even before migrations.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port", type=int, default=self.default_port, help="0 picks a free port"
        )
        parser.add_argument(
            "--control",
            type=Path,
            help=f"the knobs' JSON file (default: {self.control_setting})",
        )
        parser.add_argument("--latency", type=float, default=0.0, help=self.latency_help)
        parser.add_argument("--fail-rate", type=float, default=0.0, help=self.fail_rate_help)

    def check_weather(self, *, port, latency, fail_rate):
        if not (math.isfinite(latency) and latency >= 0):
            raise CommandError(f"--latency must be zero or more seconds, not {latency}")
        if not 0 <= fail_rate <= 1:
            raise CommandError(f"--fail-rate must be between 0 and 1, not {fail_rate}")
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, not {port}")
