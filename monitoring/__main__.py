"""python -m monitoring prometheus|alertmanager [its options]: run it as the Procfile says.

The options go to the program unchanged (`--config.file=monitoring/prometheus.yml ...`, in the
Procfile for all to read). This adds only what a Procfile line cannot say:

- which program: Alertmanager is `alertmanager` upstream and `prometheus-alertmanager` in
  Debian's package;
- when it is not installed, a line saying how to install it, and then it waits: honcho stops
  every process of the demo as soon as one exits, and the shop is worth running without
  alerting;
- ALERT_WEBHOOK_URL (Alertmanager): Alertmanager reads no environment variables, so when it is
  set the config is copied into the storage directory (var/alertmanager/) with a webhook added
  beside the email, and Alertmanager runs on that copy.
"""

import argparse
import os
import signal
import sys
from pathlib import Path

from monitoring import alertmanager_config, find_program, option, with_option, write


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m monitoring", description=__doc__.split("\n")[0]
    )
    parser.add_argument("program", choices=["prometheus", "alertmanager"])
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the program's own options")
    return parser


def wait_without(program):
    print(
        f"{program} is not installed: the demo runs without alerting. "
        "Install it with: sudo scripts/ensure-prometheus.sh",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    path = find_program(args.program)
    if path is None:
        return wait_without(args.program)
    options = list(args.options)
    webhook_url = os.environ.get("ALERT_WEBHOOK_URL", "").strip()
    if args.program == "alertmanager" and webhook_url:
        storage = Path(option(options, "storage.path") or "data")
        config = alertmanager_config(source=option(options, "config.file"), webhook_url=webhook_url)
        rendered = write(config, storage / "alertmanager.yml")
        options = with_option(options, "config.file", rendered)
        print(f"alertmanager: also posting to ALERT_WEBHOOK_URL ({rendered})", flush=True)
    # Replace this process: honcho's signals reach the program itself.
    os.execv(path, [path, *options])


if __name__ == "__main__":
    sys.exit(main())
