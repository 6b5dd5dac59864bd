"""python -m warehouse [run | health | dead-letters [--replay]]

run           the service (the default): consume order.placed, dispatch, publish shipment.dispatched
health        exit 0 if the running service noted it was alive within the last minute
dead-letters  list what the service refused and why; --replay puts it all back on its queue
"""

import argparse
import logging
import signal
import sys

from warehouse import deadletters
from warehouse.service import WarehouseService
from warehouse.settings import Settings
from warehouse.store import Store, seconds_since_alive

# The service notes it is alive every few seconds while it is connected and consuming.
HEALTHY_WITHIN_SECONDS = 60


def run(settings):
    store = Store(settings.db_path)
    service = WarehouseService(settings, store)

    def stop(signum, frame):
        logging.getLogger("warehouse").info("stopping (signal %s)", signum)
        service.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("warehouse").info(
        "warehouse service: database %s, dispatch delay %ss",
        settings.db_path,
        settings.dispatch_delay_seconds,
    )
    try:
        service.run()
    finally:
        store.close()
    return 0


def health(settings):
    age = seconds_since_alive(settings.db_path)
    if age is None or age > HEALTHY_WITHIN_SECONDS:
        print("unhealthy: the service has not been consuming for a minute or more")
        return 1
    print(f"healthy: consuming, last seen {age:.0f}s ago")
    return 0


def dead_letters(settings, replay):
    if replay:
        print(f"{deadletters.replay(settings.broker_url)} message(s) replayed")
        return 0
    letters = deadletters.read(settings.broker_url)
    print(f"{len(letters)} dead letter(s)")
    for letter in letters:
        print(f"  {letter.message_id}  {letter.died}\n    why: {letter.reason}\n    {letter.body}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m warehouse", description=__doc__.split("\n")[0])
    parser.add_argument(
        "command", nargs="?", default="run", choices=["run", "health", "dead-letters"]
    )
    parser.add_argument("--replay", action="store_true", help="with dead-letters: replay them all")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    settings = Settings.from_env()
    if args.command == "health":
        return health(settings)
    if args.command == "dead-letters":
        return dead_letters(settings, args.replay)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
