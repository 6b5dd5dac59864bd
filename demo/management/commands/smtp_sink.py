"""`manage.py smtp_sink`: the local mail server of the demo, see demo/smtp_sink.py."""

import asyncio
import logging
import math
import signal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.smtp_sink import SinkHandler, start_server, update_controls


class Command(BaseCommand):
    help = (
        "Run a local SMTP server that stores every message in a Maildir (shown at /mailbox/) "
        "and can be made slow or failing, also while it runs, through its control file."
    )
    # The sink needs neither models nor database: skip the checks so it also starts while
    # the rest of the project is half-configured.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=1025, help="0 picks a free port")
        parser.add_argument(
            "--maildir", type=Path, help="where to store mail (default: SMTP_SINK_DIR)"
        )
        parser.add_argument(
            "--control", type=Path, help="the knobs' JSON file (default: SMTP_SINK_CONTROL)"
        )
        parser.add_argument(
            "--latency", type=float, default=0.0, help="seconds to wait before answering DATA"
        )
        parser.add_argument(
            "--fail-rate",
            type=float,
            default=0.0,
            help="share of messages (0..1) answered 451, try again later",
        )

    def handle(self, *, host, port, maildir, control, latency, fail_rate, **options):
        if not (math.isfinite(latency) and latency >= 0):
            raise CommandError(f"--latency must be zero or more seconds, not {latency}")
        if not 0 <= fail_rate <= 1:
            raise CommandError(f"--fail-rate must be between 0 and 1, not {fail_rate}")
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, not {port}")
        maildir = maildir or settings.SMTP_SINK_DIR
        control = control or settings.SMTP_SINK_CONTROL

        # The command line sets the weather; counters left in the file (fail_next,
        # reject_next) are someone's pending experiment and are kept.
        update_controls(control, latency=latency, fail_rate=fail_rate)
        handler = SinkHandler(maildir, control)
        # aiosmtpd logs every SMTP command at INFO; the sink's own log says what happened to
        # each message, which is what a developer watching it wants to know.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        asyncio.run(self.serve(handler, host, port, maildir))

    async def serve(self, handler, host, port, maildir):
        try:
            server = await start_server(handler, host, port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

        port = server.sockets[0].getsockname()[1]
        self.stdout.write(f"SMTP sink listening on {host}:{port}, storing mail in {maildir}")
        # Whoever started us (a script, a test) waits for that line: do not leave it in a
        # pipe's buffer.
        self.stdout.flush()
        await stop.wait()

        server.close()
        self.stdout.write("SMTP sink stopped")
