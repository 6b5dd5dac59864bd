"""`manage.py supplier_site`: the demo's local supplier site, see demo/supplier_site.py."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import CommandError

from demo.management.commands._stand_in import StandInCommand
from demo.supplier_site import LAYOUTS, make_server, read_controls, update_controls


class Command(StandInCommand):
    help = (
        "Run the local supplier site (product pages, an index, robots.txt) that the price "
        "feed fetches from; make it slow, failing or redesigned through its control file."
    )
    default_port = 8100
    control_setting = "SUPPLIER_SITE_CONTROL"
    latency_help = "seconds per page"
    fail_rate_help = "share of pages (0..1) answered 503"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--layout", choices=LAYOUTS, default="v1")

    def handle(self, *, host, port, control, latency, fail_rate, layout, **options):
        self.check_weather(port=port, latency=latency, fail_rate=fail_rate)
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
