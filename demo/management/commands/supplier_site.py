"""`manage.py supplier_site`: the demo's local supplier site, see demo/supplier_site.py."""

import logging
import math
import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.supplier_site import LAYOUTS, make_server, read_controls, update_controls


class Command(BaseCommand):
    help = (
        "Run the local supplier site (product pages, an index, robots.txt) that the price "
        "feed fetches from; make it slow, failing or redesigned through its control file."
    )
    # The site needs no database: skip the checks, so it starts even before migrations.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100, help="0 picks a free port")
        parser.add_argument(
            "--control", type=Path, help="the knobs' JSON file (default: SUPPLIER_SITE_CONTROL)"
        )
        parser.add_argument("--latency", type=float, default=0.0, help="seconds per page")
        parser.add_argument(
            "--fail-rate", type=float, default=0.0, help="share of pages (0..1) answered 503"
        )
        parser.add_argument("--layout", choices=LAYOUTS, default="v1")

    def handle(self, *, host, port, control, latency, fail_rate, layout, **options):
        if not (math.isfinite(latency) and latency >= 0):
            raise CommandError(f"--latency must be zero or more seconds, not {latency}")
        if not 0 <= fail_rate <= 1:
            raise CommandError(f"--fail-rate must be between 0 and 1, not {fail_rate}")
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, not {port}")
        control = control or settings.SUPPLIER_SITE_CONTROL

        # The command line sets the weather; the rest of the file (products, counters, robots
        # rules) is someone's experiment and is kept. A site with no products sells the demo's.
        update_controls(control, latency=latency, fail_rate=fail_rate, layout=layout)
        if not read_controls(control)["products"]:
            from demo.suppliers import demo_products

            update_controls(control, products=demo_products())

        try:
            server = make_server(host, port, control)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc
        logging.getLogger("demo.supplier_site").setLevel(logging.INFO)

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *args: stop.set())
        # serve_forever in a thread: shutdown() waits for it, so it cannot be called from the
        # thread that serves (here, the signal handler's).
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        port = server.server_address[1]
        self.stdout.write(f"Supplier site listening on http://{host}:{port}/, knobs in {control}")
        # Whoever started us (a script, a test) waits for that line: do not leave it in a
        # pipe's buffer.
        self.stdout.flush()
        stop.wait()
        server.shutdown()
        server.server_close()
        self.stdout.write("Supplier site stopped")
