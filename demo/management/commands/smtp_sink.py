"""`manage.py smtp_sink`: the local mail server of the demo, see demo/smtp_sink.py."""

import asyncio
import logging
import signal
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from demo.management.commands._stand_in import StandInCommand
from demo.smtp_sink import SinkHandler, start_server, update_controls


class Command(StandInCommand):
    help = (
        "Run a local SMTP server that stores every message in a Maildir (shown at /mailbox/) "
        "and can be made slow or failing, also while it runs, through its control file."
    )
    default_port = 1025
    control_setting = "SMTP_SINK_CONTROL"
    latency_help = "seconds to wait before answering DATA"
    fail_rate_help = "share of messages (0..1) answered 451, try again later"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--maildir", type=Path, help="where to store mail (default: SMTP_SINK_DIR)"
        )

    def handle(self, *, host, port, maildir, control, latency, fail_rate, **options):
        self.check_weather(port=port, latency=latency, fail_rate=fail_rate)
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
